"""EEG tokenizers: windows of EEG -> token id sequences, behind one interface.

Every tokenizer works in three steps so the pipeline can stream subjects and fit on train only:
  features(windows)      raw per-window values to quantize (computed before normalization)
  normalize(feats, ...)  apply per-channel normalization statistics
  fit(train_feats)       bin edges from training data only
  encode(feats)          -> (token ids (n, max_len), lengths (n,))

- `symbols`: one token per (block-averaged) sample from a dedicated EEG vocabulary.
- `band_power`: differential entropy per sub-window, channel and band, quantized.
- `patch`: one token per channel and patch (e.g. 1 s) of the normalized signal itself, read by
  the model's learned patch encoder; nothing is quantized.
- `text`: the original method - symbols written as code strings and tokenized by a Hugging Face
  tokenizer. Never truncates silently.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import fft

from eeg_emotion.config import DataSettings
from eeg_emotion.data.channels import electrode_ids
from eeg_emotion.data.quantize import apply_edges, fit_edges
from eeg_emotion.data.signal import parse_duration
from eeg_emotion.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class Layout:
    """What each token position stands for (-1 where it does not apply)."""

    channel: np.ndarray
    band: np.ndarray
    time: np.ndarray


def _budget(kind: str, needed: int, settings: DataSettings, detail: str) -> tuple[int, float]:
    """(tokens per window, fraction of the window kept). Over budget is an error unless
    truncation was asked for explicitly; then the kept fraction is logged."""
    tok = settings.tokenizer
    if needed <= tok.max_tokens:
        return needed, 1.0
    kept = tok.max_tokens / needed
    if not tok.truncate:
        raise ConfigError(
            f"data.tokenizer.kind={kind}: one window needs {needed} tokens ({detail}) but "
            f"data.tokenizer.max_tokens={tok.max_tokens}. Shorten data.window, select fewer "
            "channels, raise data.tokenizer.decimate or max_tokens, or set "
            f"data.tokenizer.truncate=true to keep only the first {tok.max_tokens} tokens "
            f"({100 * kept:.1f} % of the window)"
        )
    log.warning(
        "truncating %s windows to %d of %d tokens: %.1f %% of each window's signal kept",
        kind,
        tok.max_tokens,
        needed,
        100 * kept,
    )
    return tok.max_tokens, kept


def _positions(
    num_channels: int, steps: int, settings: DataSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Each token's channel and time step, for `steps` tokens per channel in the order
    `data.tokenizer.layout` names (time_major: every channel's first step, then the second)."""
    i = np.arange(steps * num_channels)
    if settings.tokenizer.layout == "time_major":
        return i % num_channels, i // num_channels
    return i // steps, i % steps


