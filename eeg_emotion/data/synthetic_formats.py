"""Synthetic DREAMER, SEED, SEED-IV, AMIGOS and EDF / FIF recordings, laid out file for file as
the real datasets are, with the planted physiology of the synthetic DEAP generator.

Every signal comes from `synthetic.subject_recording` (32 channels at 128 Hz), driven by each
trial's targets placed on DEAP's valence and arousal scale: DREAMER's 1..5 scores spread over
1..9, AMIGOS' and the EDF / FIF ratings as they are, and SEED's and SEED-IV's classes put in
the valence-arousal plane (`SEED_FELT`, `SEED_IV_FELT`). So in every format the targets drive
the same spectral effects (frontal alpha asymmetry with valence; beta, gamma and posterior
alpha with arousal) and every format can be learned. Each format then keeps its channels:
DREAMER's and AMIGOS' 14 Emotiv channels are DEAP channels; SEED's 62 are DEAP's 32 plus 30
interpolated from their scalp neighbours, resampled to 200 Hz (SEED-IV: 200 or 1000 Hz).
Trial lengths vary within each dataset's range (the same clip has the same length for every
participant); each recording is generated at its longest trial and the others cut from it.

`write_synthetic(format, out_dir, spec)` is the one entry point. Sizes default to the real
datasets' (`synthetic_sizes.DEFAULTS`); any `FormatSpec` field given replaces its default, so
tests can stay tiny. The EDF, BDF and FIF recordings are written by synthetic_mne.py. Like the
DEAP writer, it refuses a folder that already holds that format's dataset files unless
`overwrite`, and then replaces all of them at once.
"""

from __future__ import annotations

import datetime
import math
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from scipy.signal import resample_poly

from eeg_emotion import fileio
from eeg_emotion.data import synthetic, synthetic_record
from eeg_emotion.data.channels import EEG_CHANNELS, PERIPHERAL_CHANNELS, POSITIONS
from eeg_emotion.data.readers import amigos, dreamer, seed, seed_iv
from eeg_emotion.data.synthetic_mne import write_mne
from eeg_emotion.data.synthetic_sizes import (
    FS,
    MNE_FORMATS,
    FormatSpec,
    part_key,
    resolve,
    run_jobs,
    trial_lengths,
)
from eeg_emotion.errors import DataError

# Where the classes sit on DEAP's valence, arousal scale (1..9) to drive the same effects.
SEED_FELT = {"negative": (2.5, 6.0), "neutral": (5.0, 4.0), "positive": (7.5, 6.0)}
SEED_IV_FELT = {"neutral": (5.0, 4.0), "sad": (2.5, 3.5), "fear": (2.5, 7.5), "happy": (7.5, 6.5)}
# Approximate scalp positions of SEED's channels that DEAP lacks (same frame as POSITIONS).
EXTRA_POSITIONS: dict[str, tuple[float, float]] = {
    "FPZ": (0.0, 0.97), "F5": (-0.63, 0.585), "F1": (-0.22, 0.56), "F2": (0.22, 0.56),
    "F6": (0.63, 0.585), "FT7": (-0.9, 0.3), "FC3": (-0.48, 0.33), "FCZ": (0.0, 0.33),
    "FC4": (0.48, 0.33), "FT8": (0.9, 0.3), "C5": (-0.75, 0.0), "C1": (-0.25, 0.0),
    "C2": (0.25, 0.0), "C6": (0.75, 0.0), "TP7": (-0.9, -0.3), "CP3": (-0.48, -0.33),
    "CPZ": (0.0, -0.33), "CP4": (0.48, -0.33), "TP8": (0.9, -0.3), "P5": (-0.63, -0.585),
    "P1": (-0.22, -0.56), "P2": (0.22, -0.56), "P6": (0.63, -0.585), "PO7": (-0.59, -0.81),
    "PO5": (-0.47, -0.8), "POZ": (0.0, -0.8), "PO6": (0.47, -0.8), "PO8": (0.59, -0.81),
    "CB1": (-0.3, -1.1), "CB2": (0.3, -1.1),
}  # fmt: skip
DATASET_FILES: dict[str, tuple[str, ...]] = {  # what a folder of each format holds (globs)
    "dreamer": (dreamer.FILE_NAME,),
    "seed": (f"{seed.FOLDER}/*.mat", f"{seed.FOLDER}/readme.txt"),
    "seed_iv": (f"{seed_iv.FOLDER}/*/*.mat",),
    "amigos": ("Data_Preprocessed_P*.mat",),
    "edf": ("sub-*_eeg.edf", "sub-*_events.tsv", "sub-*_channels.tsv"),
    "bdf": ("sub-*_eeg.bdf", "sub-*_events.tsv", "sub-*_channels.tsv"),
    "fif": ("sub-*_eeg.fif", "sub-*_events.tsv", "sub-*_channels.tsv"),
}


