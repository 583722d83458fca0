"""Write synthetic EEG emotion files in a real dataset's exact on-disk layout.

python launch/synthesize.py --out DIR --subjects N --seed S [--trials T] [--samples N] [--overwrite]
                            [--effect E] [--effect-kind spectral|coupling|temporal]
                            [--baseline-seconds S] [--seconds S S]
python launch/synthesize.py --format dreamer|seed|seed_iv|amigos|edf|bdf|fif --out DIR
                            [--subjects N] [--sessions K] [--trials T] [--seconds LOW HIGH]
                            [--sampling-rate HZ] [--baseline-seconds S] [--long-seconds LOW HIGH]
                            [--effect E] [--effect-kind spectral|coupling|temporal]
python launch/synthesize.py --format edf|bdf|fif --out DIR [--rate HZ [HZ ...]] [--dc-offset UV]
                            [--drift UV] [--line-noise UV] [--line-frequency 50|60]
                            [--reference NAME] [--dead-channel NAME] [...]
python launch/synthesize.py --format bdf --out DIR --status START END [...]

DEAP (the default) writes data_preprocessed_python (s01.dat ..); the other formats write what
each dataset ships (DREAMER.mat, Preprocessed_EEG/, eeg_raw_data/<session>/,
Data_Preprocessed_P<NN>.mat) or EDF / BDF / FIF recordings with a label table. Sizes left out
take the real dataset's. The same planted physiology drives every format. A folder that already
holds the format's files is refused unless --overwrite.

--effect scales the label effects (0 none, 0.4 weak, 1 default, 2 strong); --effect-kind picks
which effect the ratings drive: spectral (band power, the default), coupling (phase locking
between channel pairs) or temporal (burstiness within a window). The last two hold every
channel's power spectrum fixed, so band power cannot see them. Their sites are drawn per --seed
among DEAP's 32 electrodes: a 14-channel format (DREAMER, AMIGOS) carries the sites it has.

EDF, BDF and FIF recordings can look like an amplifier's output: --rate (one rate, or several
taken by the subjects in turn: --rate 512 1000 mixes them), DC offsets, slow drift, line noise,
an online reference with its own channel, a dead channel (marked bad in a BIDS channels.tsv).
The planted effects stay where they were (eeg_emotion/data/synthetic_amplifier.py).
--status START END (BDF) marks the trials in a BioSemi Status channel instead of annotations:
code START at each stimulus onset, END where it stops, over the upper bits (0xFF0000) that
the amplifier keeps set; the events table names each trial's number and sample.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from eeg_emotion.cli import handle_errors, number, parser
from eeg_emotion.numbers import DAY_SECONDS, SEED_MAX

FORMATS = ("deap", "dreamer", "seed", "seed_iv", "amigos", "edf", "bdf", "fif")
AMPLIFIER = ("rate", "dc_offset", "drift", "line_noise", "reference", "dead_channel", "status")
EFFECT_KINDS = ("spectral", "coupling", "temporal")  # as eeg_emotion.data.synthetic's


def _arguments(prog: str | None) -> argparse.ArgumentParser:
    p = parser(__doc__, prog)
    p.add_argument("--out", required=True, help="folder to write the dataset's files into")
    p.add_argument("--format", choices=FORMATS, default="deap")
    p.add_argument(
        "--subjects", type=number(1, 10_000), default=None, help="default: the dataset's (DEAP 32)"
    )
    p.add_argument(
        "--trials", type=number(1, 100_000), default=None, help="per session (DEAP default 40)"
    )
    p.add_argument(
        "--samples",
        type=number(1, 10**8),
        default=None,
        help="DEAP: per trial at 128 Hz, baseline included (default 8064: 3 s + 60 s)",
    )
    p.add_argument(
        "--sessions", type=number(1, 1000), default=None, help="SEED, SEED-IV (default 3)"
    )
    p.add_argument(
        "--seconds",
        type=number(0, DAY_SECONDS, integer=False, low_open=True),
        nargs=2,
        default=None,
        help="range of the stimulus lengths (DEAP: one length, twice; default 60 60)",
    )
    p.add_argument(
        "--long-seconds",
        type=number(0, DAY_SECONDS, integer=False, low_open=True),
        nargs=2,
        default=None,
        help="AMIGOS: range of the long videos' lengths (default 840 1440)",
    )
    p.add_argument(
        "--baseline-seconds",
        type=number(0, DAY_SECONDS, integer=False),
        default=None,
        help="rest before each stimulus (default the dataset's: DEAP 3, DREAMER 61, AMIGOS 5, "
        "EDF/FIF 3; SEED, SEED-IV have none)",
    )
    p.add_argument(
        "--sampling-rate", type=number(1, 100_000), default=None, help="SEED-IV: 200 or 1000"
    )
    amp = p.add_argument_group("EDF, BDF, FIF: an amplifier's output")
    amp.add_argument(
        "--rate", type=number(1, 100_000), nargs="+", default=None, help="Hz, per subject in turn"
    )
    microvolts = number(0, 1e6, integer=False)
    amp.add_argument("--dc-offset", type=microvolts, default=None, help="uV, +- per channel")
    amp.add_argument("--drift", type=microvolts, default=None, help="uV, slow drift")
    amp.add_argument("--line-noise", type=microvolts, default=None, help="uV of mains hum")
    amp.add_argument("--line-frequency", type=float, choices=(50.0, 60.0), default=50.0)
    amp.add_argument("--reference", default=None, help="the online reference's channel name")
    amp.add_argument("--dead-channel", default=None, help="an EEG channel that records nothing")
    amp.add_argument(
        "--status",
        type=number(1, 0xFFFF),
        nargs=2,
        default=None,
        metavar=("START", "END"),
        help="BDF: trials marked in a BioSemi Status channel by these codes, not annotations",
    )
    p.add_argument("--seed", type=number(0, SEED_MAX), default=0)
    p.add_argument(
        "--effect",
        type=number(0, 100, integer=False),
        default=1.0,
        help="label effect strength (0 = none)",
    )
    p.add_argument(
        "--effect-kind",
        choices=EFFECT_KINDS,
        default="spectral",
        help="what the ratings change: band power (spectral), phase locking between "
        "channel pairs (coupling) or burstiness in time (temporal)",
    )
    p.add_argument("--workers", type=number(1, 256), default=2)
    p.add_argument(
        "--overwrite", action="store_true", help="replace the dataset files already in --out"
    )
    return p


def _check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in ("seconds", "long_seconds"):
        value = getattr(args, name)
        if value is not None and not 0 < value[0] <= value[1]:
            p.error(f"--{name.replace('_', '-')} LOW HIGH needs 0 < LOW <= HIGH")
    deap, seconds = args.format == "deap", args.seconds
    misplaced = [
        (args.samples is not None and not deap, "--samples is DEAP's; the others take --seconds"),
        (args.long_seconds is not None and args.format != "amigos", "--long-seconds is AMIGOS'"),
        (
            args.format in ("seed", "seed_iv") and args.baseline_seconds not in (None, 0),
            "SEED and SEED-IV recordings have no baseline",
        ),
        (
            deap and seconds is not None and seconds[0] != seconds[1],
            "DEAP trials all have the same length: --seconds S S",
        ),
        (deap and seconds is not None and args.samples is not None, "--samples or --seconds"),
        (
            args.format not in ("edf", "bdf", "fif") and _amplifier(args) is not None,
            "--rate, --dc-offset, --drift, --line-noise, --reference and --dead-channel are for "
            "--format edf, bdf or fif",
        ),
        (args.status is not None and args.format != "bdf", "--status is for --format bdf"),
    ]
    for failed, problem in misplaced:
        if failed:
            p.error(problem)


def _write(p: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[list[Path], str]:
    from eeg_emotion.data.synthetic_formats import FormatSpec, deap_spec, resolve, write_synthetic

    fspec = FormatSpec(
        subjects=args.subjects,
        sessions=args.sessions,
        trials=args.trials,
        samples=args.samples,
        seconds=tuple(args.seconds) if args.seconds else None,
        long_seconds=tuple(args.long_seconds) if args.long_seconds else None,
        baseline_seconds=args.baseline_seconds,
        sampling_rate=args.sampling_rate,
        seed=args.seed,
        effect=args.effect,
        effect_kind=args.effect_kind,
        amplifier=_amplifier(args),
    )
    try:
        paths = write_synthetic(
            args.format, args.out, fspec, overwrite=args.overwrite, workers=args.workers
        )
    except ValueError as exc:
        p.error(str(exc))
    kind = "" if args.effect_kind == "spectral" else f", {args.effect_kind} effect"
    if args.format != "deap":
        return paths, f"{args.format}{kind}"
    deap = deap_spec(resolve("deap", fspec))
    return paths, f"{deap.trials} trials x 40 channels x {deap.samples} samples{kind}"


def _amplifier(args: argparse.Namespace) -> Any:
    """The amplifier the options describe, or None where none of them is given."""
    from eeg_emotion.data.synthetic_amplifier import Amplifier

    if all(getattr(args, name) is None for name in AMPLIFIER):
        return None
    return Amplifier(
        rates=tuple(args.rate or (128,)),
        dc_offset=args.dc_offset or 0.0,
        drift=args.drift or 0.0,
        line_noise=args.line_noise or 0.0,
        line_frequency=args.line_frequency,
        reference=args.reference,
        dead_channel=args.dead_channel,
        status=tuple(args.status) if args.status else None,
    )


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    p = _arguments(prog)
    args = p.parse_args(argv)
    _check(p, args)
    start = time.perf_counter()
    paths, detail = _write(p, args)
    print(
        f"wrote {len(paths)} files to {args.out} in {time.perf_counter() - start:.1f} s "
        f"({detail}, seed {args.seed}, effect {args.effect})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
