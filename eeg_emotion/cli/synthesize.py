"""Write synthetic DEAP files (exact `data_preprocessed_python` format).

python launch/synthesize.py --out DIR --subjects N --seed S [--trials T] [--samples N] [--overwrite]
"""

from __future__ import annotations

import sys
import time

from eeg_emotion.cli import handle_errors, parser


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    p = parser(__doc__, prog)
    p.add_argument("--out", required=True, help="folder to write s01.dat .. sNN.dat into")
    p.add_argument("--subjects", type=int, default=32)
    p.add_argument("--trials", type=int, default=40)
    p.add_argument(
        "--samples", type=int, default=8064, help="per trial at 128 Hz, 3 s baseline first"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--effect", type=float, default=1.0, help="label effect strength (0 = none)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--overwrite", action="store_true", help="replace every sNN.dat already in --out"
    )
    args = p.parse_args(argv)
    if args.subjects < 1 or args.trials < 1:
        p.error("--subjects and --trials must be at least 1")
    from eeg_emotion.data.synthetic import SyntheticSpec, synthesize

    spec = SyntheticSpec(args.subjects, args.trials, args.samples, args.seed, args.effect)
    start = time.perf_counter()
    try:
        paths = synthesize(args.out, spec, workers=args.workers, overwrite=args.overwrite)
    except ValueError as exc:
        p.error(str(exc))
    print(
        f"wrote {len(paths)} files to {args.out} in {time.perf_counter() - start:.1f} s "
        f"({args.trials} trials x 40 channels x {args.samples} samples, seed {args.seed}, "
        f"effect {args.effect})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
