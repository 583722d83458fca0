"""What the synthetic formats hold (synthetic_formats.py writes them): each format's real sizes
(`DEFAULTS`) and the `FormatSpec` that replaces any of them, checked; the trial lengths drawn
within a spec's range; one generator key per part of a dataset; and jobs run in parallel.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from eeg_emotion.data import synthetic
from eeg_emotion.data.channels import EEG_CHANNELS
from eeg_emotion.data.readers import amigos, seed, seed_iv
from eeg_emotion.data.source_options import DEAP_BASELINE_SECONDS
from eeg_emotion.data.synthetic_amplifier import Amplifier

FS = synthetic.FS
FORMATS = ("deap", "dreamer", "seed", "seed_iv", "amigos", "edf", "bdf", "fif")
MNE_FORMATS = ("edf", "bdf", "fif")  # recordings read through MNE, with a label table


@dataclass(frozen=True)
class FormatSpec:
    """What to write; a None field takes the format's real size from `DEFAULTS`."""

    subjects: int | None = None
    sessions: int | None = None  # SEED, SEED-IV: 3
    trials: int | None = None  # per session; AMIGOS always has its 20 videos
    seconds: tuple[float, float] | None = None  # stimulus length range
    long_seconds: tuple[float, float] | None = None  # AMIGOS videos 17-20
    baseline_seconds: float | None = None  # before each stimulus (SEED, SEED-IV: none)
    sampling_rate: int | None = None  # SEED-IV: 200 or 1000; fixed by the others
    without_long_videos: tuple[int, ...] | None = None  # AMIGOS participants lacking 17-20
    samples: int | None = None  # DEAP: per trial, baseline included (None: baseline + seconds)
    seed: int = 0
    effect: float = 1.0  # strength of every label effect; 0 removes them
    # Which effect the ratings drive (`synthetic.EFFECT_KINDS`). The coupled and bursting sites
    # are drawn among DEAP's 32 electrodes: a montage without some of them (DREAMER's and
    # AMIGOS' 14) carries the sites it has; SEED's extra electrodes mix their neighbours.
    effect_kind: str = "spectral"
    # EDF, BDF, FIF: the rate and artefacts of an amplifier (`synthetic_amplifier`); None: the
    # clean signal at 128 Hz.
    amplifier: Amplifier | None = None


DEFAULTS: dict[str, FormatSpec] = {
    "deap": FormatSpec(32, 1, 40, (60, 60), None, DEAP_BASELINE_SECONDS, FS),
    "dreamer": FormatSpec(23, 1, 18, (65, 393), None, 61, FS),
    "seed": FormatSpec(15, 3, 15, (185, 265), None, 0, seed.SAMPLING_RATE),
    "seed_iv": FormatSpec(15, 3, 24, (90, 140), None, 0, 200),
    "amigos": FormatSpec(40, 1, 20, (51, 150), (14 * 60, 24 * 60), 5, FS, (8, 24, 28)),
    "edf": FormatSpec(8, 1, 10, (30, 60), None, 3, FS),
    "bdf": FormatSpec(8, 1, 10, (30, 60), None, 3, FS),
    "fif": FormatSpec(8, 1, 10, (30, 60), None, 3, FS),
}


def resolve(fmt: str, spec: FormatSpec | None = None) -> FormatSpec:
    """`spec` with its None fields taken from the format's defaults, checked."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    given = spec or FormatSpec()
    chosen = {f.name: getattr(given, f.name) for f in fields(given)}
    out = replace(DEFAULTS[fmt], **{k: v for k, v in chosen.items() if v is not None})
    check(fmt, out, given)
    return out


def check(fmt: str, spec: FormatSpec, given: FormatSpec) -> None:
    limits = {"seed": len(seed.LABELS), "seed_iv": seed_iv.TRIALS, "amigos": amigos.VIDEOS}
    low, high = spec.seconds or (0, 0)
    trials, sessions = spec.trials or 0, spec.sessions or 0
    rates = (200, 1000) if fmt == "seed_iv" else (DEFAULTS[fmt].sampling_rate,)
    checks = [
        ((spec.subjects or 0) < 1, "subjects must be at least 1"),
        (trials < 1, "trials must be at least 1"),
        (
            not 2 <= low <= high,
            f"seconds must be (low, high), 2 <= low <= high, not {spec.seconds}",
        ),
        ((spec.baseline_seconds or 0) < 0, "baseline_seconds must be >= 0"),
        (trials > limits.get(fmt, trials), f"{fmt} has at most {limits.get(fmt)} trials"),
        (fmt == "amigos" and trials != amigos.VIDEOS, "AMIGOS files always hold 20 videos"),
        (fmt == "deap" and low != high, "DEAP trials all have the same length"),
        (fmt != "deap" and spec.samples is not None, "samples is DEAP's; the others take seconds"),
        (
            given.sampling_rate not in (None, *rates),
            f"{fmt} is at {' or '.join(map(str, rates))} Hz",
        ),
        (fmt not in ("seed", "seed_iv") and sessions != 1, f"{fmt} has one session"),
        (fmt in ("seed", "seed_iv") and not 1 <= sessions <= 3, f"{fmt} has 1..3 sessions"),
        (
            spec.amplifier is not None and fmt not in MNE_FORMATS,
            f"an amplifier's rate and artefacts are for {', '.join(MNE_FORMATS)}, not {fmt}",
        ),
    ]
    for failed, problem in checks:
        if failed:
            raise ValueError(problem)
    if spec.amplifier is not None:
        spec.amplifier.check(EEG_CHANNELS, fmt, spec.baseline_seconds or 0)


def part_key(parts: tuple[int, ...]) -> int:
    """One non-negative generator key per (format, subject, session, part)."""
    out = 0
    for part in parts:
        out = out * 1000 + part
    return out


def trial_lengths(
    spec: FormatSpec,
    stream: int,
    count: int,
    rate: float,
    seconds: tuple[float, float] | None = None,
) -> list[int]:
    """`count` trial lengths in samples at `rate`, drawn within the spec's range."""
    low, high = seconds or spec.seconds or (60, 60)
    rng = np.random.default_rng([spec.seed, stream])
    return [round(s * rate) for s in rng.uniform(low, high, count)]


def run_jobs(job: Callable[..., Any], args: list[tuple], workers: int) -> list[Any]:
    """`job(*a)` for every `a` of `args`, in `workers` processes where there is more than one."""
    if workers <= 1 or len(args) <= 1:
        return [job(*a) for a in args]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(job, *zip(*args, strict=True)))
