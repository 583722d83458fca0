"""A trained model's channels on a recording of another montage (`predict`, and `evaluate`
on another dataset).

Channels are matched by `channels.channel_key` (case, EDF type prefixes and reference
suffixes never matter). A recording's extra channels are left out. The trained channels it
lacks are

- read without, by a patch model (`data.tokenizer.kind=patch`): its channel embedding is keyed
  by electrode name, so it reads the channels it has (`dropped`);
- interpolated, for every other model, by `eeg_emotion.data.preprocess` as it interpolates bad
  channels (spherical splines from standard 10-05 positions): `complete` adds them as flat bad
  channels, which the recording's preprocessing then interpolates from the others.

Where neither is possible (no standard position, fewer than `preprocess.MIN_NEIGHBOURS` placed
EEG channels to interpolate from, or none of the channels for a patch model) `match` refuses,
naming the channels, before any signal is processed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from eeg_emotion.data.channels import channel_index, channel_key
from eeg_emotion.data.preprocess import check_interpolable
from eeg_emotion.data.readers.recording import Recording
from eeg_emotion.errors import DataError


@dataclass(frozen=True)
class Montage:
    """How a model's channels (named as it names them) map onto one recording's."""

    used: tuple[str, ...]  # trained channels the recording has
    interpolated: tuple[str, ...] = ()  # trained channels it lacks, interpolated
    dropped: tuple[str, ...] = ()  # trained channels it lacks, read without (patch models)
    extra: tuple[str, ...] = ()  # its channels the model does not read (as it names them)

    def warning(self) -> str | None:
        """What a user must know about this montage, in a line (None: the trained one)."""
        if self.interpolated:
            return (
                f"lacks {_named(self.interpolated)} that the model was trained on: "
                "interpolated by spherical splines from standard 10-05 positions"
            )
        if self.dropped:
            return (
                f"lacks {_named(self.dropped)} that the model was trained on: the patch model "
                f"reads the {len(self.used)} it has"
            )
        return None


def _named(channels: Sequence[str]) -> str:
    return f"channel{'s' if len(channels) > 1 else ''} {', '.join(channels)}"


def match(
    trained: Sequence[str], channels: Sequence[str], *, patch: bool, where: str | Path
) -> Montage:
    """The montage of a recording with `channels` for a model trained on `trained`; a
    DataError naming the channels where the model cannot read it."""
    index = channel_index(channels)
    used = tuple(c for c in trained if channel_key(c) in index)
    missing = tuple(c for c in trained if channel_key(c) not in index)
    trained_keys = {channel_key(c) for c in trained}
    extra = tuple(c for c in channels if channel_key(c) not in trained_keys)
    if not missing:
        return Montage(used, extra=extra)
    if patch:
        if not used:
            raise DataError(
                where,
                f"has none of the channels the model was trained on ({', '.join(trained)}); "
                f"it has {', '.join(channels)}",
            )
        return Montage(used, dropped=missing, extra=extra)
    check_interpolable(list(missing), [*channels, *missing], where, "missing trained channel")
    return Montage(used, interpolated=missing, extra=extra)


def complete(rec: Recording, montage: Montage) -> Recording:
    """`rec` with its `montage.interpolated` channels added, flat and marked bad: the
    preprocessing of the recording interpolates them (the same object where none is)."""
    if not montage.interpolated:
        return rec
    added = len(montage.interpolated)

    def grown(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x, np.zeros((added, x.shape[-1]), x.dtype)])

    return replace(
        rec,
        trials=[grown(x) for x in rec.trials],
        baselines=None if rec.baselines is None else [grown(x) for x in rec.baselines],
        channels=(*rec.channels, *montage.interpolated),
        bad_channels=(*rec.bad_channels, *montage.interpolated),
    )
