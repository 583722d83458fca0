"""Compare models scored on the same trials: paired bootstrap and exact McNemar tests.

    python launch/compare.py FOLDER FOLDER [FOLDER ...] [--out DIR] [--part test|val]
        [--resamples N] [--seed S] [--overwrite]

Each FOLDER is a run folder (LLM or baseline) or a CV group, all of one kind and scored on the
same trials with the same true labels (CV groups: the same folds, fold by fold); anything else
is refused, naming the folders and the trials that differ. The first FOLDER is compared with
each other one, per target and at trial level: the balanced-accuracy difference with a paired
bootstrap 95 % CI, and an exact McNemar test (CV groups: per fold and pooled over the folds;
--part val on groups whose val trials repeat over the folds, as with 3 or more folds: per fold
only, one verdict per fold).
Writes DIR/compare.md (printed) and DIR/compare.json; DIR defaults to the first FOLDER. A
compare.md/.json of another comparison there is replaced only with --overwrite.
"""

from __future__ import annotations

import sys

from eeg_emotion.cli import handle_errors, number, parser
from eeg_emotion.numbers import SEED_MAX


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    p = parser(__doc__, prog)
    p.add_argument("folders", nargs="+", metavar="FOLDER", help="run folders or CV groups")
    p.add_argument("--out", help="where compare.md and compare.json go (default: the first)")
    p.add_argument("--part", choices=["test", "val"], default="test", help="default: test")
    p.add_argument(
        "--resamples", type=number(1, 100_000), default=1000, help="bootstrap resamples (1000)"
    )
    p.add_argument("--seed", type=number(0, SEED_MAX), default=0, help="the bootstrap's seed (0)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace another comparison's files in --out"
    )
    args = p.parse_args(argv)
    from eeg_emotion.evaluation.compare import write_comparison

    text, _ = write_comparison(
        args.folders,
        args.out,
        part=args.part,
        n_boot=args.resamples,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
