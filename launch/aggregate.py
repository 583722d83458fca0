"""Aggregate the folds of a cross-validation group into one table.

python launch/aggregate.py OUT      # OUT/fold-*/results.json -> OUT/cv_results.{json,md}
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if len(args) != 1 or args[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    from eeg_emotion.evaluation.cv import write

    try:
        print(write(args[0]))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
