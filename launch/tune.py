"""Hyperparameter search chosen on val only: Optuna trials, each an ordinary run folder.

    python launch/tune.py --config configs/tiny.yaml --space configs/tune_space.yaml
        --study runs/tune-tiny --trials 12 [--finish] [key.sub=value ...]

The command itself is eeg_emotion.cli.tune, also
`eeg-emotion tune ...` once the package is installed; --help lists its arguments.
"""

import sys

from eeg_emotion.cli.tune import main

if __name__ == "__main__":
    sys.exit(main())
