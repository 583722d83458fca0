"""Write report.md and PNG plots for a finished run or a cross-validation group.

    python launch/report.py RUN_OR_CV_FOLDER

The command itself is eeg_emotion.cli.report, also
`eeg-emotion report ...` once the package is installed; --help lists its arguments.
"""

import sys

from eeg_emotion.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
