"""Write report.md and PNG plots for a finished run or a cross-validation group; print it.

    python launch/report.py RUN_OR_CV_FOLDER [--compare DIR_OR_COMPARE_MD ...]

A run folder (LLM or baseline) has results.json; a CV group has the folds its cv_group.json
names (the folds' mean ± sd and pooled tables are refreshed in cv_results.{md,json}; a missing
or broken fold is named and nothing is pooled). Plots go to FOLDER/plots/. The report links
FOLDER/compare.md (written by `eeg-emotion compare`, whose default --out is its first folder)
and each --compare given (a compare.md, or the folder holding one), with their verdicts.
"""

from __future__ import annotations

import sys

from eeg_emotion.cli import handle_errors, parser


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    p = parser(__doc__, prog)
    p.add_argument("folder", metavar="RUN_OR_CV_FOLDER")
    p.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="DIR",
        help="also link this compare.md (or the one in this folder); repeatable",
    )
    args = p.parse_args(argv)
    from eeg_emotion.evaluation.report import (
        write_report,  # matplotlib and friends: after the arguments
    )

    print(write_report(args.folder, compare=args.compare))
    return 0


if __name__ == "__main__":
    sys.exit(main())
