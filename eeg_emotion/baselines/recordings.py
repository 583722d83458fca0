"""The signals the baselines read: the source's recordings again, prepared as the pipeline
prepares them.

The token cache holds quantized codes, not signals, so each baseline reads the recordings anew and
normalizes them with the dataset's own preprocessor (its training-only statistics).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from eeg_emotion.config import Settings
from eeg_emotion.data import pipeline


def recordings(
    settings: Settings, data: pipeline.TokenData
) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Per recording, in the dataset's row order: its subject and prepared trials (channels,
    samples) each."""
    pre = data.preprocessor
    reader, refs = pipeline.find_recordings(settings.data)
    for ref in refs:
        yield ref.subject, pre.prepare(reader.read(ref))
