"""Dataset readers behind one seam: each finds its recordings under a root and reads one as a
`Recording` (trials of any length, channel names, rate, targets with their scale or names).

`READERS` maps a source name to its reader and `OPTIONS` to its options model
(`eeg_emotion.data.source_options`); every options model has a `source` field, so
`ReaderOptions` can pick the right one from settings.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from eeg_emotion.data.readers.amigos import AmigosReader
from eeg_emotion.data.readers.deap import DeapReader
from eeg_emotion.data.readers.dreamer import DreamerReader
from eeg_emotion.data.readers.mne_files import MneReader
from eeg_emotion.data.readers.recording import (
    Categories,
    Ratings,
    Reader,
    Recording,
    RecordingRef,
    Targets,
)
from eeg_emotion.data.readers.seed import SeedReader
from eeg_emotion.data.readers.seed_iv import SeedIVReader
from eeg_emotion.data.source_options import (
    OPTIONS,
    AmigosOptions,
    DeapOptions,
    DreamerOptions,
    MneOptions,
    SeedIVOptions,
    SeedOptions,
)
from eeg_emotion.data.source_options import SourceOptions as ReaderOptions
from eeg_emotion.errors import ConfigError

READERS: dict[str, Any] = {
    "deap": DeapReader,
    "dreamer": DreamerReader,
    "seed": SeedReader,
    "seed_iv": SeedIVReader,
    "amigos": AmigosReader,
    "mne": MneReader,
}


def make_reader(source: str, options: BaseModel | Mapping[str, Any] | None = None) -> Reader:
    """The reader of `source` with `options` (a model or a plain mapping; None: defaults)."""
    if source not in READERS:
        raise ConfigError(f"unknown data source {source!r}; known: {', '.join(READERS)}")
    model = OPTIONS[source]
    if options is None or isinstance(options, Mapping):
        try:
            options = model.model_validate({"source": source, **(options or {})})
        except ValidationError as exc:
            raise ConfigError(f"options of source {source!r}: {exc}") from None
    if not isinstance(options, model):
        raise ConfigError(f"source {source!r} takes {model.__name__}, not {type(options).__name__}")
    return READERS[source](options)


def read_all(
    source: str, root: str | Path, options: BaseModel | Mapping[str, Any] | None = None
) -> Iterator[Recording]:
    """Every recording of `source` under `root`, one at a time."""
    reader = make_reader(source, options)
    for ref in reader.find(root):
        yield reader.read(ref)


__all__ = [
    "OPTIONS",
    "READERS",
    "AmigosOptions",
    "Categories",
    "DeapOptions",
    "DreamerOptions",
    "MneOptions",
    "Ratings",
    "Reader",
    "ReaderOptions",
    "Recording",
    "RecordingRef",
    "SeedIVOptions",
    "SeedOptions",
    "Targets",
    "make_reader",
    "read_all",
]
