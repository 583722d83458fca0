"""Per-trial targets -> class labels: ratings binned into 2 or 3 levels on their source's
scale, categories taken as their class ids. `source_targets` says which targets a source has."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from eeg_emotion.config import DataSettings, LabelSettings
from eeg_emotion.data.readers.deap import LABEL_NAMES

CATEGORY_TARGET = "emotion"  # the name of SEED's and SEED-IV's category target


@dataclass(frozen=True)
class TargetKind:
    """One target of a source: a rating on `low`..`high`, or one of `categories` (its class
    ids index them)."""

    name: str
    low: float = 1.0
    high: float = 9.0
    categories: tuple[str, ...] = ()


def source_targets(source: str, options: Any) -> dict[str, TargetKind]:
    """Every target of `source` read with `options`, by name, in the recordings' column order."""
    from eeg_emotion.data.readers import amigos, dreamer, seed, seed_iv

    if source in ("seed", "seed_iv"):
        classes = seed.CLASSES if source == "seed" else seed_iv.CLASSES
        return {CATEGORY_TARGET: TargetKind(CATEGORY_TARGET, categories=classes)}
    if source == "mne" and options.category is not None:
        return {options.category: TargetKind(options.category, categories=tuple(options.classes))}
    names, scale = {
        "deap": (LABEL_NAMES, (1.0, 9.0)),
        "dreamer": (dreamer.RATINGS, dreamer.SCALE),
        "amigos": (amigos.RATINGS, amigos.SCALE),
        "mne": (tuple(getattr(options, "ratings", ())), tuple(getattr(options, "scale", (1, 9)))),
    }[source]
    return {name: TargetKind(name, float(scale[0]), float(scale[1])) for name in names}


def class_names(num_classes: int, categories: Sequence[str] = ()) -> list[str]:
    """The classes' names: a category target's own, else low / (mid /) high."""
    if categories:
        return list(categories)
    if num_classes == 2:
        return ["low", "high"]
    if num_classes == 3:
        return ["low", "mid", "high"]
    return [f"class {i}" for i in range(num_classes)]


def label_names(settings: DataSettings) -> list[str]:
    """The class names of `settings`' targets."""
    kinds = source_targets(settings.source, settings.options)
    first = kinds[settings.labels.targets[0]]
    return class_names(settings.labels.num_classes, first.categories)


def label_rule(settings: DataSettings) -> str:
    """How targets became classes, in words (the dataset summary prints it)."""
    lab = settings.labels
    first = source_targets(settings.source, settings.options)[lab.targets[0]]
    if first.categories:
        return f"each {first.name} category is its own class"
    if lab.num_classes == 2:
        return f"high if rating {lab.high_if} {lab.threshold}"
    return f"cuts at {lab.cuts[0]} and {lab.cuts[1]} (class up when rating {lab.high_if} cut)"


def discretize(
    values: np.ndarray,
    settings: LabelSettings,
    columns: Sequence[str] = LABEL_NAMES,
    *,
    categorical: bool = False,
) -> np.ndarray:
    """(n, len(columns)) per-trial targets -> (n, len(targets)) int64 classes.

    Categories (`categorical`): the values are class ids already. Ratings, 2 classes: high
    when rating > threshold (`high_if: ">"`) or >= threshold (`">="`); 3 classes: class =
    number of `cuts` the rating passes, compared the same way.
    """
    cols = [list(columns).index(t) for t in settings.targets]
    r = values[:, cols]
    if categorical:
        return r.astype(np.int64)
    cuts = [settings.threshold] if settings.num_classes == 2 else list(settings.cuts)
    above = (lambda c: r > c) if settings.high_if == ">" else (lambda c: r >= c)
    return sum(above(c).astype(np.int64) for c in cuts)
