"""Cross-validation on this machine in one command: every fold in turn, then one table.

    python launch/cv.py --config CONFIG --protocol subject_kfold|kfold|loso|... --out DIR [...]

The command itself is eeg_emotion.cli.cv, also
`eeg-emotion cv ...` once the package is installed; --help lists its arguments.
"""

import sys

from eeg_emotion.cli.cv import main

if __name__ == "__main__":
    sys.exit(main())
