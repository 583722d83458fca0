"""Read AMIGOS (`Data_Preprocessed_P01.mat` .. `P40.mat`): 16 short and 4 long videos, 128 Hz.

Each file holds `joined_data`, a 1x20 cell of (samples x 17) matrices (14 EEG channels in
DREAMER's order, then ECG_Right, ECG_Left, GSR), and `labels_selfassessment`, a 1x20 cell of
1x12 rows: arousal, valence, dominance, liking, familiarity (1..9), then seven 0/1 basic
emotions (neutral, disgust, happiness, surprise, anger, fear, sadness), which are not read.
Arousal comes before valence: the ratings keep the file's order and are used by name. Files
are found in the root folder and below it (the archives unpack one folder per participant).

Options (`AmigosOptions`), with their defaults:
- `excluded`: participants that `find` leaves out, TorchEEG's default list (9, 12, 21, 22, 23,
  24 and 33, whose recordings it calls invalid). `[]` keeps everyone.
- `long_videos`: videos 17-20 are the long ones, and some participants have none (empty
  cells). `drop` (default) reads videos 1-16 only; `when_present` also reads the long ones a
  participant has, skipping an empty cell with a warning; `required` makes an empty one an
  error. An empty cell among videos 1-16 is always an error.
- `baseline_seconds`: the first 5 s of each trial become its baseline (TorchEEG's reading of
  the files); 0 keeps them in the trial and gives no baseline.
- `channels`: `eeg` (the 14 EEG channels) or `all` (with ECG_Right, ECG_Left, GSR). Only the
  channels read are checked for NaN.
- `nan_labels`: a NaN rating is an `error` naming the trial, or (`skip`) drops that trial
  with a warning naming it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from eeg_emotion.data.readers import dreamer, matfile
from eeg_emotion.data.readers.recording import (
    Ratings,
    Recording,
    RecordingRef,
    check_finite,
    check_ratings,
)
from eeg_emotion.data.source_options import AmigosOptions
from eeg_emotion.errors import DataError

log = logging.getLogger(__name__)

FILE_PATTERN = re.compile(r"^Data_Preprocessed_P(\d{2})\.mat$")
EEG_CHANNELS = dreamer.CHANNELS
ALL_CHANNELS: tuple[str, ...] = (*EEG_CHANNELS, "ECG_Right", "ECG_Left", "GSR")
RATINGS = ("arousal", "valence", "dominance", "liking", "familiarity")
EMOTIONS = ("neutral", "disgust", "happiness", "surprise", "anger", "fear", "sadness")
SCALE = (1.0, 9.0)
SAMPLING_RATE = 128
VIDEOS = 20
SHORT_VIDEOS = 16


class AmigosReader:
    def __init__(self, options: AmigosOptions | None = None) -> None:
        self.options = options or AmigosOptions()

    def find(self, root: str | Path) -> list[RecordingRef]:
        root = Path(root)
        if not root.is_dir():
            raise DataError(root, "AMIGOS folder not found")
        found: dict[int, Path] = {}
        for path in sorted(root.rglob("Data_Preprocessed_P*.mat")):
            if m := FILE_PATTERN.match(path.name):
                participant = int(m.group(1))
                if participant in found:
                    raise DataError(path, f"participant {participant} also in {found[participant]}")
                found[participant] = path
        if not found:
            raise DataError(root, "no AMIGOS files found (expected Data_Preprocessed_P01.mat ...)")
        skipped = sorted(set(found) & set(self.options.excluded))
        if skipped:
            log.info("AMIGOS participants %s left out (options: excluded)", skipped)
        return [RecordingRef(p, k) for k, p in sorted(found.items()) if k not in skipped]

    def read(self, ref: RecordingRef) -> Recording:
        opts, path = self.options, ref.path
        mat = matfile.load(path)
        cells = matfile.entries(path, matfile.variable(path, mat, "joined_data"), "'joined_data'")
        rows = matfile.entries(
            path, matfile.variable(path, mat, "labels_selfassessment"), "'labels_selfassessment'"
        )
        for name, values in (("joined_data", cells), ("labels_selfassessment", rows)):
            if len(values) != VIDEOS:
                raise DataError(path, f"'{name}' has {len(values)} cells; expected 1x{VIDEOS}")
        channels = EEG_CHANNELS if opts.channels == "eeg" else ALL_CHANNELS
        last = SHORT_VIDEOS if opts.long_videos == "drop" else VIDEOS
        numbers, trials, ratings = [], [], []
        for k in range(1, last + 1):
            trial = _trial(path, k, cells[k - 1], len(channels), opts.long_videos)
            if trial is None:
                continue
            check_finite(path, f"trial {k} (joined_data{{{k}}})", trial, channels)
            numbers.append(k)
            trials.append(trial)
            ratings.append(_ratings(path, k, rows[k - 1]))
        targets = Ratings(RATINGS, np.array(ratings, np.float64).reshape(-1, len(RATINGS)), *SCALE)
        keep = check_ratings(path, targets, numbers, skip_nan=opts.nan_labels == "skip")
        if not keep:
            raise DataError(path, "no trial left to read")
        trials, baselines = _split_baselines(path, numbers, trials, opts.baseline_seconds)
        recording = Recording.of(
            ref,
            source="amigos",
            trials=trials,
            channels=channels,
            sampling_rate=SAMPLING_RATE,
            targets=targets,
            trial_numbers=numbers,
            baselines=baselines,
        )
        return recording if len(keep) == len(numbers) else recording.keep(keep)


def _trial(path: Path, k: int, cell: Any, channels: int, long_videos: str) -> np.ndarray | None:
    """Trial k's first `channels` channels as (channels, samples); None for an empty long
    video that the options let pass."""
    where = f"trial {k} (joined_data{{{k}}})"
    if isinstance(cell, np.ndarray) and cell.size == 0:
        if k <= SHORT_VIDEOS or long_videos == "required":
            raise DataError(path, f"{where} is empty")
        log.warning("%s: %s is empty (a long video this participant lacks): skipped", path, where)
        return None
    array = matfile.signal(path, cell, where, len(ALL_CHANNELS), channels_first=False)
    return array[:channels]


def _ratings(path: Path, k: int, cell: Any) -> np.ndarray:
    where = f"trial {k} (labels_selfassessment{{{k}}})"
    row = matfile.matrix(path, cell, where)
    if row.shape != (1, len(RATINGS) + len(EMOTIONS)):
        raise DataError(path, f"{where} has shape {row.shape}; expected (1, 12)")
    return row[0, : len(RATINGS)].astype(np.float64)


def _split_baselines(
    path: Path, numbers: list[int], trials: list[np.ndarray], seconds: float
) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """The first `seconds` of each trial as its baseline, the rest as the trial."""
    cut = round(seconds * SAMPLING_RATE)
    if cut == 0:
        return trials, None
    for number, trial in zip(numbers, trials, strict=True):
        if trial.shape[1] <= cut:
            raise DataError(
                path,
                f"trial {number} has {trial.shape[1]} samples, no more than its "
                f"{seconds:g} s baseline",
            )
    return [t[:, cut:] for t in trials], [t[:, :cut] for t in trials]
