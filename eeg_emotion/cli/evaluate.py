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
    from eeg_emotion.errors import StorageError
    from eeg_emotion.evaluation.inference import (  # torch and the model: after the arguments
        evaluate_run,
        save_evaluation,
    )

    metrics, table = evaluate_run(args.run, args.split, overrides, save=False)
    print(table, flush=True)  # shown even when it cannot be saved
    try:
        save_evaluation(args.run, args.split, metrics)
    except StorageError as exc:
        print(f"warning: the table above is not saved: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
