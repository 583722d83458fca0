"""DEAP files -> tokenized dataset on disk, cached by a hash of the files and every setting.

Subjects are streamed one at a time (a full DEAP file is ~100 MB), in two passes:
  1. scan: read, drop/subtract baseline, select channels, cut windows, compute per-window
     features (band_power: all of them; symbols/text: a subsample) and per-trial moments.
  -> labels, splits, normalization statistics and bin edges, all from the training split only.
  2. encode: band_power encodes the stored features; symbols/text read each subject again and
     write its token rows straight to disk.
The result is a folder of .npy files that `TokenData` memory-maps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from eeg_emotion import fileio
from eeg_emotion.config import DataSettings
from eeg_emotion.data import signal, splits
from eeg_emotion.data.labels import class_names, discretize
from eeg_emotion.data.preprocessor import Preprocessor
from eeg_emotion.data.readers import deap
from eeg_emotion.data.tokenize import Layout
from eeg_emotion.errors import DataError

log = logging.getLogger(__name__)
PIPELINE_VERSION = 3
PART_IDS = {"train": 0, "val": 1, "test": 2}
FIT_VALUES_PER_WINDOW = 16  # per channel: plenty for percentiles, small in memory


def cache_key(settings: DataSettings, files: list[Path]) -> str:
    """Hash of every setting that changes the result and of each file's name, size and mtime."""
    relevant = settings.model_dump(mode="json", exclude={"root", "cache_dir"})
    stamp = []
    for f in files:
        st = f.stat()
        stamp.append([f.name, st.st_size, st.st_mtime_ns])
    blob = json.dumps([PIPELINE_VERSION, relevant, stamp], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@dataclass
class TokenData:
    """A built dataset, memory-mapped from its cache folder."""

    path: Path
    meta: dict[str, Any]  # everything `summary` prints; the typed fields below are for code
    tokens: np.ndarray  # (rows, max_len)
    lengths: np.ndarray  # (rows,)
    rows: np.ndarray  # (rows, 3): subject, trial, window
    labels: np.ndarray  # (rows, targets)
    ratings: np.ndarray  # (rows, 4)
    part: np.ndarray  # (rows,): 0 train, 1 val, 2 test
    layout: Layout  # what each token position stands for
    split: dict[str, list[tuple[int, ...]]]
    preprocessor: Preprocessor  # fitted on the training split
    values: np.ndarray | None  # (rows, max_len) standardized token values (continuous inputs)
    targets: list[str]
    num_classes: int
    class_names: list[str]
    subjects: list[int]
    tokenizer_kind: str  # symbols, band_power or text
    pad_id: int
    vocab_size: int

    @classmethod
    def load(cls, path: str | Path) -> TokenData:
        path = Path(path)
        try:
            meta = json.loads((path / "meta.json").read_text())
            arrays = {
                n: np.load(path / f"{n}.npy", mmap_mode="r")
                for n in ("tokens", "lengths", "rows", "labels", "ratings", "part")
            }
            lay = np.load(path / "layout.npz")
            preprocessor = Preprocessor.load(path)
            values = (
                np.load(path / "values.npy", mmap_mode="r")
                if preprocessor.settings.tokenizer.continuous
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
    """Load the dataset from the cache, or build it (streaming subject by subject)."""
    subjects = deap.resolve_subjects(settings.root, settings.subjects)
    files = [deap.subject_file(settings.root, s) for s in subjects]
    key = cache_key(settings, files)
    target = Path(settings.cache_dir) / f"deap-{key}"
    if (target / "meta.json").exists():
        log.info("loading cached dataset %s", target)
        return TokenData.load(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target.parent)
    tmp = fileio.temp_dir(target.parent, f".deap-{key}-")
    try:
        _build_into(tmp, settings, subjects, files, key, progress)
        try:
            os.rename(tmp, target)  # atomic: a half-built cache is never visible
        except OSError:
            if (target / "meta.json").exists():  # another process finished first: equivalent
                shutil.rmtree(tmp, ignore_errors=True)
            else:  # a stale, incomplete folder (e.g. its meta.json was deleted): replace it
                log.warning("replacing the incomplete dataset cache %s", target)
                stale = target.with_name(f".stale-{target.name}-{os.getpid()}")
                os.rename(target, stale)
                os.rename(tmp, target)
                shutil.rmtree(stale, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return TokenData.load(target)


ABANDONED_S = 6 * 3600  # a build folder untouched this long belongs to a process that died


def _remove_abandoned(cache_dir: Path) -> None:
    """Temporary build folders of killed processes (a live build touches its folder often)."""
    now = time.time()
    for path in [*cache_dir.glob(".deap-*"), *cache_dir.glob(".stale-deap-*")]:
        try:
            if now - path.stat().st_mtime > ABANDONED_S:
                shutil.rmtree(path, ignore_errors=True)
                log.info("removed %s, left by an interrupted build", path.name)
        except OSError:
            pass


def _scan(pre: Preprocessor, path: Path, subject: int) -> dict[str, Any]:
    rec = deap.read_subject(path, subject)
    x = pre.prepare(rec.data)
    del rec.data
    feats = pre.tokenizer.features(pre.windows(x))
    if pre.tokenizer.kind != "band_power":  # keep only a subsample for fitting bin edges
        step = max(1, feats.shape[-1] // FIT_VALUES_PER_WINDOW)
        feats = np.ascontiguousarray(feats[..., ::step])
    return {
        "labels": rec.labels.astype(np.float32),
        "n_windows": pre.windows_per_trial(x.shape[-1]),
        "moments": signal.channel_moments(x),
        "feats": feats,
    }


def _build_into(
    tmp: Path,
    settings: DataSettings,
    subjects: list[int],
    files: list[Path],
    key: str,
    progress: bool,
) -> None:
    started = time.perf_counter()
    pre = Preprocessor(settings)
    tokenizer = pre.tokenizer

    # Pass 1: scan every subject.
    scans: dict[int, dict[str, Any]] = {}
    for subject, path in tqdm(
        list(zip(subjects, files, strict=True)), desc="scan", unit="subject", disable=not progress
    ):
        scans[subject] = _scan(pre, path, subject)

    # Rows in (subject, trial, window) order; labels per row.
    rows_l, ratings_l = [], []
    trials, n_windows, strata = {}, {}, {}
    for s in subjects:
        sc = scans[s]
        t_count, w_count = sc["labels"].shape[0], sc["n_windows"]
        trials[s] = t_count
        classes = discretize(sc["labels"], settings.labels)
        for t in range(t_count):
            n_windows[(s, t)] = w_count
            strata[(s, t)] = int(classes[t, 0])
        tt, ww = np.meshgrid(np.arange(t_count), np.arange(w_count), indexing="ij")
        rows_l.append(np.stack([np.full(tt.size, s), tt.ravel(), ww.ravel()], 1))
        ratings_l.append(np.repeat(sc["labels"], w_count, axis=0))
    rows = np.concatenate(rows_l).astype(np.int32)
    ratings = np.concatenate(ratings_l)
    labels = discretize(ratings, settings.labels).astype(np.int8)

    split = splits.make_split(settings.split, trials, n_windows, strata)
    key_of = {k: p for p in splits.PARTS for k in split[p]}
    if settings.split.protocol != "segment":
        splits.check_disjoint(split)
        part_names = [key_of[(int(s), int(t))] for s, t, _ in rows]
        train_trials = {k for k, p in key_of.items() if p == "train"}
    else:  # keys are (subject, trial, window)
        part_names = [key_of[(int(s), int(t), int(w))] for s, t, w in rows]
        train_trials = {(s, t) for (s, t, _w) in split["train"]}
    part = np.array([PART_IDS[p] for p in part_names], np.int8)
    if not (part == 0).any():
        raise DataError(settings.root, "the split leaves no training windows")

    # Normalization and bin edges: training rows only.
    feats = np.concatenate([scans[s].pop("feats") for s in subjects])
    moments = {s: scans[s]["moments"] for s in subjects}
    train = part == 0
    fit = train if settings.quantize.fit_on == "train" else np.ones_like(train)  # leaky: all
    if settings.quantize.fit_on != "train":
        log.warning("LEAKY: bin edges fitted on every window, test windows included")
    pre.fit(moments, train_trials, feats[fit], rows[fit, :2])

    # Pass 2: encode and write token rows.
    token_dtype = (
        np.uint8
        if tokenizer.vocab_size <= 256
        else (np.uint16 if tokenizer.vocab_size <= 65536 else np.int32)
    )
    width = tokenizer.tokens_per_window
    lengths = np.zeros(len(rows), np.int32)
    with open(tmp / "tokens.npy", "wb") as f:
        np.lib.format.write_array_header_2_0(
            f,
            {
                "descr": np.lib.format.dtype_to_descr(np.dtype(token_dtype)),
                "fortran_order": False,
                "shape": (len(rows), width),
            },
        )
        if tokenizer.kind == "band_power":  # every feature is at hand: encode them at once
            stats = [pre.row_stats(moments[s], s, scans[s]["n_windows"]) for s in subjects]
            mean, std = (np.concatenate(x) for x in zip(*stats, strict=True))
            normalized = tokenizer.normalize(feats, mean, std)
            ids, lengths[:] = tokenizer.encode(normalized)
            f.write(ids.astype(token_dtype).tobytes())
            if settings.tokenizer.continuous:
                np.save(tmp / "values.npy", pre.standardize(tokenizer.values(normalized)))
        else:
            del feats
            offset = 0
            for subject, path in tqdm(
                list(zip(subjects, files, strict=True)),
                desc="tokenize",
                unit="subject",
                disable=not progress,
            ):
                n = trials[subject] * scans[subject]["n_windows"]
                sl = slice(offset, offset + n)
                x = pre.prepare(deap.read_subject(path, subject).data)
                ids, lengths[sl] = pre.transform(x, subject)
                padded = np.full((n, width), tokenizer.pad_id, token_dtype)
                padded[:, : ids.shape[1]] = ids
                f.write(padded.tobytes())
                offset += n

    np.save(tmp / "lengths.npy", lengths)
    np.save(tmp / "rows.npy", rows)
    np.save(tmp / "labels.npy", labels)
    np.save(tmp / "ratings.npy", ratings)
    np.save(tmp / "part.npy", part)
    lay = tokenizer.layout()
    np.savez(tmp / "layout.npz", channel=lay.channel, band=lay.band, time=lay.time)
    pre.save(tmp)
    splits.save_split(split, tmp / "splits.json")

    meta = _meta(
        settings,
        subjects,
        files,
        key,
        tokenizer,
        rows,
        labels,
        lengths,
        part,
        split,
        pre.window,
        pre.stride,
    )
    meta["build_seconds"] = round(time.perf_counter() - started, 2)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))  # written last: marks complete


def _meta(
    settings, subjects, files, key, tokenizer, rows, labels, lengths, part, split, window, stride
) -> dict:
    names = class_names(settings.labels.num_classes)
    parts = {}
    for name, pid in PART_IDS.items():
        sel = part == pid
        parts[name] = {
            "windows": int(sel.sum()),
            "trials": len({(int(s), int(t)) for s, t, _ in rows[sel]}),
            "subjects": sorted({int(s) for s in rows[sel, 0]}),
            "class_fraction": {
                tgt: [
                    float((labels[sel, i] == c).mean()) if sel.any() else 0.0
                    for c in range(len(names))
                ]
                for i, tgt in enumerate(settings.labels.targets)
            },
        }
    lab = settings.labels
    rule = (
        f"high if rating {lab.high_if} {lab.threshold}"
        if lab.num_classes == 2
        else f"cuts at {lab.cuts[0]} and {lab.cuts[1]} (class up when rating {lab.high_if} cut)"
    )
    return {
        "pipeline_version": PIPELINE_VERSION,
        "key": key,
        "settings": settings.model_dump(mode="json"),
        "files": [str(f) for f in files],
        "subjects": subjects,
        "num_rows": len(rows),
        "sampling_rate": settings.sampling_rate,
        "window_samples": window,
        "stride_samples": stride,
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
