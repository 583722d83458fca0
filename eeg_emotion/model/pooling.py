"""Masked mean and max pooling over the sequence axis, in fp32."""

from __future__ import annotations

import torch


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
