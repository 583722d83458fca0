"""Synthetic DEAP: files in the exact `data_preprocessed_python` format with known label effects.

Per participant: spatially correlated 1/f background, a subject-specific alpha rhythm with a
posterior topography, theta/beta/gamma activity, residual eye blinks and muscle bursts, then the
4-45 Hz band-pass and common average reference the real files already have. Ratings follow the
DEAP design (videos chosen per valence/arousal quadrant, a per-video component shared by every
subject, subject biases, noisy reports). Label effects follow the physiology: frontal alpha
asymmetry tracks valence; beta/gamma up and posterior alpha down track arousal. They start after
the pre-trial baseline (DEAP's 3 s by default), vary with each subject's responsiveness (some
respond weakly) and are blurred by trial-to-trial gain noise, so a band-power classifier sits
between chance and perfect. `effect` scales every label effect (0 = none).

`effect_kind` picks which effect the ratings drive; the other two kinds hold every channel's
power spectrum fixed, so band power cannot see them:
- `spectral` (the default): the band-power effects above.
- `coupling`: pairs of channels share a band-limited source in quadrature (90 degrees apart),
  with a phase locking that follows the rating. The shared part only changes the imaginary part
  of the cross-spectrum, which neither a channel's power nor the common average reference
  depends on.
- `temporal`: a scalp neighbourhood carries band-limited activity whose power comes in short
  bursts when the rating is high and evenly when it is low; the burst times are stationary, so
  every window holds the same expected power.
Where the coupled pairs and bursting sites are, and in which band, is drawn per seed
(`coupling_design`, `burst_design`); each effect follows the same felt state and
responsiveness as the spectral one.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import fft

from eeg_emotion import fileio
from eeg_emotion.data import synthetic_record
from eeg_emotion.data.channels import EEG_CHANNELS, POSITIONS
from eeg_emotion.data.deap_pickle import write_subject
from eeg_emotion.data.readers.deap import FILE_PATTERN
from eeg_emotion.data.source_options import DEAP_BASELINE_SECONDS
from eeg_emotion.errors import DataError

FS = 128
N_EEG = len(EEG_CHANNELS)
LEFT_FRONTAL = ["Fp1", "AF3", "F3", "F7", "FC5", "FC1"]
RIGHT_FRONTAL = ["Fp2", "AF4", "F4", "F8", "FC6", "FC2"]
POSTERIOR = ["P3", "P7", "PO3", "O1", "Oz", "Pz", "P4", "P8", "PO4", "O2", "CP1", "CP2"]
TEMPORAL = ["T7", "T8", "F7", "F8", "FC5", "FC6", "CP5", "CP6"]
EFFECT_KINDS = ("spectral", "coupling", "temporal")
COUPLED_PAIRS = 4  # channel pairs whose phase locking follows the ratings
BURST_SITES = 2  # scalp neighbourhoods whose burstiness follows the ratings
BURST_CHANNELS = 5  # channels per neighbourhood
# Bursting activity sits well inside the tokenizer's beta (14-31) and gamma (31-45) bands: the
# bursts widen its spectrum by about 1/(2 pi BURST_WIDTH) = 1.6 Hz, which must not cross an edge.
BURST_BANDS = {"beta": (18.0, 27.0), "gamma": (34.0, 41.0)}
BURST_WIDTH = 0.1  # seconds, the standard deviation of one burst


@dataclass(frozen=True)
class SyntheticSpec:
    subjects: int = 32
    trials: int = 40
    samples: int = round((DEAP_BASELINE_SECONDS + 60) * FS)  # baseline and a 60 s stimulus
    seed: int = 0
    effect: float = 1.0  # strength of every label effect; 0 removes them
    effect_kind: str = "spectral"  # which effect the ratings drive: one of EFFECT_KINDS
    baseline_seconds: float = DEAP_BASELINE_SECONDS  # the label effects start after it

    def __post_init__(self) -> None:
        if self.effect_kind not in EFFECT_KINDS:
            raise ValueError(
                f"effect_kind must be one of {', '.join(EFFECT_KINDS)}, not {self.effect_kind!r}"
            )
        if self.baseline_seconds < 0:
            raise ValueError(f"baseline_seconds must be >= 0, got {self.baseline_seconds}")

    @property
    def onset(self) -> int:
        """The sample at which the stimulus, and with it every label effect, starts."""
        return round(self.baseline_seconds * FS)


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
    onset: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(data float64 (trials, 40, samples) in microvolts, labels float64 (trials, 4)).

    `labels` (trials x valence, arousal, dominance, liking on 1..9) replaces the drawn DEAP
    ratings, so that another dataset's targets drive the same effects; `onset` is the sample at
    which the label effects start (default: after the spec's baseline, DEAP's 3 s).
    """
    onset = spec.onset if onset is None else onset
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
    effect, felt = _label_effects(rng, spec, labels)
    spectral = spec.effect_kind == "spectral"
    if not spectral:  # the same draws, without the band-power effects
        effect = {band: np.zeros_like(gain) for band, gain in effect.items()}
    _add_rhythms(rng, eeg, rhythms, effect, onset)
    # The other kinds draw from a stream of their own: the spectral files stay as they were.
    own = np.random.default_rng([spec.seed, subject, 0xC0])
    if spec.effect_kind == "coupling":
        _add_coupling(own, eeg, rhythms, felt, onset=onset, sites=coupling_design(spec))
    elif spec.effect_kind == "temporal":
        _add_bursts(own, eeg, rhythms, felt, onset=onset, sites=burst_design(spec))
    _add_blinks(rng, eeg)
    _add_muscle(rng, eeg, freqs)
    data = np.empty((spec.trials, 40, spec.samples), np.float64)
    data[:, :N_EEG] = _as_released(eeg, freqs)
    data[:, N_EEG:] = _peripheral(rng, labels, spec.samples, onset, gsr_effect=float(spectral))
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


