"""Write synthetic DEAP files (exact `data_preprocessed_python` format).

    python launch/synthesize.py --out DIR --subjects N --seed S [--trials T] [--samples N]
                                 [--overwrite]   (replace the sNN.dat files already in DIR)

The command itself is eeg_emotion.cli.synthesize, also
`eeg-emotion synthesize ...` once the package is installed; --help lists its arguments.
"""

import sys

from eeg_emotion.cli.synthesize import main

if __name__ == "__main__":
    sys.exit(main())
