"""Build (or load from the cache) the tokenized dataset and print its summary.

    python launch/preprocess.py --config configs/demo.yaml [key.sub=value ...]

The command itself is eeg_emotion.cli.preprocess, also
`eeg-emotion preprocess ...` once the package is installed; --help lists its arguments.
"""

import sys

from eeg_emotion.cli.preprocess import main

if __name__ == "__main__":
    sys.exit(main())