@dataclass(frozen=True)
class FeltState:
    """What every label effect follows: the felt emotion, not the reported rating."""

    valence: np.ndarray  # (trials,) about -1..1, the rating's distance from 5 plus noise
    arousal: np.ndarray
    strength: float  # the spec's effect times this subject's responsiveness

    def target(self, index: int) -> np.ndarray:
        """The felt valence (0) or arousal (1)."""
        return self.valence if index == 0 else self.arousal


def _label_effects(
    rng: np.random.Generator, spec: SyntheticSpec, labels: np.ndarray
) -> tuple[dict[str, np.ndarray], FeltState]:
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
    return effect, FeltState(felt_v, felt_a, k)


def _add_rhythms(
    rng: np.random.Generator,
    eeg: np.ndarray,
    rhythms: RhythmSources,
    effect: dict[str, np.ndarray],
    onset: int,
) -> None:
    """Each band's rhythm, its label effect switched on at `onset`, into `eeg`."""
    t, _, s = eeg.shape
    stim = _stimulus(s, onset)
    for name, shape in rhythms.shapes.items():
        comp = fft.irfft(rhythms.spectra * shape, n=s, axis=-1, workers=1)
        comp *= 1.0 / (comp.std() + 1e-12)
        trial_noise = rng.lognormal(0, 0.2, (t, N_EEG)).astype(np.float32)
        base = rhythms.gains[name][None, :] * trial_noise
        gain = np.exp(np.clip(effect[name], -1.5, 1.5))[:, :, None]
        envelope = base[:, :, None] * (1 + (gain - 1) * stim)
        eeg += 8.0 * comp * envelope * _slow_noise(rng, (t, N_EEG), s)


@dataclass(frozen=True)
class CouplingSite:
    """Two channels whose phase locking in `band` follows one target."""

    channels: tuple[int, int]  # indices into EEG_CHANNELS
    band: str  # theta | alpha | beta | gamma
    target: int  # 0 valence, 1 arousal


@dataclass(frozen=True)
class BurstSite:
    """A scalp neighbourhood whose activity in `band` bursts more as one target rises."""

    channels: tuple[int, ...]
    band: str  # a key of BURST_BANDS
    target: int  # 0 valence, 1 arousal


