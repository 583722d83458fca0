"""Every statistic fitted on the training split, in one object: normalization, bin edges and
the tokenizer settings.

The pipeline fits it once; it is saved with the dataset cache and next to every best model (as a
Hugging Face tokenizer is saved next to its model), and the pipeline, both baselines and predict
all turn signals into features or tokens through it, so training and inference cannot drift.

    pre = Preprocessor(settings.data)
    pre.fit(moments, train_trials, features, rows)       # training rows only
    tokens, lengths = pre.transform(pre.prepare(recording), subject)
    pre.save(folder); Preprocessor.load(folder)

A recording's trials may differ in length: its prepared trials are a list of (channels,
samples) arrays (a (trials, channels, samples) array of equal trials is one too), its rows the
windows of each trial in turn (`window_counts`). Recordings come from the readers
(`eeg_emotion.data.readers`), whatever the dataset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from eeg_emotion import fileio
from eeg_emotion.config import DataSettings
from eeg_emotion.data import signal
from eeg_emotion.data.channels import channel_index, channel_key, source_channels
from eeg_emotion.data.preprocess import preprocess
from eeg_emotion.data.readers.recording import Recording
from eeg_emotion.data.tokenize import PatchTokenizer, Tokenizer, build_tokenizer
from eeg_emotion.errors import ConfigError, DataError

FORMAT_VERSION = 1
Stats = tuple[np.ndarray, np.ndarray]  # mean, std: (rows, channels) float32
Trials = Sequence[np.ndarray]  # (channels, samples) each; a (trials, channels, samples) array


def geometry(settings: DataSettings) -> tuple[int, int, int]:
    """(window, stride) in samples and the number of selected channels."""
    fs = settings.sampling_rate
    window = signal.parse_duration(settings.window, fs, "data.window")
    stride = signal.parse_duration(settings.stride, fs, "data.stride")
    names = source_channels(settings.source, settings.options, settings.channels)
    if names is None:
        raise ConfigError(
            f"data.source={settings.source} with data.channels={settings.channels}: the channel "
            "count is known only from the recordings; list the channels in data.channels"
        )
    return window, stride, len(names)


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
    # The channels taken from every recording, in order; None: those `data.channels` names
    # (given where only the recordings tell: mne's `eeg`, fixed from the first recording).
    channels: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        fixed = source_channels(self.settings.source, self.settings.options, self.settings.channels)
        self.own_channels = fixed is None  # saved with the statistics: the settings lack them
        if self.channels is None and fixed is None:
            raise ConfigError(
                f"data.source={self.settings.source}: the channels come from a recording "
                "(Preprocessor(..., channels=names))"
            )
        self.channels = tuple(self.channels or fixed or ())
        fs = self.settings.sampling_rate
        self.window = signal.parse_duration(self.settings.window, fs, "data.window")
        self.stride = signal.parse_duration(self.settings.stride, fs, "data.stride")
        self.num_channels = len(self.channels)

    @cached_property
    def tokenizer(self) -> Tokenizer:  # lazily: the text tokenizer loads a Hugging Face one
        tok = build_tokenizer(self.settings, self.num_channels, self.window, self.channels)
        if self.saved_edges is not None:
            tok.load_edges(self.saved_edges)
        return tok

    @property
    def edges(self) -> np.ndarray | None:
        return self.tokenizer.state()["edges"]

    # -- fitting (training split only) -----------------------------------------------------
    def fit(
        self,
        moments: Mapping[tuple[int, int], np.ndarray],
        train_trials: set[tuple[int, int]],
        features: np.ndarray,
        rows: np.ndarray,
    ) -> Preprocessor:
        """moments: per (subject, trial) key its (channels, 3) from `signal.channel_moments`, in
        row order; features: raw tokenizer `features` of training windows (a subsample of values
        is enough) and rows: their (subject, trial) keys. Normalization first, then bin edges
        on the normalized features."""
        self.fit_normalization(moments, train_trials)
        keys = list(moments)
        stacked = np.stack([moments[k] for k in keys])
        subjects = np.array([s for s, _ in keys])
        mean = np.empty((len(keys), self.num_channels), np.float32)
        std = np.empty_like(mean)
        for s in dict.fromkeys(subjects.tolist()):
            sel = subjects == s
            mean[sel], std[sel] = self.stats(stacked[sel], s)
        position = {k: i for i, k in enumerate(keys)}
        at = np.array([position[(int(s), int(t))] for s, t in rows], np.int64)
        normalized = self.tokenizer.normalize(features, mean[at], std[at])
        self.tokenizer.fit(normalized)
        if self.settings.tokenizer.continuous:  # standardized per token position, like LR's
            values = self.tokenizer.values(normalized)
            self.value_stats = np.stack([values.mean(0), np.maximum(values.std(0), 1e-6)])
        return self

    def fit_normalization(
        self, moments: Mapping[tuple[int, int], np.ndarray], train_trials: set[tuple[int, int]]
    ) -> None:
        """Per subject (over all of its sessions) and pooled: the training trials' statistics."""
        n_ch = next(iter(moments.values())).shape[0]
        own = {s: np.zeros((n_ch, 3)) for s, _ in moments}
        for key, m in moments.items():
            if key in train_trials:
                own[key[0]] += m
        pooled = sum(own.values())
        self.pooled = np.stack(signal.moments_to_stats(pooled))
        self.per_subject = {
            s: np.stack(signal.moments_to_stats(m)) for s, m in own.items() if m[0, 0] > 0
        }

    # -- applying ---------------------------------------------------------------------------
    def prepare(self, rec: Recording, *, source: str | Path | None = None) -> list[np.ndarray]:
        """A recording's trials, each (channels, samples') float32: this preprocessor's channels
        picked by name, the baseline handled.

        The signal steps of the settings (resampling to data.sampling_rate, filters, bad
        channels, reference: `eeg_emotion.data.preprocess`) run first, in this step every
        reader of a recording takes (cache build, baselines, predict). A recording without a
        channel the preprocessor takes (listing them), and trials too short for one window are
        refused here, naming `source` or the recording's file."""
        where = source or rec.path
        rec = preprocess(rec, self.settings, where)
        picks = self.picks(rec.channels, where)
        out = []
        for i, trial in enumerate(rec.trials):
            base = None if rec.baselines is None else rec.baselines[i][picks].astype(np.float32)
            out.append(signal.apply_baseline(trial[picks].astype(np.float32), base, self.settings))
        self._check_lengths(rec, out, where)
        return out

    def picks(self, channels: Sequence[str], where: str | Path | None = None) -> list[int]:
        """Indices of this preprocessor's channels among a recording's `channels` (matched by
        `channel_key`: case, EDF type prefixes and reference suffixes never matter)."""
        lookup = channel_index(channels)
        missing = [c for c in self.channels or () if channel_key(c) not in lookup]
        if missing:
            raise DataError(
                where,
                f"has no channel{'s' if len(missing) > 1 else ''} {', '.join(missing)}, which "
                f"the data was prepared with (it has {', '.join(channels)})",
            )
        return [lookup[channel_key(c)] for c in self.channels or ()]

    def reading(self, channels: Sequence[str]) -> Preprocessor:
        """This preprocessor on those of its channels in `channels` (in its order), with their
        statistics: how a patch model reads a recording that lacks some of its channels."""
        keys = {channel_key(c) for c in channels}
        keep = [i for i, c in enumerate(self.channels or ()) if channel_key(c) in keys]
        sub = Preprocessor(
            self.settings,
            pooled=None if self.pooled is None else self.pooled[:, keep],
            per_subject={s: v[:, keep] for s, v in self.per_subject.items()},
            saved_edges=self.saved_edges,
            value_stats=self.value_stats,
            channels=tuple((self.channels or ())[i] for i in keep),
        )
        sub.own_channels = self.own_channels
        return sub

    def _check_lengths(self, rec: Recording, trials: list[np.ndarray], where: str | Path) -> None:
        """DataError naming the first trial that holds no window of `data.window`."""
        short = [i for i, x in enumerate(trials) if x.shape[-1] < self.window]
        if not short:
            return
        i = short[0]
        samples = trials[i].shape[-1]
        lead = 0 if rec.baselines is None else rec.baselines[i].shape[-1]
        recorded = rec.trials[i].shape[-1] + lead
        s, fs = self.settings, self.settings.sampling_rate
        if s.baseline == "keep" and (lead or s.source == "deap"):
            handled = "with the baseline kept"
        elif lead == 0:
            handled = "without a baseline"
        else:
            handled = f"after data.baseline={s.baseline} of {lead / fs:g} s"
        same = len({x.shape[-1] for x in trials}) == 1
        which = "trials have" if same else f"trial {rec.trial_numbers[i]} has"
        raise DataError(
            where,
            f"{which} {samples} samples ({samples / fs:g} s) {handled} ({recorded} samples "
            f"recorded), fewer than data.window={s.window!r} ({self.window} samples, "
            f"{self.window / fs:g} s): no window fits; shorten data.window",
        )

    def windows(self, x: Trials) -> np.ndarray:
        """Every trial's windows in turn: (sum of window counts, channels, window)."""
        if isinstance(x, np.ndarray):
            win = signal.windows(x, self.window, self.stride)
            return win.reshape(-1, *win.shape[2:])
        return np.concatenate([signal.windows(t[None], self.window, self.stride)[0] for t in x])

    def windows_per_trial(self, num_samples: int) -> int:
        return len(signal.window_starts(num_samples, self.window, self.stride))

    def window_counts(self, x: Trials) -> np.ndarray:
        """(trials,) how many windows each trial gives: its rows."""
        return np.array([self.windows_per_trial(t.shape[-1]) for t in x], np.int64)

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

    def row_stats(
        self, moments: np.ndarray, subject: int | None, windows: int | np.ndarray
    ) -> Stats:
        """`stats` of each trial, once for each of its rows (`windows`: per trial, or one count
        for every trial)."""
        mean, std = self.stats(moments, subject)
        return np.repeat(mean, windows, 0), np.repeat(std, windows, 0)

    def _row_stats_of(self, x: Trials, subject: int | None) -> Stats:
        return self.row_stats(signal.channel_moments(x), subject, self.window_counts(x))

    def features(
        self, x: Trials, subject: int | None, tokenizer: Tokenizer | None = None
    ) -> np.ndarray:
        """Normalized features of every window (band_power: differential entropy (rows,
        sub-windows, channels, bands); symbols/text: (rows, channels, steps)), of this
        preprocessor's tokenizer or another one on the same windows."""
        tok = tokenizer or self.tokenizer
        return tok.normalize(tok.features(self.windows(x)), *self._row_stats_of(x, subject))

    def signal(self, x: Trials, subject: int | None) -> np.ndarray:
        """Normalized signal windows (rows, channels, window) float32."""
        mean, std = self._row_stats_of(x, subject)
        return ((self.windows(x) - mean[..., None]) / std[..., None]).astype(np.float32)

    def transform(self, x: Trials, subject: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Token ids (rows, tokens) and lengths (rows,) for every window of a recording."""
        return self.tokenizer.encode(self.features(x, subject))

    def values(self, x: Trials, subject: int | None) -> np.ndarray:
        """Continuous inputs: every token's standardized value (rows, tokens) float32; patch
        inputs: every token's patch of normalized signal (rows, tokens, patch) float16."""
        if isinstance(self.tokenizer, PatchTokenizer):
            return self.tokenizer.values(self.features(x, subject))
        return self.standardize(self.tokenizer.values(self.features(x, subject)))

    def standardize(self, values: np.ndarray) -> np.ndarray:
        if self.value_stats is None:
            raise RuntimeError("continuous values need fit() first")
        mean, std = self.value_stats
        return ((values - mean) / std).astype(np.float32)

    # -- save / load ------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        """preprocessor.json (settings, and the channels where they do not tell them) +
        preprocessor.npz (statistics; plain arrays)."""
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
        if self.own_channels:
            meta["channels"] = list(self.channels or ())
        (folder / "preprocessor.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> Preprocessor:
        folder = Path(folder)
        try:
            meta = fileio.load_json(folder / "preprocessor.json")
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
            channels=tuple(meta["channels"]) if "channels" in meta else None,
        )
