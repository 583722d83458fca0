"""Aggregate the folds of a cross-validation group into one table.

python launch/aggregate.py OUT      # the folds OUT/cv_group.json names -> OUT/cv_results.{json,md}
"""

from __future__ import annotations

import sys

from eeg_emotion.cli import folder_argument, handle_errors
from eeg_emotion.errors import DataError


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    del prog  # the usage is the docstring
    folder = folder_argument(argv, __doc__)
    from eeg_emotion.evaluation.cv import write_cv_results

    try:
        print(write_cv_results(folder))
    except FileNotFoundError as exc:  # no fold has finished yet
        raise DataError(None, str(exc)) from exc
    return 0


if __name__ == "__main__":
    sys.exit(main())
