"""The stages that write one token dataset into a folder (`pipeline.build` publishes it):
scan every recording, index the rows, assign the split's parts, fit the preprocessor on the
training rows only, write the tokens and the arrays, then meta.json last. Each stage hands a
small typed record to the next."""

from __future__ import annotations

import json
import logging
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from tqdm import tqdm

from eeg_emotion.config import DataSettings
from eeg_emotion.data import signal, splits
from eeg_emotion.data.channels import source_channels
from eeg_emotion.data.labels import discretize, label_names, label_rule, source_targets
from eeg_emotion.data.preprocessor import Preprocessor
from eeg_emotion.data.readers import Reader, Recording, RecordingRef
from eeg_emotion.data.readers.recording import Categories
from eeg_emotion.data.tokenize import PatchTokenizer
from eeg_emotion.errors import DataError

log = logging.getLogger(__name__)

PIPELINE_VERSION = 3
PART_IDS = {"train": 0, "val": 1, "test": 2}
FIT_VALUES_PER_WINDOW = 16  # per channel: plenty for percentiles, small in memory


@dataclass
class Recordings:
    """What the build reads: the source's reader, its recordings and their files."""

    reader: Reader
    refs: list[RecordingRef]
    files: list[Path]


@dataclass
class RecordingScan:
    """Pass 1 for one recording: what indexing and fitting need, without the signal itself."""

    ref: RecordingRef
    trials: np.ndarray  # (trials,) int64 trial keys (`splits.trial_key`)
    values: np.ndarray  # (trials, target columns) float32: ratings, or category ids
    windows: np.ndarray  # (trials,) windows per trial
    moments: np.ndarray  # (trials, channels, 3) from `signal.channel_moments`
    # band_power: every window's features; symbols/text: a subsample for fitting bin edges.
    # None once handed on (`_take_features`), so that only one copy is held.
    features: np.ndarray | None

    @property
    def subject(self) -> int:
        return self.ref.subject

    @property
    def num_rows(self) -> int:
        return int(self.windows.sum())


@dataclass
class RowIndex:
    """Every row (window) in (subject, session, trial, window) order, with its targets and
    labels."""

    rows: np.ndarray  # (rows, 3) int32: subject, trial key, window
    ratings: np.ndarray  # (rows, target columns) float32
    labels: np.ndarray  # (rows, targets) int8
    trials: dict[int, list[int]]  # subject -> its trial keys, over all of its sessions
    windows: dict[tuple[int, int], int]  # (subject, trial key) -> windows
    strata: dict[tuple[int, int], int]  # (subject, trial key) -> class of the first target


@dataclass
class PartAssignment:
    """The split and what follows from it for each row."""

    split: dict[str, list[splits.Key]]
    part: np.ndarray  # (rows,) int8: 0 train, 1 val, 2 test
    train_trials: set[tuple[int, int]]


def build_into(
    folder: Path, settings: DataSettings, recordings: Recordings, key: str, *, progress: bool
) -> None:
    """Both passes; every file of the dataset is written into `folder`, meta.json last."""
    started = time.perf_counter()
    pre, scans = _scan_all(settings, recordings, progress=progress)
    index = _index_rows(scans, settings)
    assignment = _assign_parts(index, settings)
    features = _take_features(scans)
    _fit_on_training(pre, scans, features, index.rows, assignment)
    if pre.tokenizer.kind == "band_power":  # every feature is at hand: encode them at once
        lengths = _write_band_power_tokens(folder, pre, scans, features)
    else:
        del features  # only a subsample, for fitting: pass 2 reads each recording again
        lengths = _write_recording_tokens(folder, pre, recordings.reader, scans, progress=progress)
    _write_arrays(folder, pre, index, assignment, lengths)
    meta = _meta(
        settings=settings,
        key=key,
        files=recordings.files,
        subjects=sorted({sc.subject for sc in scans}),
        pre=pre,
        rows=index.rows,
        labels=index.labels,
        part=assignment.part,
        lengths=lengths,
    )
    meta["build_seconds"] = round(time.perf_counter() - started, 2)
    (folder / "meta.json").write_text(json.dumps(meta, indent=1))  # written last: marks complete