def coupling_design(spec: SyntheticSpec) -> list[CouplingSite]:
    """The coupled pairs, drawn per seed and shared by every subject: disjoint random pairs,
    each in a random band, alternately following valence and arousal."""
    rng = np.random.default_rng([spec.seed, 0xC0F])
    channels = rng.permutation(N_EEG)[: 2 * COUPLED_PAIRS]
    bands = rng.choice(["theta", "alpha", "beta", "gamma"], COUPLED_PAIRS)
    return [
        CouplingSite((int(channels[2 * i]), int(channels[2 * i + 1])), str(bands[i]), i % 2)
        for i in range(COUPLED_PAIRS)
    ]


def burst_design(spec: SyntheticSpec) -> list[BurstSite]:
    """The bursting neighbourhoods, drawn per seed and shared by every subject: a random
    electrode and its nearest free neighbours, each in beta or gamma, one per target."""
    rng = np.random.default_rng([spec.seed, 0xB57])
    xy = np.array([POSITIONS[n] for n in EEG_CHANNELS])
    free = np.ones(N_EEG, bool)
    sites = []
    for i in range(BURST_SITES):
        centre = int(rng.choice(np.flatnonzero(free)))
        distance = np.where(free, ((xy - xy[centre]) ** 2).sum(1), np.inf)
        group = np.sort(np.argsort(distance, kind="stable")[:BURST_CHANNELS])
        free[group] = False
        band = str(rng.choice(list(BURST_BANDS)))
        sites.append(BurstSite(tuple(int(c) for c in group), band, i % 2))
    return sites


def _band_noise(
    rng: np.random.Generator, shape: tuple[int, ...], spectrum: np.ndarray
) -> np.ndarray:
    """Independent Gaussian noise with the spectral shape `spectrum`, complex (..., freqs)."""
    re = rng.standard_normal((*shape, spectrum.size), dtype=np.float32)
    return (re + 1j * rng.standard_normal(re.shape, dtype=np.float32)) * spectrum


def _add_coupling(
    rng: np.random.Generator,
    eeg: np.ndarray,
    rhythms: RhythmSources,
    felt: FeltState,
    *,
    onset: int,
    sites: list[CouplingSite],
) -> None:
    """Per site, a source shared by its two channels in quadrature: channel a carries s, channel
    b carries q H(s) + sqrt(1 - q^2) w (H: a 90 degree phase shift, w independent), q in 0..1
    rising with the felt target. Both keep unit power whatever q; their cross-spectrum i q S is
    imaginary, so the power after the common average reference does not depend on q either."""
    t, _, s = eeg.shape
    stim = _stimulus(s, onset)
    for site in sites:
        shape = rhythms.shapes[site.band]
        source = _band_noise(rng, (t, 2), shape)
        own = fft.irfft(source[:, 0], n=s, axis=-1, workers=1)
        shifted = fft.irfft(-1j * source[:, 0], n=s, axis=-1, workers=1)
        other = fft.irfft(source[:, 1], n=s, axis=-1, workers=1)
        scale = 1.0 / (np.sqrt(0.5 * (own.var() + other.var())) + 1e-12)
        locked = 0.5 * (1 + np.tanh(2.0 * felt.strength * felt.target(site.target)))
        q = 0.5 + (locked[:, None] - 0.5) * stim[None, :]  # label-free before the onset
        pair = np.stack([own, q * shifted + np.sqrt(1 - q**2) * other], axis=1) * scale
        gain = rhythms.gains[site.band][list(site.channels)]
        trial_noise = rng.lognormal(0, 0.2, (t, 2)).astype(np.float32)
        envelope = gain[None, :, None] * trial_noise[:, :, None] * _slow_noise(rng, (t, 2), s)
        eeg[:, list(site.channels)] += 8.0 * pair * envelope


