"""Read SEED-IV (`eeg_raw_data/`): 15 participants x 3 sessions x 24 film clips, 62 channels.

Layout: `eeg_raw_data/<session>/<subject>_<YYYYMMDD>.mat`, the folder (1, 2 or 3) being the
session. Each file holds 24 variables `<initials>_eeg<k>`, k = 1..24, each (62 x samples) in
SEED's channel order; k is read from the name. The four classes (0 neutral, 1 sad, 2 fear,
3 happy) are fixed per session and trial, as the dataset documents them (`SESSION_LABELS`).
A file holding fewer trials (1..n, a cut-down copy) is read as such.

The sampling rate is disputed among peers (200 Hz in TorchEEG and LibEER, 1000 Hz in EEGain)
and the files do not record it: it is the `sampling_rate` option, 200 by default.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eeg_emotion.data.readers import seed
from eeg_emotion.data.readers.recording import Categories, Recording, RecordingRef
from eeg_emotion.data.source_options import SeedIVOptions
from eeg_emotion.errors import DataError

FOLDER = "eeg_raw_data"
CHANNELS = seed.CHANNELS
CLASSES = ("neutral", "sad", "fear", "happy")
TRIALS = 24
SESSION_LABELS: dict[int, tuple[int, ...]] = {
    1: (1, 2, 3, 0, 2, 0, 0, 1, 0, 1, 2, 1, 1, 1, 2, 3, 2, 2, 3, 3, 0, 3, 0, 3),
    2: (2, 1, 3, 0, 0, 2, 0, 2, 3, 3, 2, 3, 2, 0, 1, 1, 2, 1, 0, 3, 0, 1, 3, 1),
    3: (1, 2, 2, 1, 3, 3, 3, 1, 1, 2, 1, 0, 2, 3, 3, 0, 2, 3, 0, 0, 2, 0, 1, 0),
}


class SeedIVReader:
    """Every file of the session folders 1, 2, 3 under `eeg_raw_data`."""

    def __init__(self, options: SeedIVOptions | None = None) -> None:
        self.options = options or SeedIVOptions()

    def find(self, root: str | Path) -> list[RecordingRef]:
        folder = _folder(Path(root))
        refs = []
        for session in SESSION_LABELS:
            if (folder / str(session)).is_dir():
                for subject, paths in seed.dated_files(folder / str(session)).items():
                    if len(paths) > 1:
                        raise DataError(
                            folder / str(session),
                            f"subject {subject} has {len(paths)} files in one session folder",
                        )
                    refs.append(RecordingRef(paths[0], subject, session))
        if not refs:
            raise DataError(folder, "no SEED-IV files found (expected 1/<subject>_<date>.mat)")
        return sorted(refs, key=lambda r: (r.subject, r.session))

    def read(self, ref: RecordingRef) -> Recording:
        if ref.session not in SESSION_LABELS:
            raise DataError(ref.path, f"session {ref.session}: SEED-IV has sessions 1, 2, 3")
        numbers, trials = seed.read_trials(ref.path, None, TRIALS)
        labels = np.array(SESSION_LABELS[ref.session], np.int64)
        return Recording.of(
            ref,
            source="seed_iv",
            trials=trials,
            channels=CHANNELS,
            sampling_rate=self.options.sampling_rate,
            targets=Categories(CLASSES, labels[np.array(numbers) - 1]),
            trial_numbers=numbers,
        )


def _folder(root: Path) -> Path:
    """`root/eeg_raw_data`, or `root` itself when it holds the session folders."""
    for folder in (root / FOLDER, root):
        if any((folder / str(s)).is_dir() for s in SESSION_LABELS):
            return folder
    if not root.is_dir():
        raise DataError(root, "SEED-IV folder not found (set the root to eeg_raw_data)")
    raise DataError(root, f"no session folders 1, 2, 3 here or in {FOLDER}/: not SEED-IV")
