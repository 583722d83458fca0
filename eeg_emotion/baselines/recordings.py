"""The signals the baselines read: the DEAP files again, prepared as the pipeline prepares them.

The token cache holds quantized codes, not signals, so each baseline reads the recordings anew and
normalizes them with the dataset's own preprocessor (its training-only statistics).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from eeg_emotion.config import Settings
from eeg_emotion.data import pipeline
from eeg_emotion.data.readers import deap


def recordings(settings: Settings, data: pipeline.TokenData) -> Iterator[tuple[int, np.ndarray]]:
    """Per subject, in the dataset's row order: the prepared signal (trials, channels, samples)."""
    pre = data.preprocessor
    for subject in data.subjects:
        path = deap.subject_file(settings.data.root, subject)
        yield subject, pre.prepare(deap.read_subject(path, subject).data, source=path)
