"""Re-evaluate a run's best model.

    python launch/evaluate.py RUN [--split test|val] [--data.root=/other/copy ...]

The command itself is eeg_emotion.cli.evaluate, also
`eeg-emotion evaluate ...` once the package is installed; --help lists its arguments.
"""

import sys

from eeg_emotion.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
