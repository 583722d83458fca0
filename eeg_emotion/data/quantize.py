"""Amplitude / feature quantization with bin edges fitted on the training split only."""

from __future__ import annotations

import numpy as np

from eeg_emotion.config import QuantizeSettings


def fit_edges(values: np.ndarray, settings: QuantizeSettings) -> np.ndarray:
    """Interior bin edges (groups..., num_bins - 1) from training values (samples, groups...).

    Edges lie between the `low_pct` and `high_pct` percentiles: quantile edges put equal mass in
    the inner bins, uniform edges split that range evenly; values outside land in the end bins.
    """
    if values.shape[0] == 0:
        raise ValueError("cannot fit bin edges: the training split is empty")
    k = settings.num_bins - 1
    if settings.edges == "quantile":
        pcts = np.linspace(settings.low_pct, settings.high_pct, k)
        edges = np.percentile(values, pcts, axis=0)
    else:
        lo, hi = np.percentile(values, [settings.low_pct, settings.high_pct], axis=0)
        edges = lo[None] + (hi - lo)[None] * np.linspace(0, 1, k).reshape(-1, *[1] * lo.ndim)
    return np.moveaxis(edges, 0, -1).astype(np.float32)


def apply_edges(x: np.ndarray, edges: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Bin index per value. `edges` is (num_bins-1,) or (groups, num_bins-1) with the groups
    along `axis` of x. Result fits uint8 for up to 256 bins, else uint16."""
    dtype = np.uint8 if edges.shape[-1] < 256 else np.uint16
    if edges.ndim == 1:
        return np.searchsorted(edges, x, side="right").astype(dtype)
    if axis is None:
        raise ValueError("per-group edges need the axis of the groups")
    moved = np.moveaxis(x, axis, 0)
    out = np.empty(moved.shape, dtype)
    for g in range(edges.shape[0]):
        out[g] = np.searchsorted(edges[g], moved[g], side="right")
    return np.moveaxis(out, 0, axis)
