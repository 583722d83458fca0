"""Every statistic fitted on the training split, in one object: normalization, bin edges and
the tokenizer settings.

The pipeline fits it once; it is saved with the dataset cache and next to every best model (as a
Hugging Face tokenizer is saved next to its model), and the pipeline, both baselines and predict
all turn signals into features or tokens through it, so training and inference cannot drift.

    pre = Preprocessor(settings.data)
    pre.fit(moments, train_trials, features, rows)       # training rows only
    tokens, lengths = pre.transform(pre.prepare(recording.data), subject)
    pre.save(folder); Preprocessor.load(folder)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from eeg_emotion.config import DataSettings
from eeg_emotion.data import signal
from eeg_emotion.data.channels import select_channels
from eeg_emotion.data.tokenize import Tokenizer, build_tokenizer
from eeg_emotion.errors import DataError

FORMAT_VERSION = 1
Stats = tuple[np.ndarray, np.ndarray]  # mean, std: (rows, channels) float32


def geometry(settings: DataSettings) -> tuple[int, int, int]:
    """(window, stride) in samples and the number of selected channels."""
    fs = settings.sampling_rate
    window = signal.parse_duration(settings.window, fs, "data.window")
    stride = signal.parse_duration(settings.stride, fs, "data.stride")
    return window, stride, len(select_channels(settings.channels))


@dataclass
class Preprocessor:
    """Signals -> normalized features -> tokens, with statistics from training trials only.

    Normalization (`data.normalize`): `trial` uses each trial's own statistics (nothing crosses
    trials, so nothing is fitted); `subject` the subject's training trials, and the pooled
    training trials for a subject without any (held out by loso, or a new recording); `none`
    leaves the signal as it is.
    """

    settings: DataSettings
    pooled: np.ndarray | None = None  # (2, channels): mean, std over every training trial
    per_subject: dict[int, np.ndarray] = field(default_factory=dict)  # (2, channels) each
    saved_edges: np.ndarray | None = None  # bin edges read by `load`, handed to the tokenizer
    value_stats: np.ndarray | None = None  # (2, tokens): mean, std per position (continuous)

    def __post_init__(self) -> None:
        self.window, self.stride, self.num_channels = geometry(self.settings)

    @cached_property
    def tokenizer(self) -> Tokenizer:  # lazily: the text tokenizer loads a Hugging Face one
        tok = build_tokenizer(self.settings, self.num_channels, self.window)
        if self.saved_edges is not None:
            tok.load_edges(self.saved_edges)
        return tok

    @property
    def edges(self) -> np.ndarray | None:
        return self.tokenizer.state()["edges"]

    # -- fitting (training split only) -----------------------------------------------------
    def fit(
        self,
        moments: dict[int, np.ndarray],
        train_trials: set[tuple[int, int]],
        features: np.ndarray,
        rows: np.ndarray,
    ) -> Preprocessor:
        """moments: per subject (trials, channels, 3) from `signal.channel_moments`;
        features: raw tokenizer `features` of training windows (a subsample of values is
        enough) and rows: their (subject, trial) pairs. Normalization first, then bin edges
        on the normalized features."""
        self.fit_normalization(moments, train_trials)
        mean = np.empty((len(rows), self.num_channels), np.float32)
        std = np.empty_like(mean)
        for s, m in moments.items():
            sel = rows[:, 0] == s
            trial_mean, trial_std = self.stats(m, s)
            mean[sel], std[sel] = trial_mean[rows[sel, 1]], trial_std[rows[sel, 1]]
        normalized = self.tokenizer.normalize(features, mean, std)
        self.tokenizer.fit(normalized)
        if self.settings.tokenizer.continuous:  # standardized per token position, like LR's
            values = self.tokenizer.values(normalized)
            self.value_stats = np.stack([values.mean(0), np.maximum(values.std(0), 1e-6)])
        return self

    def fit_normalization(
        self, moments: dict[int, np.ndarray], train_trials: set[tuple[int, int]]
    ) -> None:
        n_ch = next(iter(moments.values())).shape[1]
        own = {s: np.zeros((n_ch, 3)) for s in moments}
        for s, m in moments.items():
            for t in range(m.shape[0]):
                if (s, t) in train_trials:
                    own[s] += m[t]
        pooled = sum(own.values())
        self.pooled = np.stack(signal.moments_to_stats(pooled))
        self.per_subject = {
            s: np.stack(signal.moments_to_stats(m)) for s, m in own.items() if m[0, 0] > 0
        }

    # -- applying ---------------------------------------------------------------------------
    def prepare(self, data: np.ndarray, *, source: str | Path | None = None) -> np.ndarray:
        """(trials, 40, samples) DEAP array -> (trials, channels, samples') float32.

        Trials too short for one window are refused here, the step every reader of a
        recording takes (cache build, baselines, predict), naming `source`, the file."""
        x = signal.prepare(data, self.settings)
        self.check_trial_length(x.shape[-1], data.shape[-1], source)
        return x

    def check_trial_length(
        self, samples: int, recorded: int, source: str | Path | None = None
    ) -> None:
        """Raise DataError if `samples` (after baseline handling; `recorded` before it) hold
        no window of `data.window`."""
        if samples >= self.window:
            return
        s, fs = self.settings, self.settings.sampling_rate
        handled = (
            f"after data.baseline={s.baseline} of {s.baseline_seconds:g} s"
            if s.baseline != "keep" and signal.baseline_samples(s) > 0
            else "with the baseline kept"
        )
        raise DataError(
            source,
            f"trials have {samples} samples ({samples / fs:g} s) {handled} ({recorded} samples "
            f"recorded), fewer than data.window={s.window!r} ({self.window} samples, "
            f"{self.window / fs:g} s): no window fits; shorten data.window",
        )

    def windows(self, x: np.ndarray) -> np.ndarray:
        """(trials, channels, samples) -> (trials * windows, channels, window) view."""
        win = signal.windows(x, self.window, self.stride)
        return win.reshape(-1, *win.shape[2:])

    def windows_per_trial(self, num_samples: int) -> int:
        return len(signal.window_starts(num_samples, self.window, self.stride))

    def stats(self, moments: np.ndarray, subject: int | None) -> Stats:
        """Per-trial normalization (trials, channels) for one subject's trials; `subject=None`
        is a recording never seen in training (pooled training statistics)."""
        t = moments.shape[0]
        if self.settings.normalize == "trial":
            return signal.moments_to_stats(moments)
        if self.settings.normalize == "none":
            return np.zeros(moments.shape[:2], np.float32), np.ones(moments.shape[:2], np.float32)
        if self.pooled is None:
            raise RuntimeError("fit() first: subject normalization needs training statistics")
        mean, std = self.pooled if subject is None else self.per_subject.get(subject, self.pooled)
        return np.tile(mean, (t, 1)), np.tile(std, (t, 1))

    def row_stats(self, moments: np.ndarray, subject: int | None, windows: int) -> Stats:
        """`stats` repeated for each of a trial's `windows` rows."""
        mean, std = self.stats(moments, subject)
        return np.repeat(mean, windows, 0), np.repeat(std, windows, 0)

    def _row_stats_of(self, x: np.ndarray, subject: int | None) -> Stats:
        return self.row_stats(
            signal.channel_moments(x), subject, self.windows_per_trial(x.shape[-1])
        )

    def features(
        self, x: np.ndarray, subject: int | None, tokenizer: Tokenizer | None = None
    ) -> np.ndarray:
        """Normalized features of every window (band_power: differential entropy (rows,
        sub-windows, channels, bands); symbols/text: (rows, channels, steps)), of this
        preprocessor's tokenizer or another one on the same windows."""
        tok = tokenizer or self.tokenizer
        return tok.normalize(tok.features(self.windows(x)), *self._row_stats_of(x, subject))

    def signal(self, x: np.ndarray, subject: int | None) -> np.ndarray:
        """Normalized signal windows (rows, channels, window) float32."""
        mean, std = self._row_stats_of(x, subject)
        return ((self.windows(x) - mean[..., None]) / std[..., None]).astype(np.float32)

    def transform(self, x: np.ndarray, subject: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Token ids (rows, tokens) and lengths (rows,) for every window of a recording."""
        return self.tokenizer.encode(self.features(x, subject))

    def values(self, x: np.ndarray, subject: int | None) -> np.ndarray:
        """Continuous inputs: every token's standardized value (rows, tokens) float32."""
        return self.standardize(self.tokenizer.values(self.features(x, subject)))

    def standardize(self, values: np.ndarray) -> np.ndarray:
        if self.value_stats is None:
            raise RuntimeError("continuous values need fit() first")
        mean, std = self.value_stats
        return ((values - mean) / std).astype(np.float32)

    # -- save / load ------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """preprocessor.json (settings) + preprocessor.npz (statistics; plain arrays)."""
        folder = Path(folder)
        subjects = sorted(self.per_subject)
        n_ch = self.num_channels
        arrays = {
            "pooled": self.pooled if self.pooled is not None else np.zeros((0, n_ch), np.float32),
            "subjects": np.asarray(subjects, np.int64),
            "per_subject": np.stack([self.per_subject[s] for s in subjects])
            if subjects
            else np.zeros((0, 2, n_ch), np.float32),
        }
        if self.edges is not None:
            arrays["edges"] = self.edges
        if self.value_stats is not None:
            arrays["value_stats"] = self.value_stats
        np.savez(folder / "preprocessor.npz", **arrays)
        meta = {"format_version": FORMAT_VERSION, "data": self.settings.model_dump(mode="json")}
        (folder / "preprocessor.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> Preprocessor:
        folder = Path(folder)
        try:
            meta = json.loads((folder / "preprocessor.json").read_text())
            with np.load(folder / "preprocessor.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise DataError(folder / "preprocessor.json", f"cannot read ({exc})") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(
                folder / "preprocessor.json", f"unsupported format {meta.get('format_version')}"
            )
        return cls(
            DataSettings.model_validate(meta["data"]),
            pooled=arrays["pooled"] if len(arrays["pooled"]) else None,
            per_subject={
                int(s): v for s, v in zip(arrays["subjects"], arrays["per_subject"], strict=True)
            },
            saved_edges=arrays.get("edges"),
            value_stats=arrays.get("value_stats"),
        )
