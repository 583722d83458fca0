"""The model's inputs: what the data pipeline feeds it (`InputSpec`) and the trainable
token embedding for the project's EEG vocabularies (`EEGEmbedding`).

`symbols` / `band_power` ids (and `patch` signal) go through `EEGEmbedding` (symbol or value or
patch encoder + channel + band + time step),
fed to the backbone as `inputs_embeds`: the LLM vocabulary is never resized or trained for them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from eeg_emotion.errors import ConfigError

if TYPE_CHECKING:
    from eeg_emotion.config import DataSettings
    from eeg_emotion.data.pipeline import TokenData
    from eeg_emotion.data.tokenize import Layout
    from eeg_emotion.model_settings import FrontEndSettings

log = logging.getLogger(__name__)
JOINT_MAX_ROWS = 1 << 16  # (channel, band, symbol) rows of the joint EEG embedding, at most


@dataclass
class InputSpec:
    """What the data pipeline feeds the model (saved with it, so it can be rebuilt)."""

    kind: str  # "text" (LLM token ids) or "eeg" (ids of the project's EEG vocabulary)
    vocab_size: int
    pad_id: int
    targets: list[str]
    num_classes: int
    channel: list[int]  # per token position, -1 where it does not apply (eeg only)
    band: list[int]
    time: list[int]
    hf_tokenizer: str | None = None
    continuous: bool = False  # each token also carries a standardized value (eeg only)
    # patch inputs: samples per patch (0: none) and the encoder's width; `channel` then holds
    # electrode ids (`data.channels.ELECTRODES`)
    patch: int = 0
    patch_encoder_width: int = 0
    # samples per second of patch inputs (0: none, or a spec saved before it was recorded): the
    # front end's filter length and band edges are in seconds
    sampling_rate: int = 0

    @classmethod
    def build(
        cls, settings: DataSettings, *, vocab_size: int, pad_id: int, layout: Layout
    ) -> InputSpec:
        """The spec of data built with `settings` whose tokenizer has this vocabulary, padding
        id and layout: the one place that maps settings to a spec."""
        from eeg_emotion.data.signal import parse_duration

        text, tok = settings.tokenizer.kind == "text", settings.tokenizer
        patch = tok.kind == "patch"
        return cls(
            kind="text" if text else "eeg",
            vocab_size=int(vocab_size),
            pad_id=int(pad_id),
            targets=list(settings.labels.targets),
            num_classes=settings.labels.num_classes,
            channel=np.asarray(layout.channel).tolist(),
            band=np.asarray(layout.band).tolist(),
            time=np.asarray(layout.time).tolist(),
            hf_tokenizer=settings.tokenizer.hf_tokenizer if text else None,
            continuous=settings.tokenizer.continuous,
            patch=parse_duration(tok.patch, settings.sampling_rate, "data.tokenizer.patch")
            if patch
            else 0,
            patch_encoder_width=tok.patch_encoder_width if patch else 0,
            sampling_rate=int(settings.sampling_rate) if patch else 0,
        )

    @classmethod
    def from_settings(cls, settings: DataSettings) -> InputSpec:
        """What data built with `settings` would feed the model, without the data: the EEG
        tokenizers are built as the pipeline builds them. `text` loads no LLM tokenizer: its
        vocabulary is left 0 and `max_tokens`, the upper bound, stands for the token count."""
        from eeg_emotion.data.channels import source_channels
        from eeg_emotion.data.preprocessor import geometry
        from eeg_emotion.data.tokenize import Layout, build_tokenizer

        if settings.tokenizer.kind == "text":
            none = np.full(settings.tokenizer.max_tokens, -1)
            return cls.build(settings, vocab_size=0, pad_id=0, layout=Layout(none, none, none))
        window, _, num_channels = geometry(settings)
        names = source_channels(settings.source, settings.options, settings.channels)
        tok = build_tokenizer(settings, num_channels, window, names)
        return cls.build(
            settings, vocab_size=tok.vocab_size, pad_id=tok.pad_id, layout=tok.layout()
        )

    @classmethod
    def from_data(cls, data: TokenData) -> InputSpec:
        """The spec of built data: vocabulary, padding id and layout as it recorded them."""
        return cls.build(
            data.settings, vocab_size=data.vocab_size, pad_id=data.pad_id, layout=data.layout
        )


class PatchEncoder(nn.Module):
    """One patch of a channel's normalized signal -> a hidden-size vector: an MLP over the raw
    samples (waveform, phase) and their log FFT magnitudes (spectrum), as LaBraM and CBraMod
    read patches, then a LayerNorm whose gain sets the output's scale."""

    def __init__(self, patch: int, width: int, hidden: int, scale: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(patch + patch // 2 + 1, width), nn.GELU(), nn.Linear(width, hidden)
        )
        self.norm = nn.LayerNorm(hidden)
        nn.init.constant_(self.norm.weight, scale)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, patch) -> (batch, tokens, hidden)."""
        x = patches.to(self.norm.weight.dtype)
        spectrum = torch.log1p(torch.fft.rfft(x.float(), dim=-1).abs()).to(x.dtype)
        return self.norm(self.net(torch.cat([x, spectrum], -1)))


class EEGEmbedding(nn.Module):
    """Token embedding for the project's EEG vocabularies.

    The sum of a joint (channel, band, symbol) embedding - "alpha power at F3 is in bin 6" is one
    vector, so the mean-pooled sequence is linear in the binned features and even a linear head
    can read them - plus factorized symbol, channel, band and time-step embeddings that share
    what is common across positions.

    Continuous inputs (`spec.continuous`) replace the symbol terms with the token's value times a
    learned vector per (channel, band): again linear in the features, but without the bins'
    loss of the small shifts a weak effect makes.

    Patch inputs (`spec.patch`) replace them with a learned `PatchEncoder` of the token's
    patch of signal; the channel embedding then has one row per 10-20/10-10 electrode name,
    so the same rows serve every montage. With a `front_end` of kind `filterbank`, each token
    also gets `FilterBankFrontEnd`'s features of its whole patch across channels
    (model/front_end.py).
    """

    # Buffers and tables set in __init__ by name (for the type checker).
    channel_ids: torch.Tensor
    band_ids: torch.Tensor
    time_ids: torch.Tensor
    slot_offset: torch.Tensor
    slot_ids: torch.Tensor
    channel: nn.Embedding
    band: nn.Embedding
    time: nn.Embedding

    def __init__(
        self,
        spec: InputSpec,
        hidden: int,
        init_std: float,
        front_end: FrontEndSettings | None = None,
    ) -> None:
        super().__init__()
        from eeg_emotion.data.channels import ELECTRODES
        from eeg_emotion.model.front_end import FilterBankFrontEnd

        self.vocab = spec.vocab_size
        self.continuous = spec.continuous
        valued = spec.continuous or spec.patch > 0  # the symbol ids carry nothing
        self.symbol = None if valued else nn.Embedding(spec.vocab_size, hidden)
        sizes: dict[str, int] = {}
        for name in ("channel", "band", "time"):
            ids = torch.tensor(getattr(spec, name), dtype=torch.long) + 1  # 0 = not applicable
            self.register_buffer(f"{name}_ids", ids, persistent=False)
            sizes[name] = int(ids.max()) + 1
            if name == "channel" and spec.patch:
                sizes[name] = len(ELECTRODES) + 1
            setattr(self, name, nn.Embedding(sizes[name], hidden))
        slot = self.channel_ids * sizes["band"] + self.band_ids  # (channel, band) per position
        self.register_buffer("slot_offset", slot * spec.vocab_size, persistent=False)
        self.register_buffer("slot_ids", slot, persistent=False)
        slots = sizes["channel"] * sizes["band"]
        self.value = nn.Embedding(slots, hidden) if spec.continuous else None
        rows = 0 if valued else slots * spec.vocab_size
        # The joint table grows with channels x bands x symbols: with thousands of bins it would
        # rival the backbone (4096 bins at 8B's hidden size: 2.8 B parameters). Beyond
        # JOINT_MAX_ROWS the embedding is the factorized terms alone.
        self.joint = nn.Embedding(rows, hidden) if 0 < rows <= JOINT_MAX_ROWS else None
        if self.joint is None and not valued:
            log.info(
                "EEG embedding: %d (channel, band, symbol) combinations exceed %d; using the "
                "factorized symbol + channel + band + time terms only",
                rows,
                JOINT_MAX_ROWS,
            )
        terms = [
            e
            for e in (self.symbol, self.channel, self.band, self.time, self.joint, self.value)
            if e is not None
        ]
        filterbank = front_end is not None and front_end.kind == "filterbank"
        if filterbank and not spec.patch:
            raise ConfigError(
                "model.front_end.kind=filterbank filters the raw signal: it needs "
                "data.tokenizer.kind=patch"
            )
        # The front end adds two terms: its per-patch and its per-channel features.
        count = len(terms) + (1 if spec.patch else 0) + (2 if filterbank else 0)
        for emb in terms:  # the sum of the terms has about init_std
            nn.init.normal_(emb.weight, std=init_std / count**0.5)
        self.patch = (
            PatchEncoder(spec.patch, spec.patch_encoder_width, hidden, init_std / count**0.5)
            if spec.patch
            else None
        )
        self.front_end = (
            FilterBankFrontEnd(spec, front_end, hidden, init_std / count**0.5)
            if filterbank and front_end is not None
            else None
        )

    def forward(self, input_ids: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
        return self.encode(input_ids, values)[0]

    def encode(
        self, input_ids: torch.Tensor, values: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The token embeddings, and the front end's summary of the window for the head (None
        without one: `model.front_end.to_head`)."""
        n = input_ids.shape[1]
        summary = None
        if n > self.channel_ids.numel():
            raise ValueError(
                f"sequence of {n} tokens is longer than the layout ({self.channel_ids.numel()})"
            )
        if self.value is not None or self.patch is not None:
            if values is None:
                raise ValueError("this model reads continuous or patch inputs: pass `values`")
            if self.patch is not None:
                token = self.patch(values)
                if self.front_end is not None:
                    features, summary = self.front_end(values)
                    token = token + features.to(token.dtype)
            else:
                assert self.value is not None
                weight = self.value(self.slot_ids[:n])
                token = values[..., None].to(weight.dtype) * weight
        else:
            assert self.symbol is not None  # quantized inputs always have the symbol table
            token = self.symbol(input_ids)
            if self.joint is not None:
                token = token + self.joint(self.slot_offset[:n] + input_ids)
        token = (
            token
            + self.channel(self.channel_ids[:n])
            + self.band(self.band_ids[:n])
            + self.time(self.time_ids[:n])
        )
        return token, summary
