"""A source's recordings -> tokenized dataset on disk, cached by a hash of the files and every
setting.

The source's reader (`data.source`) finds the recordings under `data.root`; they are streamed
one at a time (a full DEAP file is ~100 MB), in two passes:
  1. scan: read, drop/subtract baseline, select channels, cut each trial into windows, compute
     per-window features (band_power: all of them; symbols/text: a subsample) and per-trial
     moments.
  -> labels, splits, normalization statistics and bin edges, all from the training split only.
  2. encode: band_power encodes the stored features; symbols/text read each recording again and
     write its token rows straight to disk.
The result is a folder of .npy files that `TokenData` memory-maps. Rows are windows, in
(subject, session, trial, window) order; a row's trial is its key (`splits.trial_key`, from its
session and number), so trials of any length and several sessions per subject fit one layout.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eeg_emotion import fileio
from eeg_emotion.config import DataSettings
from eeg_emotion.data import splits, stages
from eeg_emotion.data.preprocessor import Preprocessor
from eeg_emotion.data.readers import READERS, Reader, RecordingRef, make_reader
from eeg_emotion.data.stages import PART_IDS, PIPELINE_VERSION
from eeg_emotion.data.tokenize import Layout
from eeg_emotion.errors import DataError

log = logging.getLogger(__name__)


def find_recordings(settings: DataSettings) -> tuple[Reader, list[RecordingRef]]:
    """The source's reader and the recordings it finds under `data.root`, of `data.subjects`
    (every session of each), in (subject, session) order."""
    reader = make_reader(settings.source, settings.reader_options())
    refs = sorted(reader.find(settings.root), key=lambda r: (r.subject, r.session))
    check_bad_channel_keys(settings, refs)
    wanted = settings.subjects
    if wanted is None:
        return reader, refs
    present = sorted({r.subject for r in refs})
    missing = [s for s in wanted if s not in present]
    if missing:
        raise DataError(
            settings.root,
            f"unknown subject id(s) {missing}: files present are for subjects {present}",
        )
    if len(set(wanted)) != len(wanted):
        raise DataError(settings.root, f"subject list has duplicates: {wanted}")
    return reader, [r for r in refs if r.subject in set(wanted)]


def check_bad_channel_keys(settings: DataSettings, refs: list[RecordingRef]) -> None:
    """Each data.bad_channels key must name a recording under data.root (as preprocess matches
    them: its path under the root, or its file name): a misspelt one would leave its channels
    in silently. Any subject's counts, chosen by data.subjects or not."""
    names = {n for r in refs for n in (file_label(settings.root, r.path), r.path.name)}
    unknown = [key for key in settings.bad_channels if key not in names]
    if unknown:
        known = sorted({file_label(settings.root, r.path) for r in refs})
        shown = ", ".join(known[:8]) + (f", ... ({len(known)} in all)" if len(known) > 8 else "")
        raise DataError(
            settings.root,
            f"data.bad_channels names {', '.join(map(repr, unknown))}, not a recording here "
            f"(recordings: {shown})",
        )


def data_files(settings: DataSettings) -> list[Path]:
    """The files the dataset is read from (each once, in reading order)."""
    return list(dict.fromkeys(r.path for r in find_recordings(settings)[1]))


