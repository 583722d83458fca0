"""Per-trial signal preparation: baseline, channels, normalization, windows."""

from __future__ import annotations

import re

import numpy as np

from eeg_emotion.config import DataSettings
from eeg_emotion.data.channels import select_channels
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
    return round(settings.baseline_seconds * settings.sampling_rate)


def prepare(data: np.ndarray, settings: DataSettings) -> np.ndarray:
    """(trials, 40, samples) float64 -> (trials, channels, samples') float32, baseline handled.

    `drop` removes the pre-trial baseline; `subtract` also removes the baseline's mean
    one-second waveform from every second of the stimulus (the usual DEAP baseline removal);
    `keep` keeps it, which only reproduces the original method.
    """
    x = data[:, select_channels(settings.channels)].astype(np.float32)
    n_base = baseline_samples(settings)
    if settings.baseline == "keep" or n_base == 0:
        return x
    if n_base >= x.shape[-1]:
        raise ConfigError(
            f"data.baseline_seconds={settings.baseline_seconds} leaves no stimulus samples "
            f"(trials have {x.shape[-1]} samples)"
        )
    stim = x[:, :, n_base:]
    if settings.baseline == "subtract":
        fs = settings.sampling_rate
        seconds = n_base // fs
        if seconds == 0:
            raise ConfigError("data.baseline=subtract needs a baseline of at least 1 s")
        template = x[:, :, : seconds * fs].reshape(*x.shape[:2], seconds, fs).mean(axis=2)
        reps = -(-stim.shape[-1] // fs)
        stim = stim - np.tile(template, (1, 1, reps))[:, :, : stim.shape[-1]]
    return np.ascontiguousarray(stim)


def channel_moments(x: np.ndarray) -> np.ndarray:
    """Per trial and channel: (count, sum, sum of squares), float64, shape (trials, ch, 3)."""
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
