"""Synthetic DEAP: files in the exact `data_preprocessed_python` format with known label effects.

Per participant: spatially correlated 1/f background, a subject-specific alpha rhythm with a
posterior topography, theta/beta/gamma activity, residual eye blinks and muscle bursts, then the
4-45 Hz band-pass and common average reference the real files already have. Ratings follow the
DEAP design (videos chosen per valence/arousal quadrant, a per-video component shared by every
subject, subject biases, noisy reports). Label effects follow the physiology: frontal alpha
asymmetry tracks valence; beta/gamma up and posterior alpha down track arousal. They start after
the 3 s pre-trial baseline, vary with each subject's responsiveness (some respond weakly) and
are blurred by trial-to-trial gain noise, so a band-power classifier sits between chance and
perfect. `effect` scales every label effect (0 = none).
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import fft

from eeg_emotion import fileio
from eeg_emotion.data.channels import EEG_CHANNELS, POSITIONS
from eeg_emotion.data.readers.deap import FILE_PATTERN
from eeg_emotion.errors import DataError

FS = 128
BASELINE_SAMPLES = 3 * FS
N_EEG = len(EEG_CHANNELS)
LEFT_FRONTAL = ["Fp1", "AF3", "F3", "F7", "FC5", "FC1"]
RIGHT_FRONTAL = ["Fp2", "AF4", "F4", "F8", "FC6", "FC2"]
POSTERIOR = ["P3", "P7", "PO3", "O1", "Oz", "Pz", "P4", "P8", "PO4", "O2", "CP1", "CP2"]
TEMPORAL = ["T7", "T8", "F7", "F8", "FC5", "FC6", "CP5", "CP6"]


@dataclass(frozen=True)
class SyntheticSpec:
    subjects: int = 32
    trials: int = 40
    samples: int = 8064  # 3 s baseline + 60 s stimulus at 128 Hz
    seed: int = 0
    effect: float = 1.0  # strength of every label effect; 0 removes them


def _idx(names: list[str]) -> np.ndarray:
    return np.array([EEG_CHANNELS.index(n) for n in names])


def _spatial_mixer(length_scale: float) -> np.ndarray:
    """Cholesky factor of a Gaussian kernel over scalp distance: neighbours correlate."""
    xy = np.array([POSITIONS[n] for n in EEG_CHANNELS])
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    kernel = np.exp(-d2 / (2 * length_scale**2)) + 1e-3 * np.eye(N_EEG)
    return np.linalg.cholesky(kernel).astype(np.float32)


def video_design(spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per-video mean valence and arousal, shared by every subject (DEAP's quadrant design)."""
    rng = np.random.default_rng([spec.seed, 0xDEA9])
    quadrant = np.arange(spec.trials) % 4  # HAHV, LAHV, LALV, HALV as in DEAP
    rng.shuffle(quadrant)
    high_v = np.isin(quadrant, [0, 1])
    high_a = np.isin(quadrant, [0, 3])
    valence = np.where(high_v, 6.6, 3.9) + rng.normal(0, 0.6, spec.trials)
    arousal = np.where(high_a, 6.4, 4.5) + rng.normal(0, 0.6, spec.trials)
    return valence, arousal


def _ratings(rng: np.random.Generator, spec: SyntheticSpec) -> np.ndarray:
    video_v, video_a = video_design(spec)
    t = spec.trials
    bias_v, bias_a = rng.normal(0, 0.6, 2)
    valence = video_v + bias_v + rng.normal(0, 1.5, t)
    arousal = video_a + bias_a + rng.normal(0, 1.6, t)
    dominance = 5.2 + 0.35 * (valence - 5) + rng.normal(0, 1.5, t)
    liking = 5.6 + 0.65 * (valence - 5) + rng.normal(0, 1.3, t)
    labels = np.stack([valence, arousal, dominance, liking], axis=1)
    # About one report in ten sits at the scale's neutral middle, as in DEAP.
    neutral = rng.random((t, 4)) < 0.09
    labels[neutral] = 5.0 + rng.normal(0, 0.05, int(neutral.sum()))
    # Ratings were given on a continuous 1..9 scale; many sit at the ends.
    return np.round(np.clip(labels, 1.0, 9.0), 2)


def _band_shape(freqs: np.ndarray, low: float, high: float, edge: float = 1.0) -> np.ndarray:
    rise = 0.5 * (1 + np.tanh((freqs - low) / edge))
    fall = 0.5 * (1 - np.tanh((freqs - high) / edge))
    return (rise * fall).astype(np.float32)


