"""Train a classifier and leave a complete run folder.

    accelerate launch launch/train.py --config configs/tiny.yaml [key.sub=value ...]
    python launch/train.py --config configs/tiny.yaml output_dir=runs/x   (one process)

The command itself is eeg_emotion.cli.train, also
`eeg-emotion train ...` once the package is installed; --help lists its arguments.
"""

import sys

from eeg_emotion.cli.train import main

if __name__ == "__main__":
    sys.exit(main())
