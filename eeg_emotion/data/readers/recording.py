"""The reader seam: what every dataset reader returns, whatever the dataset's files look like.

A `Recording` is one participant's session: its trials as (channels x samples) arrays of any
lengths, optional per-trial baselines, the channel names as the dataset spells them, the
sampling rate, and one target per trial (ratings on a stated scale, or named categories). A
`Reader` finds the recordings under a folder and reads one of them; nothing above this seam
needs to know which dataset it reads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from eeg_emotion.errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ratings:
    """Per-trial ratings: `values[i, j]` is trial i's rating `names[j]` on `low`..`high`."""

    names: tuple[str, ...]
    values: np.ndarray  # (trials, len(names)) float64
    low: float
    high: float

    def column(self, name: str) -> np.ndarray:
        """One rating for every trial."""
        if name not in self.names:
            raise KeyError(f"no rating {name!r}; this dataset has {', '.join(self.names)}")
        return self.values[:, self.names.index(name)]


@dataclass(frozen=True)
class Categories:
    """Per-trial classes: `values[i]` indexes `names` (e.g. 0 negative, 1 neutral, 2 positive)."""

    names: tuple[str, ...]
    values: np.ndarray  # (trials,) int64


Targets = Ratings | Categories


@dataclass(frozen=True)
class RecordingRef:
    """Where one recording lives: a file (which may hold several) and whose it is."""

    path: Path
    subject: int
    session: int = 1


@dataclass
class Recording:
    """One participant's session, validated on construction.

    `trial_numbers[i]` is trial i's number in the dataset's own numbering (1-based): trials a
    reader skipped leave gaps, so keys and messages keep naming the dataset's trials.
    """

    subject: int
    session: int
    trials: list[np.ndarray]  # each (channels, samples); lengths may differ
    channels: tuple[str, ...]
    sampling_rate: float
    targets: Targets
    path: Path
    trial_numbers: list[int]
    baselines: list[np.ndarray] | None = None  # each (channels, samples), or None
    source: str = field(default="")
    bad_channels: tuple[str, ...] = ()  # named by the recording's own files (BIDS channels.tsv)

    def __post_init__(self) -> None:
        n = len(self.trials)
        if len(self.trial_numbers) != n or len(set(self.trial_numbers)) != n:
            raise DataError(self.path, f"{n} trials but trial numbers {self.trial_numbers}")
        if len(self.targets.values) != n:
            raise DataError(self.path, f"{n} trials but {len(self.targets.values)} targets")
        if self.baselines is not None and len(self.baselines) != n:
            raise DataError(self.path, f"{n} trials but {len(self.baselines)} baselines")
        for what, arrays in (("trial", self.trials), ("baseline", self.baselines)):
            for number, array in zip(self.trial_numbers, arrays or [], strict=bool(arrays)):
                if array.ndim != 2 or array.shape[0] != len(self.channels):
                    raise DataError(
                        self.path,
                        f"{what} {number} has shape {array.shape}; expected "
                        f"({len(self.channels)} channels, samples)",
                    )

    @classmethod
    def of(
        cls,
        ref: RecordingRef,
        *,
        source: str,
        trials: list[np.ndarray],
        channels: tuple[str, ...],
        sampling_rate: float,
        targets: Targets,
        trial_numbers: list[int],
        baselines: list[np.ndarray] | None = None,
    ) -> Recording:
        """The recording `ref` names (its subject, session and file), as a reader read it."""
        return cls(
            subject=ref.subject,
            session=ref.session,
            trials=trials,
            channels=channels,
            sampling_rate=sampling_rate,
            targets=targets,
            path=ref.path,
            trial_numbers=trial_numbers,
            baselines=baselines,
            source=source,
        )

    def trial_key(self, index: int) -> str:
        """A stable name for trial `index`: `s<subject>-<session>-t<number>`."""
        return f"s{self.subject:02d}-{self.session}-t{self.trial_numbers[index]:02d}"

    def keep(self, indices: Sequence[int]) -> Recording:
        """The same recording with only the trials at `indices` (in that order)."""
        values = self.targets.values[list(indices)]
        return replace(
            self,
            trials=[self.trials[i] for i in indices],
            trial_numbers=[self.trial_numbers[i] for i in indices],
            baselines=None if self.baselines is None else [self.baselines[i] for i in indices],
            targets=replace(self.targets, values=values),
        )


class Reader(Protocol):
    """Finds the recordings of one dataset under a folder and reads one at a time."""

    def find(self, root: str | Path) -> list[RecordingRef]: ...

    def read(self, ref: RecordingRef) -> Recording: ...


def check_finite(path: Path, where: str, array: np.ndarray, channels: Sequence[str]) -> None:
    """DataError naming the first NaN/inf in a (channels, samples) array."""
    bad = ~np.isfinite(array)
    if bad.any():
        channel, sample = np.argwhere(bad)[0]
        raise DataError(
            path,
            f"{where} has {int(bad.sum())} non-finite values (NaN/inf), first at channel "
            f"{channels[channel]}, sample {sample}",
        )


def check_ratings(
    path: Path,
    ratings: Ratings,
    trial_numbers: Sequence[int],
    *,
    skip_nan: bool = False,
) -> list[int]:
    """Indices of the trials to keep; a rating off the scale is a DataError naming the trial.

    A NaN rating is an error too, unless `skip_nan`: then its trial is dropped with a warning
    that names it (never replaced by a made-up value).
    """
    keep = []
    for i, number in enumerate(trial_numbers):
        row = ratings.values[i]
        missing = [n for n, v in zip(ratings.names, row, strict=True) if np.isnan(v)]
        if missing and skip_nan:
            log.warning("%s: trial %d skipped: its %s rating is NaN", path, number, missing[0])
            continue
        for name, value in zip(ratings.names, row, strict=True):
            if not ratings.low <= value <= ratings.high:  # NaN fails this too
                raise DataError(
                    path,
                    f"trial {number}: {name} rating is {value}; expected "
                    f"{ratings.low:g}..{ratings.high:g}",
                )
        keep.append(i)
    return keep