def write_synthetic(
    fmt: str,
    out_dir: str | Path,
    spec: FormatSpec | None = None,
    *,
    overwrite: bool = False,
    workers: int = 1,
) -> list[Path]:
    """Write a synthetic copy of dataset `fmt` into `out_dir`; deterministic for a spec.

    Returns the written files. A folder already holding that format's files is refused unless
    `overwrite`; then the new set replaces every one of them (other files are left alone).
    """
    spec = resolve(fmt, spec)
    _check_room(Path(out_dir), spec)
    if fmt == "deap":
        return _write_deap(out_dir, spec, overwrite=overwrite, workers=workers)
    out = Path(out_dir)
    existing = sorted({p for g in DATASET_FILES[fmt] for p in out.glob(g) if p.is_file()})
    if existing and not overwrite:
        raise DataError(
            out,
            f"already holds {len(existing)} {fmt} file{'s' if len(existing) > 1 else ''} "
            f"({existing[0].relative_to(out)} ..); overwrite=True (--overwrite) replaces them",
        )
    out.mkdir(parents=True, exist_ok=True)
    # Written aside first, then moved in: an interrupted run leaves the old set as it was.
    staging = fileio.temp_dir(out, f".synthesize-{fmt}-")
    try:
        WRITERS[fmt](staging, spec, workers)
        written = sorted(p.relative_to(staging) for p in staging.rglob("*") if p.is_file())
        for old in existing:
            if old.relative_to(out) not in written:
                old.unlink()
        for rel in written:
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / rel, out / rel)
        synthetic_record.mark_synthetic(out, {"format": fmt, **asdict(spec)})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / rel for rel in written]


