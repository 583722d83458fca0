"""Write report.md and PNG plots for a finished run or a cross-validation group; print it.

    python launch/report.py RUN_OR_CV_FOLDER [--compare DIR_OR_COMPARE_MD ...]

A run folder (LLM or baseline) has results.json; a CV group has the folds its cv_group.json
names (the folds' mean ± sd and pooled tables are refreshed in cv_results.{md,json}; a missing
or broken fold is named and nothing is pooled). Plots go to FOLDER/plots/. The report links
FOLDER/compare.md (written by `eeg-emotion compare`, whose default --out is its first folder)
and each --compare given (a compare.md, or the folder holding one), with their verdicts.

A run's scalp maps (plots/scalp_<target>.png) are drawn from its importance.json: baselines
write theirs when fitted (the LR's coefficients, EEGNet's occlusion importance). --importance
first computes an LLM run's: its best model's occlusion importance per channel (and band) on
the test split, one pass over the test windows per channel and band; a run tracked on W&B then
gets its maps there too.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

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
    p.add_argument(
        "--importance",
        action="store_true",
        help="first compute the run's occlusion importance for its scalp maps (LLM runs; "
        "baselines write theirs when fitted), and log the maps to its W&B run",
    )
    args = p.parse_args(argv)
    from eeg_emotion.evaluation.report import (  # matplotlib and friends: after the arguments
        track_maps,
        write_report,
    )

    if args.importance:
        from eeg_emotion.evaluation.importance import run_importance

        logging.basicConfig(level=logging.INFO, format="%(message)s")
        run_importance(Path(args.folder))
    print(write_report(args.folder, compare=args.compare))
    if args.importance:
        track_maps(Path(args.folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
