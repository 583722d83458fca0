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
from eeg_emotion.data import deap, preprocess, splits
from eeg_emotion.data.channels import select_channels
from eeg_emotion.data.labels import class_names, discretize
from eeg_emotion.data.tokenize import Layout, Tokenizer, build_tokenizer
from eeg_emotion.errors import DataError

log = logging.getLogger(__name__)
PIPELINE_VERSION = 2
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
    meta: dict[str, Any]
    tokens: np.ndarray  # (rows, max_len)
    lengths: np.ndarray  # (rows,)
    rows: np.ndarray  # (rows, 3): subject, trial, window
    labels: np.ndarray  # (rows, targets)
    ratings: np.ndarray  # (rows, 4)
    part: np.ndarray  # (rows,): 0 train, 1 val, 2 test
    layout: Layout
    split: dict[str, list[tuple[int, ...]]]

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
        except (OSError, ValueError) as exc:
            raise DataError(
                path, f"incomplete or corrupt dataset cache ({exc}); delete it"
            ) from None
        layout = Layout(lay["channel"], lay["band"], lay["time"])
        return cls(
            path, meta, layout=layout, split=splits.load_split(path / "splits.json"), **arrays
        )

    @property
    def pad_id(self) -> int:
        return int(self.meta["pad_id"])

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def targets(self) -> list[str]:
        return list(self.meta["targets"])

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


def geometry(settings: DataSettings) -> tuple[int, int, int]:
    """(window, stride) in samples and the number of selected channels."""
    fs = settings.sampling_rate
    window = preprocess.parse_duration(settings.window, fs, "data.window")
    stride = preprocess.parse_duration(settings.stride, fs, "data.stride")
    return window, stride, len(select_channels(settings.channels))


def _scan(settings: DataSettings, tokenizer: Tokenizer, path: Path, subject: int) -> dict[str, Any]:
    window, stride, _ = geometry(settings)
    rec = deap.read_subject(path, subject)
    x = preprocess.prepare(rec.data, settings)
    del rec.data
    starts = preprocess.window_starts(x.shape[-1], window, stride)
    win = preprocess.windows(x, window, stride)
    t, n_win = win.shape[:2]
    feats = tokenizer.features(win.reshape(t * n_win, *win.shape[2:]))
    if tokenizer.kind != "band_power":  # keep only a subsample for fitting bin edges
        step = max(1, feats.shape[-1] // FIT_VALUES_PER_WINDOW)
        feats = np.ascontiguousarray(feats[..., ::step])
    return {
        "labels": rec.labels.astype(np.float32),
        "n_windows": len(starts),
        "moments": preprocess.channel_moments(x),
        "feats": feats,
    }


def _encode_subject(settings, tokenizer, path, subject, mean, std) -> tuple[np.ndarray, np.ndarray]:
    window, stride, _ = geometry(settings)
    x = preprocess.prepare(deap.read_subject(path, subject).data, settings)
    win = preprocess.windows(x, window, stride)
    feats = tokenizer.features(win.reshape(-1, *win.shape[2:]))
    return tokenizer.encode(tokenizer.normalize(feats, mean, std))


def _row_stats(settings, scans, subjects, split_of_trial) -> tuple[np.ndarray, np.ndarray]:
    """Per-row normalization mean/std, from training data only where it is shared."""
    if settings.normalize == "trial":  # each trial by itself: nothing crosses trials
        per_trial = [preprocess.moments_to_stats(scans[s]["moments"]) for s in subjects]
        means = [
            np.repeat(m, scans[s]["n_windows"], 0)
            for (m, _), s in zip(per_trial, subjects, strict=True)
        ]
        stds = [
            np.repeat(v, scans[s]["n_windows"], 0)
            for (_, v), s in zip(per_trial, subjects, strict=True)
        ]
        return np.concatenate(means), np.concatenate(stds)
    n_ch = scans[subjects[0]]["moments"].shape[1]
    if settings.normalize == "none":
        n = sum(scans[s]["moments"].shape[0] * scans[s]["n_windows"] for s in subjects)
        return np.zeros((n, n_ch), np.float32), np.ones((n, n_ch), np.float32)
    # subject: per-channel statistics of the subject's training trials; a subject with none
    # (held out by loso) gets the pooled training statistics instead of its own test data.
    train_mom = {s: np.zeros((n_ch, 3)) for s in subjects}
    for s in subjects:
        for t in range(scans[s]["moments"].shape[0]):
            if split_of_trial.get((s, t)) == "train":
                train_mom[s] += scans[s]["moments"][t]
    pooled = sum(train_mom.values())
    means, stds = [], []
    for s in subjects:
        mom = train_mom[s] if train_mom[s][0, 0] > 0 else pooled
        mean, std = preprocess.moments_to_stats(mom)
        rows = scans[s]["moments"].shape[0] * scans[s]["n_windows"]
        means.append(np.tile(mean, (rows, 1)))
        stds.append(np.tile(std, (rows, 1)))
    return np.concatenate(means), np.concatenate(stds)


def _build_into(
    tmp: Path,
    settings: DataSettings,
    subjects: list[int],
    files: list[Path],
    key: str,
    progress: bool,
) -> None:
    started = time.perf_counter()
    window, stride, n_ch = geometry(settings)
    tokenizer = build_tokenizer(settings, n_ch, window)

    # Pass 1: scan every subject.
    scans: dict[int, dict[str, Any]] = {}
    for subject, path in tqdm(
        list(zip(subjects, files, strict=True)), desc="scan", unit="subject", disable=not progress
    ):
        scans[subject] = _scan(settings, tokenizer, path, subject)

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
        split_of_trial = key_of
    else:  # keys are (subject, trial, window)
        part_names = [key_of[(int(s), int(t), int(w))] for s, t, w in rows]
        split_of_trial = {(s, t): "train" for (s, t, _w) in split["train"]}
    part = np.array([PART_IDS[p] for p in part_names], np.int8)
    if not (part == 0).any():
        raise DataError(settings.root, "the split leaves no training windows")

    # Normalization and bin edges: training rows only.
    mean, std = _row_stats(settings, scans, subjects, split_of_trial)
    pooled = sum(
        scans[s]["moments"][t]
        for s in subjects
        for t in range(trials[s])
        if split_of_trial.get((s, t)) == "train"
    )
    np.save(tmp / "train_norm.npy", np.stack(preprocess.moments_to_stats(pooled)))
    feats = np.concatenate([scans[s].pop("feats") for s in subjects])
    train = part == 0
    tokenizer.fit(tokenizer.normalize(feats[train], mean[train], std[train]))

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
        if tokenizer.kind == "band_power":
            ids, lengths[:] = tokenizer.encode(tokenizer.normalize(feats, mean, std))
            f.write(ids.astype(token_dtype).tobytes())
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
                ids, lengths[sl] = _encode_subject(
                    settings, tokenizer, path, subject, mean[sl], std[sl]
                )
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
    edges = tokenizer.state()["edges"]
    np.save(tmp / "edges.npy", edges)
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
        window,
        stride,
    )
    meta["build_seconds"] = round(time.perf_counter() - started, 2)
    (tmp / "meta.json").write_text(json.dumps(meta, indent=1))  # written last: marks complete


def _meta(
    settings, subjects, files, key, tokenizer, rows, labels, lengths, part, split, window, stride
) -> dict:
    names = class_names(settings.labels)
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