def _check_room(out: Path, spec: FormatSpec) -> None:
    """Refuse, before anything is written, a size the disk under `out` cannot hold."""
    _, high = spec.seconds or (0, 0)
    longest = max(high, *(spec.long_seconds or (0,))) + (spec.baseline_seconds or 0)
    seconds = (spec.subjects or 0) * (spec.sessions or 1) * (spec.trials or 0) * longest
    # An upper bound: 64 channels of float64 (no format has more).
    rate = max(spec.amplifier.rates) if spec.amplifier else spec.sampling_rate or FS
    needed = seconds * rate * 64 * 8
    if spec.samples is not None:
        needed = (spec.subjects or 0) * (spec.trials or 0) * spec.samples * 64 * 8
    existing = next(p for p in (out, *out.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise DataError(
            out,
            f"these sizes need up to {needed / 2**30:,.1f} GiB, and {free / 2**30:,.1f} GiB are "
            "free there: ask for fewer --subjects, --trials or --seconds",
        )


def deap_spec(spec: FormatSpec) -> synthetic.SyntheticSpec:
    """The DEAP generator's spec of a resolved `spec`: its trials hold the baseline, then the
    stimulus (`samples` in all when given), and the label effects start after the baseline."""
    baseline, (seconds, _) = spec.baseline_seconds or 0.0, spec.seconds or (0, 0)
    return synthetic.SyntheticSpec(
        spec.subjects or 0,
        spec.trials or 0,
        spec.samples or round((baseline + seconds) * FS),
        spec.seed,
        spec.effect,
        effect_kind=spec.effect_kind,
        baseline_seconds=baseline,
    )


def _write_deap(
    out_dir: str | Path, spec: FormatSpec, *, overwrite: bool, workers: int
) -> list[Path]:
    return synthetic.synthesize(out_dir, deap_spec(spec), workers, overwrite=overwrite)


# ---------------------------------------------------------------------------------- signals


def _generate(
    spec: FormatSpec, key: tuple[int, ...], felt: np.ndarray, lengths: list[int], lead: int
) -> list[np.ndarray]:
    """Per trial a (40, lead + length) DEAP-channel signal at 128 Hz, its label effects from
    `felt` (valence, arousal on 1..9) starting after `lead` samples."""
    total = max(lead + max(lengths), 3 * FS)  # the generator's artefacts need a few seconds
    labels = np.column_stack([felt[:, 0], felt[:, 1], np.full((len(felt), 2), 5.0)])
    deap = synthetic.SyntheticSpec(1, len(lengths), total, spec.seed, spec.effect, spec.effect_kind)
    data, _ = synthetic.subject_recording(deap, part_key(key), labels=labels, onset=lead)
    return [data[i, :, : lead + n] for i, n in enumerate(lengths)]


def _emotiv(signal: np.ndarray) -> np.ndarray:
    """The 14 Emotiv channels (DREAMER's order) of a DEAP-channel signal."""
    return signal[[EEG_CHANNELS.index(c) for c in dreamer.CHANNELS]]


def _seed_mixer() -> np.ndarray:
    """(62, 32): SEED's channels from DEAP's, the ones DEAP lacks from their neighbours."""
    lookup = {c.upper(): i for i, c in enumerate(EEG_CHANNELS)}
    xy = np.array([POSITIONS[c] for c in EEG_CHANNELS])
    mix = np.zeros((len(seed.CHANNELS), len(EEG_CHANNELS)))
    for row, name in enumerate(seed.CHANNELS):
        if name in lookup:
            mix[row, lookup[name]] = 1.0
            continue
        d2 = ((xy - np.array(EXTRA_POSITIONS[name])) ** 2).sum(1)
        weights = np.exp(-d2 / (2 * 0.2**2))
        mix[row] = weights / weights.sum()
    return mix


def _seed_signals(
    spec: FormatSpec, key: tuple[int, ...], felt: np.ndarray, lengths: list[int], rate: int
) -> list[np.ndarray]:
    """(62, length) signals at `rate` Hz for SEED's layout."""
    ratio = Fraction(rate, FS)
    coarse = [math.ceil(n / ratio) + 2 for n in lengths]
    mixer = _seed_mixer()
    out = []
    for signal, n in zip(_generate(spec, key, felt, coarse, 0), lengths, strict=True):
        eeg = mixer @ signal[: len(EEG_CHANNELS)]
        eeg -= eeg.mean(axis=0, keepdims=True)  # common average over the 62
        fine = resample_poly(eeg, ratio.numerator, ratio.denominator, axis=-1)
        out.append(np.ascontiguousarray(fine[:, :n]))
    return out


def _ecg(rng: np.random.Generator, samples: int, rate: float, arousal: float) -> np.ndarray:
    """(samples, 2) two-lead ECG in microvolts; the heart beats faster with arousal."""
    t = np.arange(samples) / rate
    beat = rng.uniform(1.0, 1.3) + 0.1 * (arousal - 5) / 4  # Hz
    phase = (t * beat + 0.02 * np.sin(2 * np.pi * 0.25 * t)) % 1.0
    wave = 1000 * np.exp(-(((phase - 0.5) / 0.012) ** 2)) + 200 * np.exp(
        -(((phase - 0.75) / 0.05) ** 2)
    )
    leads = np.stack([wave, 0.7 * wave], axis=1)
    return leads + rng.normal(0, 20, leads.shape)


def _felt_from_classes(
    rng: np.random.Generator, classes: Iterable[str], where: dict[str, tuple[float, float]]
) -> np.ndarray:
    """(trials, 2) valence, arousal for class names, with some trial-to-trial spread."""
    centres = np.array([where[c] for c in classes], np.float64)
    return np.clip(centres + rng.normal(0, 0.6, centres.shape), 1, 9)


def _cell(items: list[Any], shape: tuple[int, int]) -> np.ndarray:
    """A MATLAB cell (object array) of `shape` holding `items` in order."""
    out = np.empty(shape, dtype=object)
    for i, item in enumerate(items):
        out[np.unravel_index(i, shape)] = item
    return out


def _struct(**values: Any) -> np.ndarray:
    """A 1x1 MATLAB struct whose fields are in the order given."""
    out = np.empty((1, 1), dtype=[(name, object) for name in values])
    for name, value in values.items():
        out[0, 0][name] = value
    return out


# ---------------------------------------------------------------------------------- DREAMER


def _write_dreamer(folder: Path, spec: FormatSpec, workers: int) -> None:
    n, subjects = spec.trials or 18, spec.subjects or 23
    lengths = trial_lengths(spec, 1, n, FS)
    valence, arousal = synthetic.video_design(synthetic.SyntheticSpec(trials=n, seed=spec.seed))
    design = np.column_stack([valence, arousal])
    args = [(spec, s, lengths, design) for s in range(1, subjects + 1)]
    participants = run_jobs(_dreamer_participant, args, workers)
    top = _struct(
        Data=_cell(participants, (1, subjects)),
        EEG_SamplingRate=float(FS),
        ECG_SamplingRate=256.0,
        EEG_Electrodes=_cell(list(dreamer.CHANNELS), (1, len(dreamer.CHANNELS))),
        noOfSubjects=float(subjects),
        noOfVideoSequences=float(n),
        Disclaimer="Synthetic data in the DREAMER layout; not recorded from anyone.",
        Provider="eeg-emotion synthetic generator",
        Version="1.0",
        Acknowledgement="Layout of the DREAMER database (Katsigiannis and Ramzan, 2018).",
    )
    scipy.io.savemat(folder / dreamer.FILE_NAME, {"DREAMER": top})


def _dreamer_participant(
    spec: FormatSpec, subject: int, lengths: list[int], design: np.ndarray
) -> np.ndarray:
    """One participant's 1x1 struct: Age, Gender, EEG, ECG and the three 18x1 scores."""
    rng = np.random.default_rng([spec.seed, 2, subject])
    n = len(lengths)
    felt9 = design + rng.normal(0, 0.5, 2) + rng.normal(0, 1.3, design.shape)
    scores = np.clip(np.round(1 + (felt9 - 1) / 2), 1, 5)  # 1..9 -> DREAMER's 1..5
    dominance = np.clip(np.round(3 + 0.3 * (scores[:, 0] - 3) + rng.normal(0, 0.8, n)), 1, 5)
    lead = round((spec.baseline_seconds or 0) * FS)
    signals = _generate(spec, (2, subject), 1 + 2 * (scores - 1), lengths, lead)
    eeg = [_emotiv(x).T for x in signals]  # (samples, 14), as DREAMER stores them
    ecg = [  # DREAMER's ECG: 2 leads at 256 Hz
        _ecg(rng, 2 * x.shape[0], 256.0, 1 + 2 * (a - 1))
        for x, a in zip(eeg, scores[:, 1], strict=True)
    ]
    return _struct(
        Age=str(int(rng.integers(22, 34))),
        Gender=str(rng.choice(["male", "female"])),
        EEG=_struct(
            baseline=_cell([x[:lead] for x in eeg], (n, 1)),
            stimuli=_cell([x[lead:] for x in eeg], (n, 1)),
        ),
        ECG=_struct(
            baseline=_cell([x[: 2 * lead] for x in ecg], (n, 1)),
            stimuli=_cell([x[2 * lead :] for x in ecg], (n, 1)),
        ),
        ScoreValence=scores[:, :1].copy(),
        ScoreArousal=scores[:, 1:].copy(),
        ScoreDominance=dominance[:, None],
    )


# ------------------------------------------------------------------------------ SEED, SEED-IV


def _initials(subject: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    return "".join(letters[(subject * 7 + 5 * i) % 26] for i in range(3))


def _session_date(subject: int, session: int) -> str:
    day = datetime.date(2013, 10, 1) + datetime.timedelta(days=3 * subject + 9 * (session - 1))
    return day.strftime("%Y%m%d")


def _write_seed(folder: Path, spec: FormatSpec, workers: int) -> None:
    root = folder / seed.FOLDER
    root.mkdir()
    n = spec.trials or 15
    labels = np.array(seed.LABELS[:n], np.float64)
    scipy.io.savemat(root / seed.LABEL_FILE, {"label": labels[None, :]})
    (root / "readme.txt").write_text(
        "Synthetic data in the SEED layout (not recorded from anyone).\n"
        "label.mat: 1 positive, 0 neutral, -1 negative, per clip, the same in every session.\n"
        "<subject>_<YYYYMMDD>.mat: <initials>_eeg<k>, 62 channels x samples at 200 Hz.\n"
    )
    lengths = trial_lengths(spec, 3, n, seed.SAMPLING_RATE)  # the same clips in every session
    classes = [seed.CLASSES[int(v) + 1] for v in labels]
    args = [
        (spec, s, j, root / f"{s}_{_session_date(s, j)}.mat", lengths, classes, "seed")
        for s in range(1, (spec.subjects or 15) + 1)
        for j in range(1, (spec.sessions or 3) + 1)
    ]
    run_jobs(_seed_file, args, workers)


def _write_seed_iv(folder: Path, spec: FormatSpec, workers: int) -> None:
    n, rate = spec.trials or 24, spec.sampling_rate or 200
    args = []
    for j in range(1, (spec.sessions or 3) + 1):
        (folder / seed_iv.FOLDER / str(j)).mkdir(parents=True)
        lengths = trial_lengths(spec, 4 + j, n, rate)  # each session has its own 24 clips
        classes = [seed_iv.CLASSES[c] for c in seed_iv.SESSION_LABELS[j][:n]]
        for s in range(1, (spec.subjects or 15) + 1):
            path = folder / seed_iv.FOLDER / str(j) / f"{s}_{_session_date(s, j)}.mat"
            args.append((spec, s, j, path, lengths, classes, "seed_iv"))
    run_jobs(_seed_file, args, workers)


def _seed_file(
    spec: FormatSpec,
    subject: int,
    session: int,
    path: Path,
    lengths: list[int],
    classes: list[str],
    dataset: str,
) -> None:
    """One `<subject>_<date>.mat` of SEED or SEED-IV: `<initials>_eeg<k>`, (62, samples)."""
    code = 3 if dataset == "seed" else 4
    rng = np.random.default_rng([spec.seed, code, subject, session])
    felt = _felt_from_classes(rng, classes, SEED_FELT if dataset == "seed" else SEED_IV_FELT)
    rate = spec.sampling_rate or seed.SAMPLING_RATE
    signals = _seed_signals(spec, (code, subject, session), felt, lengths, rate)
    name = _initials(subject)
    scipy.io.savemat(path, {f"{name}_eeg{k}": x for k, x in enumerate(signals, 1)})


# ------------------------------------------------------------------------------------ AMIGOS


def _write_amigos(folder: Path, spec: FormatSpec, workers: int) -> None:
    short = trial_lengths(spec, 5, amigos.SHORT_VIDEOS, FS)
    long = trial_lengths(spec, 6, amigos.VIDEOS - amigos.SHORT_VIDEOS, FS, spec.long_seconds)
    valence, arousal = synthetic.video_design(
        synthetic.SyntheticSpec(trials=amigos.VIDEOS, seed=spec.seed)
    )
    design = np.column_stack([arousal, valence])  # AMIGOS' order: arousal first
    args = [
        (spec, p, folder / f"Data_Preprocessed_P{p:02d}.mat", short + long, design)
        for p in range(1, (spec.subjects or 40) + 1)
    ]
    run_jobs(_amigos_file, args, workers)


def _amigos_file(
    spec: FormatSpec, participant: int, path: Path, lengths: list[int], design: np.ndarray
) -> None:
    """joined_data (1x20 cell of samples x 17) and labels_selfassessment (1x20 cell of 1x12)."""
    rng = np.random.default_rng([spec.seed, 5, participant])
    n = amigos.VIDEOS
    ar_va = np.clip(design + rng.normal(0, 0.5, 2) + rng.normal(0, 1.4, design.shape), 1, 9)
    dominance = np.clip(5 + 0.35 * (ar_va[:, 1] - 5) + rng.normal(0, 1.4, n), 1, 9)
    liking = np.clip(5.5 + 0.6 * (ar_va[:, 1] - 5) + rng.normal(0, 1.2, n), 1, 9)
    familiarity = np.clip(rng.normal(4, 2, n), 1, 9)
    ratings = np.round(np.column_stack([ar_va, dominance, liking, familiarity]), 2)
    felt = ratings[:, [1, 0]]  # valence, arousal
    lead = round((spec.baseline_seconds or 0) * FS)
    short = amigos.SHORT_VIDEOS
    signals = _generate(spec, (5, participant, 0), felt[:short], lengths[:short], lead)
    signals += _generate(spec, (5, participant, 1), felt[short:], lengths[short:], lead)
    missing = participant in (spec.without_long_videos or ())
    cells, rows = [], []
    for k, (x, row) in enumerate(zip(signals, ratings, strict=True), 1):
        if missing and k > short:
            cells.append(np.zeros((0, 0)))
            rows.append(np.zeros((0, 0)))
            continue
        gsr = x[len(EEG_CHANNELS) + PERIPHERAL_CHANNELS.index("GSR")]
        ecg = _ecg(rng, x.shape[1], FS, row[0])
        cells.append(np.column_stack([_emotiv(x).T, ecg, gsr]))
        rows.append(np.concatenate([row, _basic_emotions(row)])[None, :])
    scipy.io.savemat(
        path,
        {"joined_data": _cell(cells, (1, n)), "labels_selfassessment": _cell(rows, (1, n))},
    )


def _basic_emotions(row: np.ndarray) -> np.ndarray:
    """The seven 0/1 emotions, from where (arousal, valence) falls."""
    arousal, valence = row[0], row[1]
    neutral = abs(valence - 5) < 1 and abs(arousal - 5) < 1
    flags = [
        neutral,
        valence < 4 and arousal > 5.5,  # disgust
        valence > 6,  # happiness
        arousal > 7,  # surprise
        valence < 3.5 and arousal > 6.5,  # anger
        valence < 4 and arousal > 6,  # fear
        valence < 4 and arousal < 5,  # sadness
    ]
    return np.array(flags, np.float64)


WRITERS: dict[str, Callable[[Path, FormatSpec, int], None]] = {
    "dreamer": _write_dreamer,
    "seed": _write_seed,
    "seed_iv": _write_seed_iv,
    "amigos": _write_amigos,
    **{ext: write_mne(ext) for ext in MNE_FORMATS},
}
