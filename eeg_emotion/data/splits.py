"""Train/val/test assignments. Every protocol except `segment` keeps each trial in one part.

A split is a dict part -> sorted list of keys: (subject, trial) pairs, or for the leaky
`segment` protocol (subject, trial, window) triples. Trials are 0-based, subjects as numbered.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from eeg_emotion.config import SplitSettings
from eeg_emotion.errors import ConfigError, DataError

log = logging.getLogger(__name__)
PARTS = ("train", "val", "test")
Key = tuple[int, ...]


def _even(n: int, k: int, phase: float) -> np.ndarray:
    """Boolean mask with exactly k of n positions set, spread evenly (Bresenham)."""
    i = np.arange(n)
    return np.floor((i + 1) * k / n + phase) - np.floor(i * k / n + phase) > 0


def _partition(keys: list[Key], strata: list[int], val: float, test: float, seed: int) -> dict:
    """Split keys into train/val/test by fraction, stratified so each part sees every class.

    Keys are sorted by stratum (random order inside each), then val and test positions are
    spread evenly through that list: exact totals, and every part gets its share of each class.
    """
    rng = np.random.default_rng(seed)
    noise = rng.random(len(keys))
    ordered = [keys[i] for i in np.lexsort((noise, np.asarray(strata)))]
    n = len(ordered)
    n_test, n_val = round(n * test), round(n * val)
    if n - n_test - n_val < 1:
        raise ConfigError(f"split fractions leave no training data out of {n} items")
    parts = np.full(n, "train", dtype=object)
    is_test = _even(n, n_test, rng.random())
    parts[is_test] = "test"
    rest = np.flatnonzero(~is_test)
    parts[rest[_even(rest.size, n_val, rng.random())]] = "val"
    out: dict[str, list[Key]] = {p: [] for p in PARTS}
    for key, part in zip(ordered, parts, strict=True):
        out[part].append(key)
    return out


def make_split(
    settings: SplitSettings,
    trials: dict[int, int],
    windows: dict[tuple[int, int], int],
    strata: dict[tuple[int, int], int],
) -> dict[str, list[Key]]:
    """Assign keys to parts. `trials`: subject -> trial count; `windows`: (s, t) -> windows;
    `strata`: (s, t) -> class used for stratification."""
    subjects = sorted(trials)
    pairs = [(s, t) for s in subjects for t in range(trials[s])]
    val, test, seed = settings.val_fraction, settings.test_fraction, settings.seed
    out: dict[str, list[Key]] = {p: [] for p in PARTS}
    proto = settings.protocol

    if proto == "trial":  # within each subject, whole trials held out
        for s in subjects:
            keys = [(s, t) for t in range(trials[s])]
            part = _partition(keys, [strata[k] for k in keys], val, test, seed * 1000 + s)
            for p in PARTS:
                out[p] += part[p]
    elif proto == "cross_trial":  # k folds over videos: the same videos held out for everyone
        videos = sorted({t for _, t in pairs})
        if settings.fold >= settings.num_folds or settings.num_folds > len(videos):
            raise ConfigError(
                f"cross_trial fold {settings.fold} of num_folds={settings.num_folds} is not "
                f"possible with {len(videos)} videos"
            )
        order = [videos[i] for i in np.random.default_rng(seed).permutation(len(videos))]
        held = set(order[settings.fold :: settings.num_folds])
        rest = [(t,) for t in videos if t not in held]
        part = _partition(rest, [0] * len(rest), val, 0.0, seed)
        where = {t: "test" for t in held} | {t: p for p in ("train", "val") for (t,) in part[p]}
        for s, t in pairs:
            out[where[t]].append((s, t))
    elif proto == "loso":  # test: one subject; val: held-out trials of the others
        if settings.fold >= len(subjects):
            raise ConfigError(
                f"data.split.fold={settings.fold} but only {len(subjects)} subjects "
                f"({subjects}); loso folds are 0..{len(subjects) - 1}"
            )
        if len(subjects) < 2:
            raise ConfigError("loso needs at least 2 subjects")
        held = subjects[settings.fold]
        out["test"] = [(held, t) for t in range(trials[held])]
        for s in subjects:
            if s == held:
                continue
            keys = [(s, t) for t in range(trials[s])]
            part = _partition(keys, [strata[k] for k in keys], val, 0.0, seed * 1000 + s)
            out["train"] += part["train"]
            out["val"] += part["val"]
    elif proto == "kfold":  # k folds over each subject's trials; fold `fold` is test
        for s in subjects:
            keys = [(s, t) for t in range(trials[s])]
            rng = np.random.default_rng(seed * 1000 + s)
            order = sorted(keys, key=lambda k: (strata[k], rng.random()))
            folds = [order[i :: settings.num_folds] for i in range(settings.num_folds)]
            rest = [k for i, f in enumerate(folds) if i != settings.fold for k in f]
            out["test"] += folds[settings.fold]
            part = _partition(rest, [strata[k] for k in rest], val, 0.0, seed * 1000 + s)
            out["train"] += part["train"]
            out["val"] += part["val"]
    elif proto == "segment":  # the original method's random split over windows: it leaks
        log.warning(
            "data.split.protocol=segment puts windows of the same trial in train and test: "
            "scores are inflated by trial leakage; use it only to reproduce the original method"
        )
        keys = [(s, t, w) for s, t in pairs for w in range(windows[(s, t)])]
        part = _partition(keys, [strata[k[:2]] for k in keys], val, test, seed)
        out = part
    else:  # pragma: no cover - settings validation rejects other names
        raise ConfigError(f"unknown split protocol {proto}")
    return {p: sorted(out[p]) for p in PARTS}


def check_disjoint(split: dict[str, list[Key]]) -> None:
    """Raise if a (subject, trial) appears in two parts (never true for `segment`)."""
    seen: dict[tuple[int, int], str] = {}
    for part in PARTS:
        for key in split[part]:
            trial = (key[0], key[1])
            if seen.get(trial, part) != part:
                raise DataError(None, f"trial {trial} is in both {seen[trial]} and {part}")
            seen[trial] = part


def save_split(split: dict[str, list[Key]], path: str | Path) -> None:
    Path(path).write_text(json.dumps({p: [list(k) for k in split[p]] for p in PARTS}))


def load_split(path: str | Path) -> dict[str, list[Key]]:
    try:
        raw = json.loads(Path(path).read_text())
        return {p: [tuple(int(v) for v in k) for k in raw[p]] for p in PARTS}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(path, f"not a valid splits.json ({exc})") from None