def file_label(root: str | Path, path: Path) -> str:
    """A data file's name under `root`, as keys and fingerprints record it (DEAP's: sNN.dat)."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        return path.name
    return path.name if rel == Path(".") else rel.as_posix()


def cache_key(settings: DataSettings, files: list[Path]) -> str:
    """Hash of every setting that changes the result and of each file's name, size and mtime."""
    relevant = settings.model_dump(mode="json", exclude={"root", "cache_dir"})
    stamp = []
    for f in files:
        st = f.stat()
        stamp.append([file_label(settings.root, f), st.st_size, st.st_mtime_ns])
    blob = json.dumps([PIPELINE_VERSION, relevant, stamp], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@dataclass
class TokenData:
    """A built dataset, memory-mapped from its cache folder."""

    path: Path
    meta: dict[str, Any]  # everything `summary` prints; the typed fields below are for code
    tokens: np.ndarray  # (rows, max_len)
    lengths: np.ndarray  # (rows,)
    rows: np.ndarray  # (rows, 3): subject, trial key (`splits.trial_key`), window
    labels: np.ndarray  # (rows, targets)
    ratings: np.ndarray  # (rows, the source's target columns): ratings, or category ids
    part: np.ndarray  # (rows,): 0 train, 1 val, 2 test
    layout: Layout  # what each token position stands for
    split: dict[str, list[tuple[int, ...]]]
    preprocessor: Preprocessor  # fitted on the training split
    # (rows, max_len) standardized token values (continuous inputs), or (rows, max_len, patch)
    # float16 patches of normalized signal (patch inputs)
    values: np.ndarray | None
    targets: list[str]
    num_classes: int
    class_names: list[str]
    subjects: list[int]
    tokenizer_kind: str  # symbols, band_power, text or patch
    pad_id: int
    vocab_size: int

    @classmethod
    def load(cls, path: str | Path) -> TokenData:
        path = Path(path)
        try:
            meta = fileio.load_json(path / "meta.json")
            arrays = {
                n: np.load(path / f"{n}.npy", mmap_mode="r")
                for n in ("tokens", "lengths", "rows", "labels", "ratings", "part")
            }
            lay = np.load(path / "layout.npz")
            preprocessor = Preprocessor.load(path)
            tok = preprocessor.settings.tokenizer
            values = (
                np.load(path / "values.npy", mmap_mode="r")
                if tok.continuous
                else np.load(path / "patches.npy", mmap_mode="r")
                if tok.kind == "patch"
                else None
            )
        except (OSError, ValueError, DataError) as exc:
            raise DataError(
                path, f"incomplete or corrupt dataset cache ({exc}); delete it"
            ) from None
        return cls(
            path,
            meta,
            layout=Layout(lay["channel"], lay["band"], lay["time"]),
            split=splits.load_split(path / "splits.json"),
            preprocessor=preprocessor,
            values=values,
            targets=list(meta["targets"]),
            num_classes=int(meta["num_classes"]),
            class_names=list(meta["class_names"]),
            subjects=[int(s) for s in meta["subjects"]],
            tokenizer_kind=str(meta["tokenizer"]),
            pad_id=int(meta["pad_id"]),
            vocab_size=int(meta["vocab_size"]),
            **arrays,
        )

    @property
    def settings(self) -> DataSettings:
        return self.preprocessor.settings

    def train_labels(self) -> np.ndarray:
        """(training rows, targets) int64 classes."""
        return np.asarray(self.labels)[self.indices("train")].astype(np.int64)

    def train_subjects(self) -> np.ndarray:
        return np.asarray(self.rows)[self.indices("train"), 0]

    def indices(self, part: str) -> np.ndarray:
        return np.flatnonzero(self.part == PART_IDS[part])

    def summary(self) -> str:
        m = self.meta
        lines = [
            f"dataset  {self.path}",
            f"subjects {len(m['subjects'])} ({m['subjects'][0]}..{m['subjects'][-1]}), "
            f"{m['num_rows']} windows of {m['window_samples']} samples "
            f"({m['window_samples'] / m['sampling_rate']:g} s, stride {m['stride_samples']})",
            f"tokens   {m['tokenizer']}: {m['tokens_per_window']} tokens/window, "
            f"coverage {100 * m['coverage']:.1f} % of each window's signal, "
            f"vocab {m['vocab_size']}",
            f"split    {m['split_protocol']}"
            + (
                "  (LEAKY: windows of one trial in several parts)"
                if m["split_protocol"] == "segment"
                else ""
            )
            + (
                "  (LEAKY: bin edges fitted on every window)"
                if self.settings.quantize.fit_on != "train"
                else ""
            ),
        ]
        for part, info in m["parts"].items():
            balance = "  ".join(
                f"{t} " + "/".join(f"{100 * p:.0f}" for p in info["class_fraction"][t]) + " %"
                for t in m["targets"]
            )
            lines.append(
                f"  {part:<5} {info['windows']:>6} windows {info['trials']:>5} trials  {balance}"
            )
        lines.append(f"classes  {' / '.join(m['class_names'])} per target; {m['label_rule']}")
        return "\n".join(lines)


def build(settings: DataSettings, progress: bool = True) -> TokenData:
    """Load the dataset from the cache, or build it (streaming recording by recording)."""
    reader, refs = find_recordings(settings)
    files = list(dict.fromkeys(r.path for r in refs))
    key = cache_key(settings, files)
    target = Path(settings.cache_dir) / f"{settings.source}-{key}"
    _remove_abandoned(target.parent)  # on every build or load: a killed build's copy is ~1 GB
    if (target / "meta.json").exists():
        log.info("loading cached dataset %s", target)
        return TokenData.load(target)
    # The cache folders this build makes: a refused build (bad settings found while reading)
    # leaves none of them behind, the deepest first, and only while empty.
    made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    target.parent.mkdir(parents=True, exist_ok=True)
    # A half-built cache is never visible; if another process finished first, its equivalent
    # copy is kept; a stale folder without meta.json (deleted by hand, a copy cut short) is
    # replaced.
    try:
        with fileio.publish_dir(target, complete="meta.json") as tmp:
            stages.build_into(
                tmp, settings, stages.Recordings(reader, refs, files), key, progress=progress
            )
            if target.exists() and not (target / "meta.json").exists():
                log.warning("replacing the incomplete dataset cache %s", target)
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:
                break  # not empty: something else uses it, and so its parents
        raise
    return TokenData.load(target)


ABANDONED_S = fileio.ABANDONED_S
# publish_dir's temporary folder, the old folder of an interrupted swap, and the stale folder
# of earlier versions, for every source.
LEFTOVER_PATTERNS = tuple(
    pattern
    for source in READERS
    for pattern in (f".{source}-*", f".old-{source}-*", f".stale-{source}-*")
)


def _remove_abandoned(cache_dir: Path) -> None:
    """Build folders of killed processes, of any cache in `cache_dir`: one whose process has
    ended at once, one it cannot check once old (`fileio.abandoned`); a live build's stays."""
    fileio.remove_abandoned(p for pattern in LEFTOVER_PATTERNS for p in cache_dir.glob(pattern))
