"""Continuous 1..9 ratings -> class labels (2 or 3 levels per target)."""

from __future__ import annotations

import numpy as np

from eeg_emotion.config import LabelSettings
from eeg_emotion.data.readers.deap import LABEL_NAMES


def class_names(num_classes: int) -> list[str]:
    return ["low", "high"] if num_classes == 2 else ["low", "mid", "high"]


def discretize(ratings: np.ndarray, settings: LabelSettings) -> np.ndarray:
    """(n, 4) ratings -> (n, len(targets)) int64 classes.

    2 classes: high when rating > threshold (`high_if: ">"`) or >= threshold (`">="`).
    3 classes: class = number of `cuts` the rating passes, compared the same way.
    """
    cols = [LABEL_NAMES.index(t) for t in settings.targets]
    r = ratings[:, cols]
    cuts = [settings.threshold] if settings.num_classes == 2 else list(settings.cuts)
    above = (lambda c: r > c) if settings.high_if == ">" else (lambda c: r >= c)
    return sum(above(c).astype(np.int64) for c in cuts)