def target_values(settings: DataSettings, rec: Recording) -> np.ndarray:
    """(trials, columns) float32: a recording's targets in the columns of its source's targets
    (`source_targets`: ratings, or a category's class ids), checked to be all there."""
    columns = list(source_targets(settings.source, settings.options))
    if isinstance(rec.targets, Categories):
        names: tuple[str, ...] = tuple(columns[:1])
        values = rec.targets.values.reshape(-1, 1)
    else:
        names, values = rec.targets.names, rec.targets.values
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(rec.path, f"has no target {missing[0]!r} (its targets: {', '.join(names)})")
    return values[:, [names.index(c) for c in columns]].astype(np.float32)


def _scan(pre: Preprocessor, settings: DataSettings, rec: Recording) -> RecordingScan:
    trials = pre.prepare(rec)
    feats = pre.tokenizer.features(pre.windows(trials))
    if pre.tokenizer.kind != "band_power":  # keep only a subsample for fitting bin edges
        step = max(1, feats.shape[-1] // FIT_VALUES_PER_WINDOW)
        feats = np.ascontiguousarray(feats[..., ::step])
    ref = RecordingRef(rec.path, rec.subject, rec.session)
    return RecordingScan(
        ref=ref,
        trials=np.array([splits.trial_key(rec, i) for i in range(len(rec.trials))], np.int64),
        values=target_values(settings, rec),
        windows=pre.window_counts(trials),
        moments=signal.channel_moments(trials),
        features=feats,
    )


def _scan_all(
    settings: DataSettings, recordings: Recordings, *, progress: bool
) -> tuple[Preprocessor, list[RecordingScan]]:
    """Pass 1, recording by recording, in the order found; the preprocessor takes its
    channels from the settings, or (where only the recordings tell) from the first one."""
    pre: Preprocessor | None = None
    scans = []
    for ref in tqdm(recordings.refs, desc="scan", unit="recording", disable=not progress):
        rec = recordings.reader.read(ref)
        if pre is None:
            pre = Preprocessor(settings, channels=_recording_channels(settings, rec))
        scans.append(_scan(pre, settings, rec))
    if pre is None:
        raise DataError(settings.root, "no recordings to read")
    return pre, scans


def _recording_channels(settings: DataSettings, rec: Recording) -> tuple[str, ...] | None:
    """The channels a source without fixed ones takes: those its reader kept."""
    fixed = source_channels(settings.source, settings.options, settings.channels)
    return None if fixed is not None else rec.channels


def _index_rows(scans: list[RecordingScan], settings: DataSettings) -> RowIndex:
    kinds = source_targets(settings.source, settings.options)
    columns = tuple(kinds)
    categorical = bool(kinds[columns[0]].categories)
    rows_l, ratings_l = [], []
    trials: dict[int, list[int]] = {}
    windows, strata = {}, {}
    for sc in scans:
        s = sc.subject
        keys = trials.setdefault(s, [])
        classes = discretize(sc.values, settings.labels, columns, categorical=categorical)
        for t, w, c in zip(sc.trials.tolist(), sc.windows.tolist(), classes[:, 0], strict=True):
            keys.append(t)
            windows[(s, t)] = w
            strata[(s, t)] = int(c)
        within = np.concatenate([np.arange(w) for w in sc.windows])
        trial_of = np.repeat(sc.trials, sc.windows)
        rows_l.append(np.stack([np.full(len(within), s), trial_of, within], 1))
        ratings_l.append(np.repeat(sc.values, sc.windows, axis=0))
    ratings = np.concatenate(ratings_l)
    labels = discretize(ratings, settings.labels, columns, categorical=categorical)
    return RowIndex(
        rows=np.concatenate(rows_l).astype(np.int32),
        ratings=ratings,
        labels=labels.astype(np.int8),
        trials=trials,
        windows=windows,
        strata=strata,
    )


def _assign_parts(index: RowIndex, settings: DataSettings) -> PartAssignment:
    split = splits.make_split(settings.split, index.trials, index.windows, index.strata)
    key_of = {k: p for p in splits.PARTS for k in split[p]}
    if settings.split.protocol != "segment":
        splits.check_disjoint(split)
        part_names = [key_of[(int(s), int(t))] for s, t, _ in index.rows]
        train_trials = {(k[0], k[1]) for k, p in key_of.items() if p == "train"}
    else:  # keys are (subject, trial, window)
        part_names = [key_of[(int(s), int(t), int(w))] for s, t, w in index.rows]
        train_trials = {(s, t) for (s, t, _w) in split["train"]}
    part = np.array([PART_IDS[p] for p in part_names], np.int8)
    if not (part == 0).any():
        raise DataError(settings.root, "the split leaves no training windows")
    return PartAssignment(split=split, part=part, train_trials=train_trials)


def _take_features(scans: list[RecordingScan]) -> np.ndarray:
    """Every recording's scanned features in row order; the scans let go of theirs."""
    parts = []
    for sc in scans:
        if sc.features is None:
            raise RuntimeError(f"the features of {sc.ref.path} were already taken")
        parts.append(sc.features)
        sc.features = None
    return np.concatenate(parts)


def _fit_on_training(
    pre: Preprocessor,
    scans: list[RecordingScan],
    features: np.ndarray,
    rows: np.ndarray,
    assignment: PartAssignment,
) -> None:
    """Normalization and bin edges from the training rows only (unless asked to leak)."""
    train = assignment.part == 0
    fit = train if pre.settings.quantize.fit_on == "train" else np.ones_like(train)
    if pre.settings.quantize.fit_on != "train":
        log.warning("LEAKY: bin edges fitted on every window, test windows included")
    moments = {
        (sc.subject, int(t)): m for sc in scans for t, m in zip(sc.trials, sc.moments, strict=True)
    }
    pre.fit(moments, assignment.train_trials, features[fit], rows[fit, :2])


def _token_dtype(vocab_size: int) -> type[np.integer]:
    if vocab_size <= 256:
        return np.uint8
    return np.uint16 if vocab_size <= 65536 else np.int32


def _start_tokens_file(f: BinaryIO, pre: Preprocessor, num_rows: int) -> type[np.integer]:
    """Write the .npy header of the (rows, tokens per window) array; returns its dtype."""
    dtype = _token_dtype(pre.tokenizer.vocab_size)
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
        "fortran_order": False,
        "shape": (num_rows, pre.tokenizer.tokens_per_window),
    }
    np.lib.format.write_array_header_2_0(f, header)
    return dtype