def _burst_envelope(rng: np.random.Generator, burstiness: np.ndarray) -> np.ndarray:
    """(trials, samples) amplitude from burstiness (trials, samples) 0..1: power 1 - b + b g,
    g a train of Gaussian bursts, one per second at a uniformly random point of it. Burst times
    are stationary, so g averages 1 at every sample and any window (tapered or not) holds the
    same expected power whatever b; about one burst per second also keeps a window's power
    close to its expectation."""
    trials, samples = burstiness.shape
    seconds = -(-samples // FS)
    centre = (np.arange(-1, seconds + 1) + rng.uniform(0, 1, (trials, seconds + 2))) * FS
    time = np.arange(samples)
    width = BURST_WIDTH * FS
    bursts = np.zeros((trials, samples))
    for offset in (0, 1, 2):  # a sample's own second and both neighbours' bursts
        c = centre[:, time // FS + offset]
        bursts += np.exp(-((time - c) ** 2) / (2 * width**2))
    bursts *= FS / (width * np.sqrt(2 * np.pi))  # one burst's area is one second
    return np.sqrt(1 - burstiness + burstiness * bursts).astype(np.float32)


def _add_bursts(
    rng: np.random.Generator,
    eeg: np.ndarray,
    rhythms: RhythmSources,
    felt: FeltState,
    *,
    onset: int,
    sites: list[BurstSite],
) -> None:
    """Per site, band-limited activity, independent per channel, whose power comes in bursts
    shared by the neighbourhood: burstiness 0 (even) .. 0.9 (bursts), rising with the felt
    target. The mean power is the same whatever the burstiness."""
    t, _, s = eeg.shape
    freqs = np.fft.rfftfreq(s, 1 / FS).astype(np.float32)
    stim = _stimulus(s, onset)
    for site in sites:
        channels = list(site.channels)
        carrier = fft.irfft(
            _band_noise(rng, (t, len(channels)), _band_shape(freqs, *BURST_BANDS[site.band])),
            n=s,
            axis=-1,
            workers=1,
        )
        carrier *= 1.0 / (carrier.std() + 1e-12)
        bursty = 0.45 * (1 + np.tanh(2.0 * felt.strength * felt.target(site.target)))
        burstiness = 0.45 + (bursty[:, None] - 0.45) * stim[None, :]  # label-free before
        envelope = _burst_envelope(rng, burstiness)
        trial_noise = rng.lognormal(0, 0.2, (t, len(channels))).astype(np.float32)
        gain = rhythms.gains[site.band][channels][None, :] * trial_noise
        eeg[:, channels] += 8.0 * carrier * gain[:, :, None] * envelope[:, None, :]


def _stimulus(samples: int, onset: int) -> np.ndarray:
    """0 before `onset`, 1 after it, with a 1 s ramp between (samples,) float32."""
    stim = np.zeros(samples, np.float32)
    stim[onset:] = 1.0
    ramp = np.linspace(0, 1, FS)[: max(0, samples - onset)]  # 1 s onset ramp
    stim[onset : onset + ramp.size] = ramp
    return stim


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
    rng: np.random.Generator,
    labels: np.ndarray,
    s: int,
    onset: int,
    *,
    gsr_effect: float = 1.0,
) -> np.ndarray:
    """hEOG, vEOG, zEMG, tEMG, GSR, respiration, plethysmograph, temperature (rough shapes).

    GSR rises with arousal times `gsr_effect` (0 where only the EEG should carry the label)."""
    t = labels.shape[0]
    time = np.arange(s) / FS
    out = np.empty((t, 8, s), np.float64)
    out[:, 0] = np.cumsum(rng.normal(0, 2, (t, s)), axis=-1) * 0.1  # saccade drift
    out[:, 1] = rng.normal(0, 20, (t, s))
    out[:, 2] = rng.normal(0, 5, (t, s))
    out[:, 3] = rng.normal(0, 5, (t, s))
    arousal = (labels[:, 1:2] - 5) / 4 * gsr_effect
    out[:, 4] = (
        2000 + 150 * arousal * (time > onset / FS) + np.cumsum(rng.normal(0, 0.5, (t, s)), -1)
    )
    out[:, 5] = 1000 * np.sin(2 * np.pi * rng.uniform(0.2, 0.3, (t, 1)) * time)
    out[:, 6] = 500 * np.sin(2 * np.pi * rng.uniform(1.0, 1.3, (t, 1)) * time) ** 9
    out[:, 7] = 31 + np.cumsum(rng.normal(0, 0.001, (t, s)), -1)
    return out


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
    if spec.samples <= spec.onset + FS:
        raise ValueError(
            f"samples must exceed the {spec.baseline_seconds:g} s baseline plus 1 s, "
            f"got {spec.samples}"
        )
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
        synthetic_record.mark_synthetic(out, asdict(spec))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [out / p.name for p in written]
