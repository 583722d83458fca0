"""Compare models scored on the same trials: paired bootstrap and exact McNemar tests.

    python launch/compare.py FOLDER FOLDER [FOLDER ...] [--out DIR]

The command itself is eeg_emotion.cli.compare, also
`eeg-emotion compare ...` once the package is installed; --help lists its arguments.
"""

import sys

from eeg_emotion.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