def _slow_noise(rng: np.random.Generator, shape: tuple[int, ...], samples: int) -> np.ndarray:
    """Smooth random modulation (~0.5 Hz) as a multiplicative envelope around 1."""
    steps = samples // FS + 2
    coarse = rng.normal(0, 1, (*shape, steps)).astype(np.float32)
    coarse = 0.5 * (coarse[..., 1:] + coarse[..., :-1])
    fine = np.repeat(coarse, FS, axis=-1)[..., :samples]
    return np.exp(0.25 * fine)


def subject_recording(
    spec: SyntheticSpec,
    subject: int,
    *,
    labels: np.ndarray | None = None,
    onset: int = BASELINE_SAMPLES,
) -> tuple[np.ndarray, np.ndarray]:
    """(data float64 (trials, 40, samples) in microvolts, labels float64 (trials, 4)).

    `labels` (trials x valence, arousal, dominance, liking on 1..9) replaces the drawn DEAP
    ratings, so that another dataset's targets drive the same effects; `onset` is the sample at
    which the label effects start (DEAP: after its 3 s baseline).
    """
    # One generator, drawn from in a fixed order: the stages below must keep their order.
    rng = np.random.default_rng([spec.seed, subject])
    if labels is None:
        labels = _ratings(rng, spec)
    elif np.shape(labels) != (spec.trials, 4):
        raise ValueError(f"labels must have shape ({spec.trials}, 4), got {np.shape(labels)}")
    else:
        labels = np.asarray(labels, dtype=np.float64)
    freqs = np.fft.rfftfreq(spec.samples, 1 / FS).astype(np.float32)
    eeg = _background(rng, freqs, spec.trials, spec.samples)
    rhythms = _rhythm_sources(rng, freqs, spec.trials)
    effect = _label_effects(rng, spec, labels)
    _add_rhythms(rng, eeg, rhythms, effect, onset)
    _add_blinks(rng, eeg)
    _add_muscle(rng, eeg, freqs)
    data = np.empty((spec.trials, 40, spec.samples), np.float64)
    data[:, :N_EEG] = _as_released(eeg, freqs)
    data[:, N_EEG:] = _peripheral(rng, labels, spec.samples, onset)
    return data, labels


def _white(rng: np.random.Generator, trials: int, num_freqs: int) -> np.ndarray:
    """Complex white spectra (trials, channels, frequencies)."""
    re = rng.standard_normal((trials, N_EEG, num_freqs), dtype=np.float32)
    return re + 1j * rng.standard_normal((trials, N_EEG, num_freqs), dtype=np.float32)


def _background(
    rng: np.random.Generator, freqs: np.ndarray, trials: int, samples: int
) -> np.ndarray:
    """1/f^beta background, broadly correlated across the scalp (trials, channels, samples)."""
    beta_exp = rng.uniform(1.4, 2.0)
    bg_amp = (np.maximum(freqs, 1.0) ** (-beta_exp / 2)).astype(np.float32)
    white = _white(rng, trials, freqs.size) * bg_amp
    bg = np.einsum("ck,tkf->tcf", _spatial_mixer(0.6), white, optimize=True)
    eeg = fft.irfft(bg, n=samples, axis=-1, workers=1)
    eeg *= 12.0 / eeg.std()
    return eeg


@dataclass
class RhythmSources:
    """Independent band-limited sources, locally correlated, and where each band is strong."""

    spectra: np.ndarray  # (trials, channels, frequencies) complex
    shapes: dict[str, np.ndarray]  # band -> spectral shape (frequencies,)
    gains: dict[str, np.ndarray]  # band -> topography x this subject's gain (channels,)


def _rhythm_sources(rng: np.random.Generator, freqs: np.ndarray, trials: int) -> RhythmSources:
    spectra = np.einsum(
        "ck,tkf->tcf", _spatial_mixer(0.35), _white(rng, trials, freqs.size), optimize=True
    )
    iaf = rng.normal(10.0, 0.8)  # individual alpha frequency
    shapes = {
        "theta": _band_shape(freqs, 4.5, 7.5),
        "alpha": _band_shape(freqs, iaf - 1.2, iaf + 1.2, 0.6),
        "beta": _band_shape(freqs, 14, 30),
        "gamma": _band_shape(freqs, 31, 45),
    }
    topo = {
        "theta": np.full(N_EEG, 0.5, np.float32),
        "alpha": np.full(N_EEG, 0.6, np.float32),
        "beta": np.full(N_EEG, 0.5, np.float32),
        "gamma": np.full(N_EEG, 0.3, np.float32),
    }
    topo["alpha"][_idx(POSTERIOR)] = 1.6
    topo["theta"][_idx(["Fz", "FC1", "FC2", "Cz", "AF3", "AF4"])] = 0.9
    subj_gain = {b: rng.lognormal(0, 0.25, N_EEG).astype(np.float32) for b in shapes}
    return RhythmSources(spectra, shapes, {b: topo[b] * subj_gain[b] for b in shapes})


