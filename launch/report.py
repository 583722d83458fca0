"""Write report.md and PNG plots for a finished run or a cross-validation group; print it.

    python launch/report.py RUN_OR_CV_FOLDER

A run folder (LLM or baseline) has results.json; a CV group has fold-*/results.json (the
folds' mean ± sd and pooled tables are refreshed in cv_results.{md,json}). Plots go to
FOLDER/report/.
"""

from __future__ import annotations

import sys

from eeg_emotion.errors import DataError


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if len(args) != 1 or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    from eeg_emotion.evaluation.report import (
        write_report,  # matplotlib and friends: after the arguments
    )

    try:
        print(write_report(args[0]))
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
