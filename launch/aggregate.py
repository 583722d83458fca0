"""Aggregate the folds of a cross-validation group into one table.

    python launch/aggregate.py OUT      # OUT/fold-*/results.json -> OUT/cv_results.{json,md}

The command itself is eeg_emotion.cli.aggregate, also
`eeg-emotion aggregate ...` once the package is installed; --help lists its arguments.
"""

import sys

from eeg_emotion.cli.aggregate import main

if __name__ == "__main__":
    sys.exit(main())
