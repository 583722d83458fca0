"""Scalp maps: what a model reads from each electrode (and band), drawn by MNE's `plot_topomap`
on the standard 10-20 positions of the run's channels.

A run's maps come from RUN/importance.json (`Importance`): the band-power LR's coefficients per
channel and band, or a model's occlusion importance per channel (and band) on the test split
(`evaluation.importance`: EEGNet's when it is fitted, an LLM run's from `report --importance`).
`report` draws them, not the runs: MNE's import and the figures cost seconds. One figure per
target, its panels (one per band) on one colour scale with one colour bar, so that bands
compare within a target.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eeg_emotion import fileio

FILE = "importance.json"
# The 10-20 positions: MNE 1.13 renamed its standard_1020 template colin27_1020.
MONTAGES = ("colin27_1020", "standard_1020")


@dataclass
class Importance:
    """Per target, one value per channel (and band): (channels,) or (channels, bands)."""

    method: str  # what the values are, in a few words (the maps' titles say it)
    channels: list[str]
    bands: list[str] | None  # None: one value per channel
    values: dict[str, list[Any]]  # target -> (channels,) or (channels, bands) as lists

    def array(self, target: str) -> np.ndarray:
        """(channels, panels): one column per band, or one column."""
        a = np.asarray(self.values[target], dtype=float)
        return a.reshape(len(self.channels), -1)

    def ranking(self, target: str, band: int = 0) -> list[str]:
        """The channels from the largest absolute value down, in one band's column."""
        column = np.abs(self.array(target)[:, band])
        return [self.channels[i] for i in np.argsort(-column, kind="stable")]

    def save(self, folder: Path) -> None:
        fileio.write_file(folder / FILE, json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, folder: Path) -> Importance | None:
        """The run's importance, or None where it has none (older runs, text inputs)."""
        stored = fileio.read_json(folder / FILE, default=None)
        return None if stored is None else cls(**stored)


def positions(channels: list[str]) -> tuple[Any, list[int]]:
    """MNE Info with the standard 10-20 positions of `channels`, and the indices of those that
    have one (a channel the montage does not know, such as a peripheral one, is left out)."""
    import mne

    from eeg_emotion.quiet import quiet_libraries

    quiet_libraries()
    builtin = mne.channels.get_builtin_montages()
    montage = mne.channels.make_standard_montage(next(m for m in MONTAGES if m in builtin))
    known = {name.lower(): name for name in montage.ch_names}
    keep = [i for i, name in enumerate(channels) if name.lower() in known]
    info = mne.create_info([known[channels[i].lower()] for i in keep], 128.0, "eeg")
    info.set_montage(montage)
    return info, keep


def draw(importance: Importance, out: Path) -> dict[str, Path]:
    """One PNG per target (`scalp_<target>.png`) in `out`; nothing where fewer than three
    channels have a 10-20 position (no map to draw)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mne.viz import plot_topomap

    info, keep = positions(importance.channels)
    if len(keep) < 3:
        return {}
    out.mkdir(parents=True, exist_ok=True)
    panels = importance.bands or ["all bands"]
    paths = {}
    for target in importance.values:
        values = importance.array(target)[keep]
        signed = bool((values < 0).any())
        # One scale per target, shared by its panels: the bands compare on one colour bar.
        top = float(np.abs(values).max()) or 1.0
        vlim = (-top, top) if signed else (0.0, top)
        cmap = "RdBu_r" if signed else "Reds"
        # Wide enough for the title, which names the method, over a single panel.
        width = max(2.4 * len(panels) + 1.2, 5.0)
        fig, axes = plt.subplots(1, len(panels), figsize=(width, 2.8))
        axes = np.atleast_1d(axes)
        image = None
        for k, (ax, panel) in enumerate(zip(axes, panels, strict=True)):
            image, _ = plot_topomap(
                values[:, k], info, axes=ax, show=False, vlim=vlim, cmap=cmap, contours=0, res=32
            )
            if importance.bands:  # one panel per band; a single map needs no panel title
                ax.set_title(panel, fontsize=9)
        assert image is not None
        fig.colorbar(image, ax=list(axes), shrink=0.8, label=importance.method)
        fig.suptitle(f"{target}: {importance.method}", fontsize=10)
        paths[f"scalp_{target}"] = out / f"scalp_{target}.png"
        fig.savefig(paths[f"scalp_{target}"], dpi=100, bbox_inches="tight")
        plt.close(fig)
    return paths
