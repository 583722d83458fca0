"""Read SEED (`Preprocessed_EEG/`): 15 participants x 3 sessions x 15 film clips, 62 channels.

The folder holds `label.mat` (`label`, 1x15: 1 positive, 0 neutral, -1 negative; the same for
every session), `readme.txt`, and 45 files `<subject>_<YYYYMMDD>.mat`. Each file holds 15
variables `<initials>_eeg<k>`, k = 1..15, each (62 channels x samples) at 200 Hz, about
185-265 s. A participant's sessions are numbered by the date order of their files. Trial k is
read from the variable's name, never from its position in the file. SEED has no baseline.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from eeg_emotion.data.readers import matfile
from eeg_emotion.data.readers.recording import (
    Categories,
    Recording,
    RecordingRef,
    check_finite,
)
from eeg_emotion.data.source_options import SeedOptions
from eeg_emotion.errors import DataError

FOLDER = "Preprocessed_EEG"
LABEL_FILE = "label.mat"
FILE_PATTERN = re.compile(r"^(\d+)_(\d{8})\.mat$")
VARIABLE_PATTERN = re.compile(r"^([A-Za-z][A-Za-z0-9]*)_eeg(\d+)$")
SAMPLING_RATE = 200
CHANNELS: tuple[str, ...] = (
    "FP1", "FPZ", "FP2", "AF3", "AF4", "F7", "F5", "F3", "F1", "FZ", "F2", "F4", "F6", "F8",
    "FT7", "FC5", "FC3", "FC1", "FCZ", "FC2", "FC4", "FC6", "FT8", "T7", "C5", "C3", "C1", "CZ",
    "C2", "C4", "C6", "T8", "TP7", "CP5", "CP3", "CP1", "CPZ", "CP2", "CP4", "CP6", "TP8", "P7",
    "P5", "P3", "P1", "PZ", "P2", "P4", "P6", "P8", "PO7", "PO5", "PO3", "POZ", "PO4", "PO6",
    "PO8", "CB1", "O1", "OZ", "O2", "CB2",
)  # fmt: skip
CLASSES = ("negative", "neutral", "positive")  # class id = label.mat value + 1
LABELS = (1, 0, -1, -1, 0, 1, -1, 0, 1, 1, 0, -1, 0, 1, -1)  # what the real label.mat holds


def dated_files(folder: Path) -> dict[int, list[Path]]:
    """{subject: its `<subject>_<YYYYMMDD>.mat` files in date order} of one folder."""
    by_subject: dict[int, list[tuple[str, Path]]] = defaultdict(list)
    for path in folder.iterdir():
        if m := FILE_PATTERN.match(path.name):
            by_subject[int(m.group(1))].append((m.group(2), path))
    out = {}
    for subject, files in sorted(by_subject.items()):
        files.sort()
        dates = [date for date, _ in files]
        if len(set(dates)) != len(dates):
            raise DataError(folder, f"subject {subject} has two files dated the same day: {dates}")
        out[subject] = [path for _, path in files]
    return out


def read_trials(path: Path, count: int | None, most: int) -> tuple[list[int], list[np.ndarray]]:
    """Trial numbers 1..n and their (62, samples) arrays from the `<initials>_eeg<k>`
    variables of one file: n = `count` when given, else the highest k found (at most `most`)."""
    mat = matfile.load(path)
    found: dict[int, str] = {}
    for name in sorted(mat):
        if m := VARIABLE_PATTERN.match(name):
            k = int(m.group(2))
            if k in found:
                raise DataError(path, f"variables '{found[k]}' and '{name}' both hold trial {k}")
            found[k] = name
    if not found:
        raise DataError(
            path,
            "no variables named <initials>_eeg<k> (variables present: "
            f"{', '.join(sorted(mat)) or 'none'})",
        )
    limit = count if count is not None else most
    extra = sorted(k for k in found if not 1 <= k <= limit)
    if extra:
        raise DataError(
            path, f"variable '{found[extra[0]]}' names trial {extra[0]}; trials are 1..{limit}"
        )
    n = count if count is not None else max(found)
    missing = [k for k in range(1, n + 1) if k not in found]
    if missing:
        raise DataError(
            path, f"trial {missing[0]} is missing: no variable <initials>_eeg{missing[0]}"
        )
    trials = []
    for k in range(1, n + 1):
        where = f"trial {k} ('{found[k]}')"
        array = matfile.signal(path, mat[found[k]], where, len(CHANNELS), channels_first=True)
        check_finite(path, where, array, CHANNELS)
        trials.append(array)
    return list(range(1, n + 1)), trials


def read_labels(path: Path) -> np.ndarray:
    """label.mat's `label` as class ids (value + 1), checked to be -1, 0 or 1."""
    raw = matfile.matrix(path, matfile.variable(path, matfile.load(path), "label"), "'label'")
    if min(raw.shape) != 1:
        raise DataError(path, f"'label' has shape {raw.shape}; expected (1, trials)")
    values = raw.reshape(-1)
    for k, value in enumerate(values, 1):
        if value not in (-1, 0, 1):  # NaN fails this too
            raise DataError(path, f"trial {k}: label is {value}; expected -1, 0 or 1")
    return values.astype(np.int64) + 1


class SeedReader:
    """Every session file of one `Preprocessed_EEG` folder, labelled from its label.mat."""

    def __init__(self, options: SeedOptions | None = None) -> None:
        self.options = options or SeedOptions()
        self._labels: dict[Path, np.ndarray] = {}

    def find(self, root: str | Path) -> list[RecordingRef]:
        folder = _folder(Path(root))
        files = dated_files(folder)
        if not files:
            raise DataError(folder, "no SEED files found (expected <subject>_<YYYYMMDD>.mat)")
        return [
            RecordingRef(path, subject, session)
            for subject, paths in files.items()
            for session, path in enumerate(paths, 1)
        ]

    def read(self, ref: RecordingRef) -> Recording:
        folder = ref.path.parent
        if folder not in self._labels:
            self._labels[folder] = read_labels(folder / LABEL_FILE)
        labels = self._labels[folder]
        numbers, trials = read_trials(ref.path, len(labels), len(labels))
        return Recording.of(
            ref,
            source="seed",
            trials=trials,
            channels=CHANNELS,
            sampling_rate=SAMPLING_RATE,
            targets=Categories(CLASSES, labels[np.array(numbers) - 1]),
            trial_numbers=numbers,
        )


def _folder(root: Path) -> Path:
    """`root/Preprocessed_EEG`, or `root` itself when it is that folder."""
    for folder in (root / FOLDER, root):
        if (folder / LABEL_FILE).is_file():
            return folder
    if not root.is_dir():
        raise DataError(root, "SEED folder not found (set the root to Preprocessed_EEG)")
    raise DataError(root, f"no {LABEL_FILE} here or in {FOLDER}/: not a SEED folder")
