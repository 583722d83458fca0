"""Write report.md and PNG plots for a finished run or a cross-validation group; print it.

    python launch/report.py RUN_OR_CV_FOLDER

A run folder (LLM or baseline) has results.json; a CV group has the folds its cv_group.json
names (the folds' mean ± sd and pooled tables are refreshed in cv_results.{md,json}; a missing
or broken fold is named and nothing is pooled). Plots go to FOLDER/plots/.
"""

from __future__ import annotations

import sys

from eeg_emotion.cli import folder_argument, handle_errors


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    del prog  # the usage is the docstring
    folder = folder_argument(argv, __doc__)
    from eeg_emotion.evaluation.report import (
        write_report,  # matplotlib and friends: after the arguments
    )

    print(write_report(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
