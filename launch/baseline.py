"""Fit a baseline on the same data settings and splits as an LLM run.

    python launch/baseline.py --config configs/demo.yaml [baseline.name=band_power_lr|eegnet]

The command itself is eeg_emotion.cli.baseline, also
`eeg-emotion baseline ...` once the package is installed; --help lists its arguments.
"""

import sys

from eeg_emotion.cli.baseline import main

if __name__ == "__main__":
    sys.exit(main())