def _label_effects(
    rng: np.random.Generator, spec: SyntheticSpec, labels: np.ndarray
) -> dict[str, np.ndarray]:
    """Per band, trial and channel: the relative gain change the felt emotion causes."""
    t = spec.trials
    responsiveness = rng.uniform(0.05, 0.35) if rng.random() < 0.3 else rng.uniform(0.7, 1.3)
    k = 0.7 * spec.effect * responsiveness
    felt_v = (labels[:, 0] - 5) / 4 + rng.normal(0, 0.35, t)
    felt_a = (labels[:, 1] - 5) / 4 + rng.normal(0, 0.35, t)
    effect = {b: np.zeros((t, N_EEG), np.float32) for b in ("theta", "alpha", "beta", "gamma")}
    effect["alpha"][:, _idx(LEFT_FRONTAL)] -= k * felt_v[:, None]  # approach: left activation
    effect["alpha"][:, _idx(RIGHT_FRONTAL)] += k * felt_v[:, None]
    effect["gamma"][:, _idx(TEMPORAL)] += 0.4 * k * felt_v[:, None]
    effect["alpha"][:, _idx(POSTERIOR)] -= 1.0 * k * felt_a[:, None]
    effect["beta"] += 1.0 * k * felt_a[:, None]
    effect["gamma"] += 1.0 * k * felt_a[:, None]
    return effect


def _add_rhythms(
    rng: np.random.Generator,
    eeg: np.ndarray,
    rhythms: RhythmSources,
    effect: dict[str, np.ndarray],
    onset: int = BASELINE_SAMPLES,
) -> None:
    """Each band's rhythm, its label effect switched on at `onset`, into `eeg`."""
    t, _, s = eeg.shape
    stim = np.zeros(s, np.float32)
    stim[onset:] = 1.0
    ramp = np.linspace(0, 1, FS)[: max(0, s - onset)]  # 1 s onset ramp
    stim[onset : onset + ramp.size] = ramp
    for name, shape in rhythms.shapes.items():
        comp = fft.irfft(rhythms.spectra * shape, n=s, axis=-1, workers=1)
        comp *= 1.0 / (comp.std() + 1e-12)
        trial_noise = rng.lognormal(0, 0.2, (t, N_EEG)).astype(np.float32)
        base = rhythms.gains[name][None, :] * trial_noise
        gain = np.exp(np.clip(effect[name], -1.5, 1.5))[:, :, None]
        envelope = base[:, :, None] * (1 + (gain - 1) * stim)
        eeg += 8.0 * comp * envelope * _slow_noise(rng, (t, N_EEG), s)


