"""Re-evaluate a run's best model.

    python launch/evaluate.py RUN [--split test|val] [--data.root=/other/copy ...]
    python launch/evaluate.py RUN --data source=dreamer root=/data/dreamer [KEY=VALUE ...]

Settings come from RUN/config.yaml; overrides (e.g. where the data lives now) may follow. The
data must still give the run's splits.json, so the numbers are on the same held-out trials.

With --data, the model is scored on another dataset instead (cross-dataset): every trial of
the source and folder it names is test data, channels matched by name (missing ones
interpolated, or left out by a patch model), targets by name, each thresholded on its own
source's scale (`labels.threshold=...` among the items sets it). The scores go to
RUN/eval_cross_<source>.json (eeg_emotion/evaluation/cross_dataset.py).
"""

from __future__ import annotations

import sys

from eeg_emotion.cli import handle_errors, parser


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    p = parser(__doc__, prog)
    p.add_argument("run", help="run folder (holds config.yaml, splits.json, best/)")
    p.add_argument("--split", choices=["test", "val", "train"], default=None)
    p.add_argument(
        "--data",
        nargs="+",
        metavar="KEY=VALUE",
        help="evaluate on another dataset: source=NAME root=FOLDER [options.x=... labels.x=...]",
    )
    args, overrides = p.parse_known_args(argv)
    if args.data is not None and args.split is not None:
        p.error("--split has no meaning with --data: every trial of the other dataset is scored")
    from eeg_emotion.quiet import quiet_libraries

    quiet_libraries()
    from eeg_emotion.errors import StorageError
    from eeg_emotion.evaluation.inference import (  # torch and the model: after the arguments
        evaluate_run,
        save_evaluation,
    )

    if args.data is not None:
        from eeg_emotion.evaluation.cross_dataset import evaluate_on, save_cross

        metrics, table = evaluate_on(args.run, args.data, overrides)
    else:
        split = args.split or "test"
        metrics, table = evaluate_run(args.run, split, overrides, save=False)
    print(table, flush=True)  # shown even when it cannot be saved
    try:
        if args.data is not None:
            save_cross(args.run, metrics)
        else:
            save_evaluation(args.run, split, metrics)
    except StorageError as exc:
        print(f"warning: the table above is not saved: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
