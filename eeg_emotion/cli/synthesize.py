"""Write synthetic EEG emotion files in a real dataset's exact on-disk layout.

python launch/synthesize.py --out DIR --subjects N --seed S [--trials T] [--samples N] [--overwrite]
python launch/synthesize.py --format dreamer|seed|seed_iv|amigos|edf|fif --out DIR [--subjects N]
                            [--sessions K] [--trials T] [--seconds LOW HIGH] [--sampling-rate HZ]

DEAP (the default) writes data_preprocessed_python (s01.dat ..); the other formats write what
each dataset ships (DREAMER.mat, Preprocessed_EEG/, eeg_raw_data/<session>/,
Data_Preprocessed_P<NN>.mat) or EDF / FIF recordings with a label table. Sizes left out take the
real dataset's. The same planted physiology drives every format. A folder that already holds
the format's files is refused unless --overwrite.
"""

from __future__ import annotations

import argparse
import sys
import time

from eeg_emotion.cli import handle_errors, parser

FORMATS = ("deap", "dreamer", "seed", "seed_iv", "amigos", "edf", "fif")


def _arguments(prog: str | None) -> argparse.ArgumentParser:
    p = parser(__doc__, prog)
    p.add_argument("--out", required=True, help="folder to write the dataset's files into")
    p.add_argument("--format", choices=FORMATS, default="deap")
    p.add_argument("--subjects", type=int, default=None, help="default: the dataset's (DEAP 32)")
    p.add_argument("--trials", type=int, default=None, help="per session (DEAP default 40)")
    p.add_argument(
        "--samples", type=int, default=8064, help="DEAP: per trial at 128 Hz, 3 s baseline first"
    )
    p.add_argument("--sessions", type=int, default=None, help="SEED, SEED-IV (default 3)")
    p.add_argument(
        "--seconds", type=float, nargs=2, default=None, help="range of the stimulus lengths"
    )
    p.add_argument("--sampling-rate", type=int, default=None, help="SEED-IV: 200 or 1000")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--effect", type=float, default=1.0, help="label effect strength (0 = none)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--overwrite", action="store_true", help="replace the dataset files already in --out"
    )
    return p


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    p = _arguments(prog)
    args = p.parse_args(argv)
    for name in ("subjects", "trials", "sessions", "sampling_rate", "samples", "workers"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.effect < 0:
        p.error("--effect must be at least 0")
    if args.seconds is not None and not 0 < args.seconds[0] <= args.seconds[1]:
        p.error("--seconds LOW HIGH needs 0 < LOW <= HIGH")
    start = time.perf_counter()
    if args.format == "deap":
        from eeg_emotion.data.synthetic import SyntheticSpec, synthesize

        subjects, trials = args.subjects or 32, args.trials or 40
        spec = SyntheticSpec(subjects, trials, args.samples, args.seed, args.effect)
        try:
            paths = synthesize(args.out, spec, workers=args.workers, overwrite=args.overwrite)
        except ValueError as exc:
            p.error(str(exc))
        detail = f"{trials} trials x 40 channels x {args.samples} samples"
    else:
        from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic

        fspec = FormatSpec(
            subjects=args.subjects,
            sessions=args.sessions,
            trials=args.trials,
            seconds=tuple(args.seconds) if args.seconds else None,
            sampling_rate=args.sampling_rate,
            seed=args.seed,
            effect=args.effect,
        )
        try:
            paths = write_synthetic(
                args.format, args.out, fspec, overwrite=args.overwrite, workers=args.workers
            )
        except ValueError as exc:
            p.error(str(exc))
        detail = args.format
    print(
        f"wrote {len(paths)} files to {args.out} in {time.perf_counter() - start:.1f} s "
        f"({detail}, seed {args.seed}, effect {args.effect})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
