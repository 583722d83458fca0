"""Predict valence/arousal levels for new DEAP-format recordings with a run's best model.

    python launch/predict.py RUN --input FILE_OR_DIR --out predictions.csv

The command itself is eeg_emotion.cli.predict, also
`eeg-emotion predict ...` once the package is installed; --help lists its arguments.
"""

import sys

from eeg_emotion.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