def _write_band_power_tokens(
    folder: Path, pre: Preprocessor, scans: list[RecordingScan], features: np.ndarray
) -> np.ndarray:
    """Pass 2 for band_power, from the features of pass 1: tokens.npy (and values.npy for
    continuous inputs); returns the lengths."""
    tokenizer = pre.tokenizer
    stats = [pre.row_stats(sc.moments, sc.subject, sc.windows) for sc in scans]
    mean, std = (np.concatenate(x) for x in zip(*stats, strict=True))
    normalized = tokenizer.normalize(features, mean, std)
    ids, lengths = tokenizer.encode(normalized)
    with open(folder / "tokens.npy", "wb") as f:
        dtype = _start_tokens_file(f, pre, len(ids))
        f.write(ids.astype(dtype).tobytes())
    if pre.settings.tokenizer.continuous:
        np.save(folder / "values.npy", pre.standardize(tokenizer.values(normalized)))
    return np.asarray(lengths, np.int32)


def _write_recording_tokens(
    folder: Path,
    pre: Preprocessor,
    reader: Reader,
    scans: list[RecordingScan],
    *,
    progress: bool,
) -> np.ndarray:
    """Pass 2 for symbols/text/patch: each recording is read again and its token rows written
    straight to tokens.npy (patch: its float16 patches to patches.npy, memory-mapped when
    read); returns the lengths."""
    tokenizer = pre.tokenizer
    width = tokenizer.tokens_per_window
    lengths = np.zeros(sum(sc.num_rows for sc in scans), np.int32)
    offset = 0
    with open(folder / "tokens.npy", "wb") as f, ExitStack() as more:
        dtype = _start_tokens_file(f, pre, len(lengths))
        values: BinaryIO | None = None
        if isinstance(tokenizer, PatchTokenizer):
            values = more.enter_context(open(folder / "patches.npy", "wb"))
            shape = (len(lengths), width, tokenizer.patch)
            header = {"descr": "<f2", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_2_0(values, header)
        for sc in tqdm(scans, desc="tokenize", unit="recording", disable=not progress):
            trials = pre.prepare(reader.read(sc.ref))
            ids, lengths[offset : offset + sc.num_rows] = pre.transform(trials, sc.subject)
            padded = np.full((sc.num_rows, width), tokenizer.pad_id, dtype)
            padded[:, : ids.shape[1]] = ids
            f.write(padded.tobytes())
            if values is not None:
                values.write(pre.values(trials, sc.subject).astype("<f2").tobytes())
            offset += sc.num_rows
    return lengths


def _write_arrays(
    folder: Path,
    pre: Preprocessor,
    index: RowIndex,
    assignment: PartAssignment,
    lengths: np.ndarray,
) -> None:
    """Everything but the tokens and meta.json: per-row arrays, layout, preprocessor, split."""
    np.save(folder / "lengths.npy", lengths)
    np.save(folder / "rows.npy", index.rows)
    np.save(folder / "labels.npy", index.labels)
    np.save(folder / "ratings.npy", index.ratings)
    np.save(folder / "part.npy", assignment.part)
    lay = pre.tokenizer.layout()
    np.savez(folder / "layout.npz", channel=lay.channel, band=lay.band, time=lay.time)
    pre.save(folder)
    splits.save_split(assignment.split, folder / "splits.json")


def _part_summary(
    rows: np.ndarray, labels: np.ndarray, sel: np.ndarray, targets: list[str], num_classes: int
) -> dict[str, Any]:
    """Windows, trials, subjects and class balance of the rows `sel` (one part)."""
    return {
        "windows": int(sel.sum()),
        "trials": len({(int(s), int(t)) for s, t, _ in rows[sel]}),
        "subjects": sorted({int(s) for s in rows[sel, 0]}),
        "class_fraction": {
            tgt: [
                float((labels[sel, i] == c).mean()) if sel.any() else 0.0
                for c in range(num_classes)
            ]
            for i, tgt in enumerate(targets)
        },
    }


def _meta(
    *,
    settings: DataSettings,
    key: str,
    files: list[Path],
    subjects: list[int],
    pre: Preprocessor,
    rows: np.ndarray,
    labels: np.ndarray,
    part: np.ndarray,
    lengths: np.ndarray,
) -> dict[str, Any]:
    """meta.json: what `summary` prints and `TokenData.load` reads."""
    lab = settings.labels
    names = label_names(settings)
    parts = {
        name: _part_summary(rows, labels, part == pid, list(lab.targets), len(names))
        for name, pid in PART_IDS.items()
    }
    rule = label_rule(settings)
    tokenizer = pre.tokenizer
    return {
        "pipeline_version": PIPELINE_VERSION,
        "key": key,
        "settings": settings.model_dump(mode="json"),
        "files": [str(f) for f in files],
        "subjects": subjects,
        "num_rows": len(rows),
        "sampling_rate": settings.sampling_rate,
        "window_samples": pre.window,
        "stride_samples": pre.stride,
        "tokenizer": tokenizer.kind,
        "tokens_per_window": int(lengths.max()),
        "mean_tokens_per_window": float(lengths.mean()),
        "coverage": float(tokenizer.coverage),
        "vocab_size": int(tokenizer.vocab_size),
        "pad_id": int(tokenizer.pad_id),
        "targets": list(lab.targets),
        "num_classes": lab.num_classes,
        "class_names": names,
        "label_rule": rule,
        "split_protocol": settings.split.protocol,
        "parts": parts,
    }
