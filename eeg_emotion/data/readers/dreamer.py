"""Read DREAMER: one `DREAMER.mat`, 23 participants x 18 film clips, Emotiv EPOC, 128 Hz.

The file holds the 1x1 struct `DREAMER` with fields `Data, EEG_SamplingRate, ECG_SamplingRate,
EEG_Electrodes, noOfSubjects, noOfVideoSequences, Disclaimer, Provider, Version,
Acknowledgement`. `Data` is a 1x23 cell of 1x1 structs `Age, Gender, EEG, ECG, ScoreValence,
ScoreArousal, ScoreDominance` (a 1x23 struct array is read too). `EEG.baseline` and
`EEG.stimuli` are 18x1 cells of (samples x 14) matrices: a 61 s recording before each clip and
the clip itself (about 65-393 s). Scores are 18x1 integers 1..5.

Ratings keep DREAMER's 1..5 scale: where high and low split (`>= 3`, `> 3`, or dropping the
3s, as peers variously do) is a label setting, not the reader's business. Channel names come
from `EEG_Electrodes`; participant k is `Data{k}`; trials are numbered 1..18 in clip order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eeg_emotion.data.readers import matfile
from eeg_emotion.data.readers.recording import (
    Ratings,
    Recording,
    RecordingRef,
    check_finite,
    check_ratings,
)
from eeg_emotion.data.source_options import DreamerOptions
from eeg_emotion.errors import DataError

FILE_NAME = "DREAMER.mat"
CHANNELS: tuple[str, ...] = (
    "AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4",
)  # fmt: skip
TOP_FIELDS = (
    "Data", "EEG_SamplingRate", "ECG_SamplingRate", "EEG_Electrodes", "noOfSubjects",
    "noOfVideoSequences", "Disclaimer", "Provider", "Version", "Acknowledgement",
)  # fmt: skip
SUBJECT_FIELDS = (
    "Age", "Gender", "EEG", "ECG", "ScoreValence", "ScoreArousal", "ScoreDominance",
)  # fmt: skip
RATINGS = ("valence", "arousal", "dominance")
SCORE_FIELDS = ("ScoreValence", "ScoreArousal", "ScoreDominance")
SCALE = (1.0, 5.0)
SAMPLING_RATE = 128


@dataclass(frozen=True)
class _Contents:
    """The checked top level of a DREAMER.mat."""

    sampling_rate: float
    channels: tuple[str, ...]
    videos: int
    participants: list[Any]  # one 1x1 struct each, checked when read


class DreamerReader:
    """Every participant of one DREAMER.mat (the file is loaded once, then kept)."""

    def __init__(self, options: DreamerOptions | None = None) -> None:
        self.options = options or DreamerOptions()
        self._cached: tuple[tuple[str, int, int], _Contents] | None = None

    def find(self, root: str | Path) -> list[RecordingRef]:
        root = Path(root)
        path = root if root.is_file() else root / FILE_NAME
        if not path.exists():
            raise DataError(root, f"{FILE_NAME} not found (set the root to the folder holding it)")
        contents = self._contents(path)
        return [RecordingRef(path, k) for k in range(1, len(contents.participants) + 1)]

    def read(self, ref: RecordingRef) -> Recording:
        contents = self._contents(ref.path)
        if not 1 <= ref.subject <= len(contents.participants):
            raise DataError(
                ref.path,
                f"no participant {ref.subject}: the file has 1..{len(contents.participants)}",
            )
        return _participant(ref, contents, baselines=self.options.baselines)

    def _contents(self, path: Path) -> _Contents:
        stat = path.stat() if path.is_file() else None
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size) if stat else None
        if key is not None and self._cached is not None and self._cached[0] == key:
            return self._cached[1]
        contents = _top_level(path, matfile.load(path))
        if key is not None:
            self._cached = (key, contents)
        return contents


def _top_level(path: Path, mat: dict[str, Any]) -> _Contents:
    top = matfile.struct(path, matfile.variable(path, mat, "DREAMER"), "'DREAMER'", TOP_FIELDS)
    rate = matfile.scalar(path, top["EEG_SamplingRate"], "DREAMER.EEG_SamplingRate")
    if rate <= 0:
        raise DataError(path, f"DREAMER.EEG_SamplingRate is {rate}; expected a positive rate")
    videos = int(matfile.scalar(path, top["noOfVideoSequences"], "DREAMER.noOfVideoSequences"))
    count = int(matfile.scalar(path, top["noOfSubjects"], "DREAMER.noOfSubjects"))
    if videos < 1 or count < 1:
        raise DataError(path, f"{count} participants x {videos} clips: nothing to read")
    electrodes = matfile.entries(path, top["EEG_Electrodes"], "DREAMER.EEG_Electrodes")
    channels = tuple(
        matfile.text(path, name, f"DREAMER.EEG_Electrodes{{{i}}}")
        for i, name in enumerate(electrodes, 1)
    )
    if len(channels) != len(CHANNELS):
        raise DataError(path, f"DREAMER.EEG_Electrodes names {len(channels)} channels; expected 14")
    participants = matfile.entries(path, top["Data"], "DREAMER.Data", count)
    return _Contents(rate, channels, videos, participants)


def _participant(ref: RecordingRef, contents: _Contents, *, baselines: bool) -> Recording:
    path, k, n = ref.path, ref.subject, contents.videos
    where = f"participant {k} (DREAMER.Data{{{k}}})"
    record = matfile.struct(path, contents.participants[k - 1], where, SUBJECT_FIELDS)
    eeg = matfile.struct(path, record["EEG"], f"{where}.EEG", ("baseline", "stimuli"))
    trials = _signals(path, eeg["stimuli"], f"{where}: EEG.stimuli", n, contents.channels)
    base = None
    if baselines:
        base = _signals(path, eeg["baseline"], f"{where}: EEG.baseline", n, contents.channels)
    scores = np.empty((n, len(RATINGS)))
    for j, field in enumerate(SCORE_FIELDS):
        column = matfile.matrix(path, record[field], f"{where}: {field}")
        if column.size != n or min(column.shape) != 1:
            raise DataError(path, f"{where}: {field} has shape {column.shape}; expected ({n}, 1)")
        scores[:, j] = column.reshape(-1)
    ratings = Ratings(RATINGS, scores, *SCALE)
    numbers = list(range(1, n + 1))
    check_ratings(path, ratings, numbers)
    return Recording.of(
        ref,
        source="dreamer",
        trials=trials,
        channels=contents.channels,
        sampling_rate=contents.sampling_rate,
        targets=ratings,
        trial_numbers=numbers,
        baselines=base,
    )


def _signals(
    path: Path, cell: Any, where: str, count: int, channels: tuple[str, ...]
) -> list[np.ndarray]:
    """The (samples x 14) matrices of an 18x1 cell, as (14, samples) arrays."""
    out = []
    for trial, value in enumerate(matfile.entries(path, cell, where, count), 1):
        name = f"{where}{{{trial}}} (trial {trial})"
        array = matfile.signal(path, value, name, len(channels), channels_first=False)
        check_finite(path, name, array, channels)
        out.append(array)
    return out
