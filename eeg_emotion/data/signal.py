"""Per-trial signal preparation: baseline, normalization statistics, windows; each source's
sampling rate and baseline."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from eeg_emotion.config import DataSettings
from eeg_emotion.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|samples)?\s*$")


def parse_duration(value: int | str, fs: int, name: str) -> int:
    """`1024` or `"1024"` samples, or `"8s"` / `"7.5s"` seconds -> samples."""
    match = _DURATION.match(str(value))
    if not match:
        raise ConfigError(f"{name}={value!r}: expected samples (1024) or seconds ('8s')")
    number, unit = float(match.group(1)), match.group(2)
    samples = number * fs if unit == "s" else number
    if abs(samples - round(samples)) > 1e-6 or round(samples) < 1:
        raise ConfigError(f"{name}={value!r} is not a positive whole number of samples")
    return round(samples)


def baseline_samples(settings: DataSettings) -> int:
    """DEAP's lead before each video, in samples (`data.baseline_seconds`)."""
    return round(settings.baseline_seconds * settings.sampling_rate)


def source_rate(source: str, options: Any) -> int | None:
    """The sampling rate `source`'s recordings have (None: `mne`, which the files tell)."""
    from eeg_emotion.data.readers import amigos, deap, dreamer, seed

    rates = {
        "deap": deap.SAMPLING_RATE,
        "dreamer": dreamer.SAMPLING_RATE,
        "seed": seed.SAMPLING_RATE,
        "seed_iv": getattr(options, "sampling_rate", None),
        "amigos": amigos.SAMPLING_RATE,
    }
    return rates.get(source)


def source_baseline(settings: DataSettings) -> str | None:
    """Where `settings`' recordings get a baseline from (a sentence), or None without one."""
    opts, source = settings.options, settings.source
    where = {
        "deap": "data.baseline_seconds" if settings.baseline_seconds > 0 else None,
        "dreamer": "data.options.baselines" if getattr(opts, "baselines", False) else None,
        "amigos": "data.options.baseline_seconds" if _lead(opts) > 0 else None,
        "mne": "data.options.baseline_seconds" if _lead(opts) > 0 else None,
    }
    return where.get(source)


def _lead(options: Any) -> float:
    return float(getattr(options, "baseline_seconds", 0.0))


def apply_baseline(
    trial: np.ndarray, baseline: np.ndarray | None, settings: DataSettings
) -> np.ndarray:
    """One trial (channels, samples) float32 with its baseline handled.

    `drop` leaves the baseline out; `subtract` removes its mean one-second waveform from every
    second of the stimulus (the usual DEAP baseline removal); `keep` puts it back in front of
    the trial, which only reproduces the original method.
    """
    if baseline is None or baseline.shape[-1] == 0:
        return trial
    if settings.baseline == "keep":
        return np.ascontiguousarray(np.concatenate([baseline, trial], axis=-1))
    if settings.baseline == "drop":
        return trial
    fs = settings.sampling_rate
    seconds = baseline.shape[-1] // fs
    if seconds == 0:
        raise ConfigError("data.baseline=subtract needs a baseline of at least 1 s")
    template = baseline[:, : seconds * fs].reshape(baseline.shape[0], seconds, fs).mean(axis=1)
    reps = -(-trial.shape[-1] // fs)
    return np.ascontiguousarray(trial - np.tile(template, (1, reps))[:, : trial.shape[-1]])


def channel_moments(x: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Per trial and channel: (count, sum, sum of squares), float64, shape (trials, ch, 3), of
    a (trials, ch, samples) array or of trials of any lengths."""
    if not isinstance(x, np.ndarray):
        return np.stack([channel_moments(t[None])[0] for t in x])
    x64 = x.astype(np.float64)
    n = np.full(x.shape[:2], x.shape[-1], np.float64)
    return np.stack([n, x64.sum(-1), (x64**2).sum(-1)], axis=-1)


def moments_to_stats(moments: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Summed (count, sum, sumsq) -> (mean, std) with a floor against flat channels."""
    n, s, ss = moments[..., 0], moments[..., 1], moments[..., 2]
    mean = s / n
    var = np.maximum(ss / n - mean**2, 0)
    return mean.astype(np.float32), np.sqrt(var + 1e-12).astype(np.float32)


def window_starts(num_samples: int, window: int, stride: int) -> np.ndarray:
    if window > num_samples:
        raise ConfigError(
            f"data.window is {window} samples but trials have only {num_samples} "
            "samples after baseline handling"
        )
    return np.arange(0, num_samples - window + 1, stride)


def windows(x: np.ndarray, window: int, stride: int) -> np.ndarray:
    """(trials, ch, samples) -> view (trials, n_windows, ch, window)."""
    view = np.lib.stride_tricks.sliding_window_view(x, window, axis=-1)[:, :, ::stride]
    return view.transpose(0, 2, 1, 3)