def _as_released(eeg: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """What the dataset authors applied: 4-45 Hz band-pass, then common average reference."""
    spectrum = fft.rfft(eeg, axis=-1, workers=1)
    spectrum *= _band_shape(freqs, 4.0, 45.0, 0.5)
    out = fft.irfft(spectrum, n=eeg.shape[-1], axis=-1, workers=1)
    out -= out.mean(axis=1, keepdims=True)
    return out


def _add_blinks(rng: np.random.Generator, eeg: np.ndarray) -> None:
    """Residual blinks after EOG removal: frontal, decaying towards the back of the head."""
    t, _, s = eeg.shape
    xy = np.array([POSITIONS[n] for n in EEG_CHANNELS])
    spread = np.exp(-((1.0 - xy[:, 1]) ** 2) / 0.15).astype(np.float32)
    kernel_t = np.arange(-FS // 2, FS // 2) / FS
    pulse = np.exp(-(kernel_t**2) / (2 * 0.06**2)).astype(np.float32)
    for trial in range(t):
        for onset in rng.integers(0, s - FS, rng.poisson(s / FS / 5)):
            amp = rng.uniform(15, 45)
            eeg[trial, :, onset : onset + FS] += amp * spread[:, None] * pulse[None, :]


def _add_muscle(rng: np.random.Generator, eeg: np.ndarray, freqs: np.ndarray) -> None:
    """Short broadband (20-60 Hz) bursts over temporal sites: jaw clenching, frowning."""
    t, _, s = eeg.shape
    temporal = _idx(TEMPORAL)
    for trial in range(t):
        for _ in range(rng.poisson(1.5)):
            length = int(rng.uniform(0.5, 2.0) * FS)
            onset = int(rng.integers(0, s - length))
            burst = rng.standard_normal((temporal.size, length)).astype(np.float32)
            burst = np.diff(burst, axis=-1, prepend=0)  # emphasise high frequencies
            taper = np.hanning(length).astype(np.float32)
            eeg[trial, temporal, onset : onset + length] += rng.uniform(4, 12) * burst * taper


def _peripheral(
    rng: np.random.Generator, labels: np.ndarray, s: int, onset: int = BASELINE_SAMPLES
) -> np.ndarray:
    """hEOG, vEOG, zEMG, tEMG, GSR, respiration, plethysmograph, temperature (rough shapes)."""
    t = labels.shape[0]
    time = np.arange(s) / FS
    out = np.empty((t, 8, s), np.float64)
    out[:, 0] = np.cumsum(rng.normal(0, 2, (t, s)), axis=-1) * 0.1  # saccade drift
    out[:, 1] = rng.normal(0, 20, (t, s))
    out[:, 2] = rng.normal(0, 5, (t, s))
    out[:, 3] = rng.normal(0, 5, (t, s))
    arousal = (labels[:, 1:2] - 5) / 4
    out[:, 4] = (
        2000 + 150 * arousal * (time > onset / FS) + np.cumsum(rng.normal(0, 0.5, (t, s)), -1)
    )
    out[:, 5] = 1000 * np.sin(2 * np.pi * rng.uniform(0.2, 0.3, (t, 1)) * time)
    out[:, 6] = 500 * np.sin(2 * np.pi * rng.uniform(1.0, 1.3, (t, 1)) * time) ** 9
    out[:, 7] = 31 + np.cumsum(rng.normal(0, 0.001, (t, s)), -1)
    return out


# The pure-Python pickler, whose dispatch table can be extended (untyped in typeshed).
_PurePickler: Any = pickle._Pickler


class _Py2Pickler(_PurePickler):
    """Writes pickles as Python 2's cPickle did: byte strings as `str` opcodes and numpy's
    pre-2.0 `numpy.core.multiarray._reconstruct`. They load with `encoding="latin1"`."""

    dispatch = _PurePickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes | str) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + len(raw).to_bytes(4, "little") + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str

    def save_global(self, obj: object, name: str | None = None) -> None:
        name = name or getattr(obj, "__name__")  # noqa: B009  # classes and functions only
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)

    dispatch[type] = save_global


def dumps_deap(data: np.ndarray, labels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump({"labels": labels, "data": data})
    return buffer.getvalue()


def write_subject(path: str | Path, data: np.ndarray, labels: np.ndarray) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(dumps_deap(data, labels))
    os.replace(tmp, path)  # never leave a half-written sNN.dat behind


def _write_one(args: tuple[SyntheticSpec, int, str]) -> str:
    spec, subject, out = args
    data, labels = subject_recording(spec, subject)
    path = Path(out) / f"s{subject:02d}.dat"
    write_subject(path, data, labels)
    return str(path)


def _deap_files(folder: Path) -> list[Path]:
    """The `sNN.dat` files in `folder`, sorted ([] if it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if FILE_PATTERN.match(p.name))


def synthesize(
    out_dir: str | Path, spec: SyntheticSpec, workers: int = 1, *, overwrite: bool = False
) -> list[Path]:
    """Write s01.dat .. sNN.dat into `out_dir`; deterministic for a given spec.

    A folder that already holds sNN.dat files (a real DEAP copy, an earlier synthesis) is
    refused unless `overwrite`; then the new set replaces every one of them, so the folder
    never mixes two syntheses. Other files in the folder are left alone.
    """
    if spec.samples <= BASELINE_SAMPLES + FS:
        raise ValueError(f"samples must exceed the 3 s baseline plus 1 s, got {spec.samples}")
    out = Path(out_dir)
    existing = _deap_files(out)
    if existing and not overwrite:
        raise DataError(
            out,
            f"already holds {len(existing)} DEAP file{'s' if len(existing) > 1 else ''} "
            f"({existing[0].name} .. {existing[-1].name}); --overwrite (overwrite=True) "
            "replaces them",
        )
    out.mkdir(parents=True, exist_ok=True)
    # Written aside first, then moved in: an interrupted run leaves the old set as it was.
    staging = fileio.temp_dir(out, ".synthesize-")
    try:
        jobs = [(spec, subject, str(staging)) for subject in range(1, spec.subjects + 1)]
        if workers <= 1:
            written = [Path(_write_one(job)) for job in jobs]
        else:
            with ProcessPoolExecutor(workers) as pool:
                written = [Path(p) for p in pool.map(_write_one, jobs)]
        names = {p.name for p in written}
        for old in existing:
            if old.name not in names:
                old.unlink()
        for path in written:
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / p.name for p in written]
