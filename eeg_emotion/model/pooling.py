"""What the head reads of the last hidden states (the readout), and the attention mask that lets
every EEG token see every other."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from eeg_emotion.model.embedding import InputSpec


def masked_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """hidden (B, L, H), mask (B, L) of 0/1 -> (B, H): mean over unmasked positions."""
    m = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


def masked_max(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Max over unmasked positions. Padding is -inf, not 0: multiplying padding by 0 (the
    original method) returns 0 instead of the true max wherever all activations are negative."""
    filled = hidden.masked_fill(~mask.bool().unsqueeze(-1), float("-inf"))
    out = filled.amax(1)
    return torch.where(torch.isinf(out), torch.zeros_like(out), out)  # fully padded rows -> 0


def mean_max_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, L, H) -> (B, 2H) = [masked mean, masked max], computed in fp32."""
    h = hidden.float()
    return torch.cat([masked_mean(h, mask), masked_max(h, mask)], dim=-1)


def channel_mean_pool(
    hidden: torch.Tensor, mask: torch.Tensor, channels: torch.Tensor, count: int
) -> torch.Tensor:
    """(B, L, H) -> (B, count * H): the masked mean over each channel's tokens, channels side
    by side, in fp32. `channels` (L,) holds each token's channel, -1 for none (not pooled)."""
    h = hidden.float()
    onehot = torch.nn.functional.one_hot(channels.clamp(min=0), count).to(h.dtype)  # (L, C)
    onehot = onehot * (channels >= 0).unsqueeze(-1).to(h.dtype)
    weights = onehot.unsqueeze(0) * mask.to(h.dtype).unsqueeze(-1)  # (B, L, C)
    sums = torch.einsum("blh,blc->bch", h, weights)
    means = sums / weights.sum(1).clamp(min=1).unsqueeze(-1)
    return means.flatten(1)


class Readout(nn.Module):
    """`mean_max`: mean and max over every token (the original method; a difference between
    channels cancels there). `channels`: each electrode's mean, side by side (CBraMod's head
    reads every channel's features too)."""

    channels: torch.Tensor

    def __init__(self, kind: str, inputs: InputSpec, hidden: int) -> None:
        super().__init__()
        self.kind = kind
        ids = torch.tensor(inputs.channel, dtype=torch.long)
        # Compact channel numbers: the electrodes this input has, in order of first appearance.
        present = sorted({int(c) for c in inputs.channel if c >= 0})
        lookup = {c: i for i, c in enumerate(present)}
        compact = torch.tensor([lookup.get(int(c), -1) for c in ids.tolist()], dtype=torch.long)
        self.register_buffer("channels", compact, persistent=False)
        self.count = len(present)
        self.width = 2 * hidden if kind == "mean_max" else self.count * hidden

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "mean_max":
            return mean_max_pool(hidden, mask)
        return channel_mean_pool(hidden, mask, self.channels[: hidden.shape[1]], self.count)


def bidirectional_mask(mask: torch.Tensor, config: Any, dtype: torch.dtype) -> torch.Tensor:
    """A 4-D mask (B, 1, L, L) in which every real token attends to every real token (padding
    masked, nothing causal); transformers uses a 4-D mask as given. SDPA and the flash kernels
    take it as booleans, eager attention adds it."""
    keep = mask.bool()[:, None, None, :].expand(-1, 1, mask.shape[1], -1)
    if getattr(config, "_attn_implementation", "sdpa") == "eager":
        return torch.zeros(keep.shape, dtype=dtype, device=mask.device).masked_fill(
            ~keep, torch.finfo(dtype).min
        )
    return keep
