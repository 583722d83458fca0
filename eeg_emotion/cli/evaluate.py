"""Re-evaluate a run's best model.

    python launch/evaluate.py RUN [--split test|val] [--data.root=/other/copy ...]

Settings come from RUN/config.yaml; overrides (e.g. where the data lives now) may follow. The
data must still give the run's splits.json, so the numbers are on the same held-out trials.
"""

from __future__ import annotations

import sys

from eeg_emotion.cli import handle_errors, parser


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    p = parser(__doc__, prog)
    p.add_argument("run", help="run folder (holds config.yaml, splits.json, best/)")
    p.add_argument("--split", choices=["test", "val", "train"], default="test")
    args, overrides = p.parse_known_args(argv)
    from eeg_emotion.quiet import quiet_libraries

    quiet_libraries()
    from eeg_emotion.evaluation.inference import (
        evaluate_run,  # torch and the model: after the arguments
    )

    _, table = evaluate_run(args.run, args.split, overrides)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