@dataclass
class SymbolTokenizer:
    """One token per sample (after block-mean decimation), channel- or time-major."""

    settings: DataSettings
    num_channels: int
    window: int
    edges: np.ndarray | None = None
    kind: str = "symbols"
    check_budget: bool = True  # the text tokenizer checks its own (text) token budget

    def __post_init__(self) -> None:
        d = self.settings.tokenizer.decimate
        if self.window % d:
            raise ConfigError(
                f"data.window ({self.window} samples) is not a multiple of decimate={d}"
            )
        self.steps = self.window // d
        self.vocab_size = self.settings.quantize.num_bins + 1
        self.pad_id = self.settings.quantize.num_bins
        needed = self.steps * self.num_channels
        self.tokens_per_window, self.coverage = needed, 1.0
        if self.check_budget:
            detail = f"{self.num_channels} channels x {self.steps} steps"
            self.tokens_per_window, self.coverage = _budget(
                self.kind, needed, self.settings, detail
            )

    def features(self, win: np.ndarray) -> np.ndarray:
        """(n, ch, window) -> (n, ch, steps) block means."""
        d = self.settings.tokenizer.decimate
        return win.reshape(*win.shape[:-1], self.steps, d).mean(-1) if d > 1 else win

    def normalize(self, feats: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        """mean/std: (n, ch) per row."""
        return (feats - mean[..., None]) / std[..., None]

    def fit(self, train_feats: np.ndarray) -> None:
        """train_feats: (n, ch, k) normalized values of training windows."""
        q = self.settings.quantize
        if q.per_channel:
            self.edges = fit_edges(
                train_feats.transpose(0, 2, 1).reshape(-1, train_feats.shape[1]), q
            )
        else:
            self.edges = fit_edges(train_feats.reshape(-1), q)

    def symbols(self, feats: np.ndarray) -> np.ndarray:
        assert self.edges is not None, "fit() first"
        sym = apply_edges(feats, self.edges, axis=1)
        if self.settings.tokenizer.layout == "time_major":
            sym = sym.transpose(0, 2, 1)
        return sym.reshape(sym.shape[0], -1)

    def encode(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = self.symbols(feats)[:, : self.tokens_per_window]
        return ids, np.full(len(ids), ids.shape[1], np.int32)

    def layout(self) -> Layout:
        channel, time = _positions(self.num_channels, self.steps, self.settings)
        keep = slice(0, self.tokens_per_window)
        return Layout(channel[keep], np.full(len(channel), -1)[keep], time[keep])

    def state(self) -> dict[str, Any]:
        return {"edges": self.edges}

    def load_edges(self, edges: np.ndarray) -> None:
        """Reuse bin edges fitted on a training split (evaluation, prediction)."""
        self.edges = edges


@dataclass
class BandPowerTokenizer:
    """Differential entropy per (sub-window, channel, band), quantized with per-band edges."""

    settings: DataSettings
    num_channels: int
    window: int
    edges: np.ndarray | None = None
    kind: str = "band_power"

    def __post_init__(self) -> None:
        s, tok = self.settings, self.settings.tokenizer
        fs = s.sampling_rate
        self.sub = parse_duration(tok.sub_window, fs, "data.tokenizer.sub_window")
        self.sub_stride = parse_duration(tok.sub_stride, fs, "data.tokenizer.sub_stride")
        if self.sub > self.window:
            raise ConfigError(f"sub_window ({self.sub}) is longer than data.window ({self.window})")
        self.n_sub = (self.window - self.sub) // self.sub_stride + 1
        freqs = np.fft.rfftfreq(self.sub, 1 / fs)
        self.band_masks = []
        for name, (lo, hi) in tok.bands.items():
            mask = (freqs >= lo) & (freqs < hi)
            if not mask.any():
                raise ConfigError(
                    f"band {name} ({lo}-{hi} Hz) has no frequency bin at a {self.sub}-sample "
                    f"sub-window ({fs / self.sub:.2f} Hz resolution); lengthen sub_window"
                )
            self.band_masks.append(mask)
        self.n_bands = len(self.band_masks)
        self.taper = np.hanning(self.sub).astype(np.float32)
        self.vocab_size = s.quantize.num_bins + 1
        self.pad_id = s.quantize.num_bins
        self.tokens_per_window = self.n_sub * self.num_channels * self.n_bands
        # Share of the window's samples that fall in at least one sub-window.
        if self.sub_stride <= self.sub:
            covered = (self.n_sub - 1) * self.sub_stride + self.sub
        else:
            covered = self.n_sub * self.sub
        detail = f"{self.n_sub} sub-windows x {self.num_channels} channels x {self.n_bands} bands"
        self.tokens_per_window, kept = _budget(self.kind, self.tokens_per_window, s, detail)
        self.coverage = covered / self.window * kept

    def features(self, win: np.ndarray) -> np.ndarray:
        """(n, ch, window) -> DE (n, n_sub, ch, bands), float32."""
        segs = np.lib.stride_tricks.sliding_window_view(win, self.sub, axis=-1)
        segs = segs[:, :, :: self.sub_stride][:, :, : self.n_sub]
        power = np.abs(fft.rfft(segs * self.taper, axis=-1, workers=1)) ** 2
        bandp = np.stack([power[..., m].sum(-1) for m in self.band_masks], axis=-1)
        bandp *= 2.0 / (self.sub * (self.taper**2).sum())  # periodogram scaling
        de = 0.5 * np.log(2 * math.pi * math.e * np.maximum(bandp, 1e-20))
        return de.transpose(0, 2, 1, 3).astype(np.float32)

    def normalize(self, feats: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        # Scaling a signal by 1/std shifts its differential entropy by -log(std); the mean
        # has no power in any band.
        return feats - np.log(std)[:, None, :, None]

    def fit(self, train_feats: np.ndarray) -> None:
        q = self.settings.quantize
        # DE scales differ by band, so edges are always per band (and per channel if asked).
        groups = self.num_channels * self.n_bands if q.per_channel else self.n_bands
        self.edges = fit_edges(train_feats.reshape(-1, groups), q)

    def encode(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.edges is not None, "fit() first"
        n = feats.shape[0]
        if self.settings.quantize.per_channel:
            flat = feats.reshape(n * self.n_sub, self.num_channels * self.n_bands)
            ids = apply_edges(flat, self.edges, axis=1)
        else:
            ids = apply_edges(feats, self.edges, axis=3)
        ids = ids.reshape(n, -1)[:, : self.tokens_per_window]
        return ids, np.full(n, ids.shape[1], np.int32)

    def values(self, feats: np.ndarray) -> np.ndarray:
        """The normalized features themselves, one per token, in token order (n, tokens)."""
        return feats.reshape(len(feats), -1)[:, : self.tokens_per_window].astype(np.float32)

    def layout(self) -> Layout:
        sub, ch, band = np.meshgrid(
            np.arange(self.n_sub),
            np.arange(self.num_channels),
            np.arange(self.n_bands),
            indexing="ij",
        )
        keep = slice(0, self.tokens_per_window)
        return Layout(ch.ravel()[keep], band.ravel()[keep], sub.ravel()[keep])

    def state(self) -> dict[str, Any]:
        return {"edges": self.edges}

    def load_edges(self, edges: np.ndarray) -> None:
        """Reuse bin edges fitted on a training split (evaluation, prediction)."""
        self.edges = edges


@dataclass
class TextTokenizer:
    """Symbols written as code strings ("000".."111" or decimal) joined by spaces and tokenized
    by a Hugging Face tokenizer - the original method, without its silent truncation."""

    settings: DataSettings
    num_channels: int
    window: int
    hf: Any = None  # a transformers tokenizer
    kind: str = "text"
    symbolizer: SymbolTokenizer = field(init=False)

    def __post_init__(self) -> None:
        s, tok = self.settings, self.settings.tokenizer
        self.symbolizer = SymbolTokenizer(s, self.num_channels, self.window, check_budget=False)
        bins = s.quantize.num_bins
        width = max(1, math.ceil(math.log2(bins)))
        self.codes = [
            format(i, f"0{width}b") if tok.code == "binary" else str(i) for i in range(bins)
        ]

        def ids(text: str, special: bool = False) -> list[int]:
            return list(self.hf(text, add_special_tokens=special)["input_ids"])

        self.first = [ids(c) for c in self.codes]
        self.rest = [ids(" " + c) for c in self.codes]
        with_special = ids(self.codes[0], True)
        start = next(
            i
            for i in range(len(with_special) + 1)
            if with_special[i : i + len(self.first[0])] == self.first[0]
        )
        self.prefix = with_special[:start]
        self.suffix = with_special[start + len(self.first[0]) :]
        self.fast = self._verify_fast_path(ids)
        if not self.fast:
            log.warning(
                "tokenizer %s merges across symbols: using the slow exact path", tok.hf_tokenizer
            )
        n_sym = self.symbolizer.steps * self.num_channels
        m = len(self.rest[0])
        needed = len(self.prefix) + len(self.first[0]) + (n_sym - 1) * m + len(self.suffix)
        if not self.fast:
            rng = np.random.default_rng(0)
            needed = len(ids(" ".join(self.codes[i] for i in rng.integers(0, bins, n_sym)), True))
        self.vocab_size = len(self.hf)
        pad = self.hf.pad_token_id if self.hf.pad_token_id is not None else self.hf.eos_token_id
        self.pad_id = int(pad or 0)
        detail = f"{n_sym} symbols x {needed / n_sym:.1f} tokens for {self.num_channels} channels"
        self.tokens_per_window, self.coverage = _budget(self.kind, needed, s, detail)
        if not self.fast:  # lengths vary by window: rows are max_tokens wide, checked per window
            self.tokens_per_window = tok.max_tokens

    def _verify_fast_path(self, ids: Callable[..., list[int]]) -> bool:
        """Per-symbol ids can be concatenated only if the tokenizer never merges across
        symbols; check that on a random sequence using every symbol."""
        if len({len(r) for r in self.rest}) != 1 or len({len(f) for f in self.first}) != 1:
            return False
        rng = np.random.default_rng(0)
        seq = np.concatenate([np.arange(len(self.codes)), rng.integers(0, len(self.codes), 200)])
        rng.shuffle(seq)
        full = ids(" ".join(self.codes[i] for i in seq), True)
        return full == self._concat(seq[None])[0].tolist()

    def _concat(self, sym: np.ndarray) -> np.ndarray:
        n = sym.shape[0]
        first = np.asarray(self.first, np.int64)[sym[:, 0]]
        rest = np.asarray(self.rest, np.int64)[sym[:, 1:]].reshape(n, -1)
        pre = np.tile(np.asarray(self.prefix, np.int64), (n, 1))
        suf = np.tile(np.asarray(self.suffix, np.int64), (n, 1))
        return np.concatenate([pre, first, rest, suf], axis=1)

    def features(self, win: np.ndarray) -> np.ndarray:
        return self.symbolizer.features(win)

    def normalize(self, feats: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        return self.symbolizer.normalize(feats, mean, std)

    def fit(self, train_feats: np.ndarray) -> None:
        self.symbolizer.fit(train_feats)

    def encode(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sym = self.symbolizer.symbols(feats)
        budget = self.tokens_per_window
        if self.fast:
            # Only the symbols that fit the budget are spelled out (a truncated window would
            # otherwise build every symbol's ids first: gigabytes for long windows).
            room = budget - len(self.prefix) - len(self.first[0])
            keep = 1 + max(0, -(-room // len(self.rest[0])))
            ids = self._concat(sym[:, :keep])
            if keep < sym.shape[1]:  # cut short: the suffix (end of sequence) is never reached
                ids = ids[:, : ids.shape[1] - len(self.suffix)]
            ids = ids[:, :budget]
            return ids, np.full(len(ids), ids.shape[1], np.int32)
        out = np.full((len(sym), budget), self.pad_id, np.int64)
        lengths = np.zeros(len(sym), np.int32)
        for row, symbols in enumerate(sym):
            text = " ".join(self.codes[i] for i in symbols)
            ids = self.hf(text, add_special_tokens=True)["input_ids"]
            if len(ids) > budget and not self.settings.tokenizer.truncate:
                raise ConfigError(
                    f"data.tokenizer.kind=text: a window needs {len(ids)} tokens but "
                    f"data.tokenizer.max_tokens={budget}; raise it or set truncate=true"
                )
            ids = ids[:budget]
            out[row, : len(ids)] = ids
            lengths[row] = len(ids)
        return out, lengths

    def layout(self) -> Layout:
        none = np.full(self.tokens_per_window, -1)
        return Layout(none, none, none)

    def state(self) -> dict[str, Any]:
        return {"edges": self.symbolizer.edges}

    def load_edges(self, edges: np.ndarray) -> None:
        self.symbolizer.edges = edges


@dataclass
class PatchTokenizer:
    """One token per (channel, patch) of the normalized signal: its values go to the model's
    patch encoder (model/embedding.py), stored as float16; the token ids are placeholders.
    `channels` names the electrodes, which key the channel embedding (`ELECTRODES`)."""

    settings: DataSettings
    num_channels: int
    window: int
    channels: Sequence[str] | None = None  # None: sizes only (the planner)
    edges: np.ndarray | None = None  # nothing is binned
    kind: str = "patch"

    def __post_init__(self) -> None:
        s = self.settings
        self.patch = parse_duration(s.tokenizer.patch, s.sampling_rate, "data.tokenizer.patch")
        if self.patch > self.window:
            raise ConfigError(
                f"data.tokenizer.patch ({self.patch} samples) is longer than data.window "
                f"({self.window})"
            )
        self.n_patches = self.window // self.patch
        self.vocab_size, self.pad_id = 1, 0
        if self.channels is None:
            self.electrodes = [-1] * self.num_channels
        else:
            self.electrodes = electrode_ids(self.channels)
        detail = f"{self.num_channels} channels x {self.n_patches} patches"
        needed = self.n_patches * self.num_channels
        self.tokens_per_window, kept = _budget(self.kind, needed, s, detail)
        self.coverage = self.n_patches * self.patch / self.window * kept

    def features(self, win: np.ndarray) -> np.ndarray:
        """(n, ch, window) -> (n, ch, patches, patch): the window cut into whole patches."""
        n, ch = win.shape[:2]
        return win[..., : self.n_patches * self.patch].reshape(n, ch, self.n_patches, self.patch)

    def normalize(self, feats: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
        return (feats - mean[..., None, None]) / std[..., None, None]

    def fit(self, train_feats: np.ndarray) -> None:
        """Nothing beyond the signal's normalization (fitted by the preprocessor)."""

    def values(self, feats: np.ndarray) -> np.ndarray:
        """(n, tokens, patch) float16 in token order: time-major (every channel's first patch,
        then the second, ...) or channel-major."""
        if self.settings.tokenizer.layout == "time_major":
            feats = feats.transpose(0, 2, 1, 3)
        out = feats.reshape(len(feats), -1, self.patch)[:, : self.tokens_per_window]
        return out.astype(np.float16)

    def encode(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = len(feats)
        ids = np.zeros((n, self.tokens_per_window), np.int64)
        return ids, np.full(n, self.tokens_per_window, np.int32)

    def layout(self) -> Layout:
        """`channel` holds each position's electrode id (`ELECTRODES`), `time` its patch."""
        channel, time = _positions(self.num_channels, self.n_patches, self.settings)
        keep = slice(0, self.tokens_per_window)
        electrode = np.asarray(self.electrodes, np.int64)[channel]
        return Layout(electrode[keep], np.full(len(channel), -1)[keep], time[keep])

    def state(self) -> dict[str, Any]:
        return {"edges": None}

    def load_edges(self, edges: np.ndarray) -> None:
        """Patch inputs have no bin edges."""


Tokenizer = SymbolTokenizer | BandPowerTokenizer | TextTokenizer | PatchTokenizer


def load_hf_tokenizer(name: str) -> Any:
    """`embedded` (SmolLM2, offline), a local folder, or a Hugging Face id."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from eeg_emotion.model import embedded

    source = str(embedded.tokenizer_dir()) if name == "embedded" else name
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        where = "folder" if Path(source).exists() else "Hugging Face id"
        raise ConfigError(
            f"data.tokenizer.hf_tokenizer={name!r}: cannot load this {where} ({exc}). "
            "Use 'embedded', a local tokenizer folder, or a reachable model id"
        ) from None


def build_tokenizer(
    settings: DataSettings,
    num_channels: int,
    window: int,
    channels: Sequence[str] | None = None,
) -> Tokenizer:
    """`channels`: the channels' names (the patch input keys its embedding by them)."""
    kind = settings.tokenizer.kind
    if kind == "patch":
        return PatchTokenizer(settings, num_channels, window, channels=channels)
    if kind == "symbols":
        return SymbolTokenizer(settings, num_channels, window)
    if kind == "band_power":
        return BandPowerTokenizer(settings, num_channels, window)
    hf = load_hf_tokenizer(settings.tokenizer.hf_tokenizer)
    return TextTokenizer(settings, num_channels, window, hf=hf)
