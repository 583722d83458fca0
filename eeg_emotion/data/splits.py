"""Train/val/test assignments. Every protocol except `segment` keeps each trial in one part.

A split is a dict part -> sorted list of keys: (subject, trial) pairs, or for the leaky
`segment` protocol (subject, trial, window) triples. Subjects are as numbered; a trial is its
key `trial_key`: (session - 1) * SESSION_STRIDE + (its number in the dataset - 1), so DEAP's
trials (one session) are 0-based and a subject's sessions never share a key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eeg_emotion import fileio
from eeg_emotion.config import SplitSettings
from eeg_emotion.errors import ConfigError, DataError

if TYPE_CHECKING:
    from eeg_emotion.data.readers.recording import Recording

log = logging.getLogger(__name__)
PARTS = ("train", "val", "test")
Key = tuple[int, ...]
SESSION_STRIDE = 1000  # trial keys per session: trial numbers 1..1000, sessions 1..99


def trial_key(recording: Recording, index: int) -> int:
    """The key of a recording's trial `index`: its session and its number in the dataset."""
    session, number = recording.session, recording.trial_numbers[index]
    if not 1 <= session < 100 or not 1 <= number <= SESSION_STRIDE:
        raise DataError(
            recording.path,
            f"session {session}, trial {number}: trial keys hold sessions 1..99 and trials "
            f"1..{SESSION_STRIDE}",
        )
    return (session - 1) * SESSION_STRIDE + number - 1


def session_of(key: int) -> int:
    """The session a trial key belongs to."""
    return key // SESSION_STRIDE + 1


def _even(n: int, k: int, phase: float) -> np.ndarray:
    """Boolean mask with exactly k of n positions set, spread evenly (Bresenham)."""
    i = np.arange(n)
    return np.floor((i + 1) * k / n + phase) - np.floor(i * k / n + phase) > 0


def _partition(
    keys: Sequence[Key], strata: list[int], val: float, test: float, seed: int
) -> dict[str, list[Key]]:
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
        raise ConfigError(
            f"data.split.val_fraction={val} and test_fraction={test} leave no training data "
            f"out of {n} items"
        )
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
    trials: dict[int, list[int]],
    windows: dict[tuple[int, int], int],
    strata: dict[tuple[int, int], int],
) -> dict[str, list[Key]]:
    """Assign keys to parts. `trials`: subject -> its trial keys; `windows`: (s, t) -> windows;
    `strata`: (s, t) -> class used for stratification. Settings the data cannot satisfy (more
    folds than subjects, trials, videos or sessions; a part left empty) raise ConfigError."""
    _check_folds(settings, trials)
    proto = settings.protocol
    if proto == "trial":
        out = _trial_split(settings, trials, strata)
    elif proto == "cross_trial":
        out = _cross_trial_split(settings, trials)
    elif proto == "loso":
        out = _loso_split(settings, trials, strata)
    elif proto == "kfold":
        out = _kfold_split(settings, trials, strata)
    elif proto == "subject_kfold":
        out = _subject_kfold_split(settings, trials)
    elif proto == "cross_session":
        out = _cross_session_split(settings, trials, strata)
    elif proto == "segment":
        out = _segment_split(settings, trials, windows, strata)
    else:  # pragma: no cover - settings validation rejects other names
        raise ConfigError(f"unknown split protocol {proto}")
    _check_parts(settings, out, trials)
    return {p: sorted(out[p]) for p in PARTS}


def sessions(trials: dict[int, list[int]]) -> list[int]:
    """Every session the trial keys hold, in order."""
    return sorted({session_of(t) for keys in trials.values() for t in keys})


def _check_folds(settings: SplitSettings, trials: dict[int, list[int]]) -> None:
    """Refuse fold settings that leave a fold without test data, before any part is made.

    kfold folds each subject's trials, cross_trial the videos (trial keys shared by every
    subject), subject_kfold and loso the subjects, cross_session the sessions. loso's and
    cross_session's folds are their subjects and sessions, so their splits read only `fold` (the
    cross-validation command checks loso's fold count against the subjects).
    """
    proto, k, fold = settings.protocol, settings.num_folds, settings.fold
    if proto in ("trial", "segment"):
        return
    if proto == "cross_session":
        held = sessions(trials)
        if len(held) < 2:
            raise ConfigError(
                f"data.split.protocol=cross_session needs recordings of at least 2 sessions; "
                f"these are all of session {held[0]}"
            )
        if fold >= len(held):
            raise ConfigError(
                f"data.split.fold={fold} but only {len(held)} sessions ({held}); cross_session "
                f"folds are 0..{len(held) - 1}"
            )
        return
    if proto == "loso":
        subjects = sorted(trials)
        if len(subjects) < 2:
            raise ConfigError(f"loso needs at least 2 subjects, found {len(subjects)}")
        if fold >= len(subjects):
            raise ConfigError(
                f"data.split.fold={fold} but only {len(subjects)} subjects ({subjects}); "
                f"loso folds are 0..{len(subjects) - 1}"
            )
    elif proto == "kfold":
        fewest = min(trials, key=lambda s: (len(trials[s]), s))
        n = len(trials[fewest])
        if k > n:
            raise ConfigError(
                f"data.split.num_folds={k} but subject {fewest} has only {n} "
                f"trials: kfold splits each subject's trials into folds, so some folds would "
                f"have no test trials; use at most num_folds={n}"
            )
    elif proto == "subject_kfold":
        subjects = sorted(trials)
        if k > len(subjects):
            raise ConfigError(
                f"data.split.num_folds={k} but there are only {len(subjects)} subjects "
                f"({subjects}): subject_kfold puts whole subjects in its folds, so some folds "
                f"would have no test subjects; use at most num_folds={len(subjects)}"
            )
    elif proto == "cross_trial":
        videos = len({t for keys in trials.values() for t in keys})
        if k > videos:
            raise ConfigError(
                f"data.split.num_folds={k} but there are only {videos} videos (trial numbers "
                f"shared by the subjects): cross_trial folds over videos, so some folds would "
                f"have no test trials; use at most num_folds={videos}"
            )
    if fold >= k and proto != "loso":
        raise ConfigError(
            f"data.split.fold={fold} is out of range for data.split.num_folds={k} "
            f"(folds are 0..{k - 1})"
        )


def _check_parts(
    settings: SplitSettings, out: dict[str, list[Key]], trials: dict[int, list[int]]
) -> None:
    """Every part must hold data: an empty one fails training late (no test rows) or never
    selects a model (no val rows)."""
    empty = [p for p in PARTS if not out[p]]
    if not empty:
        return
    given = {
        "trial": ("val_fraction", "test_fraction"),
        "segment": ("val_fraction", "test_fraction"),
        "kfold": ("num_folds", "fold", "val_fraction"),
        "subject_kfold": ("num_folds", "fold", "val_fraction"),
        "cross_trial": ("num_folds", "fold", "val_fraction"),
        "loso": ("fold", "val_fraction"),
        "cross_session": ("fold", "val_fraction"),
    }[settings.protocol]
    named = ", ".join(f"{name}={getattr(settings, name)}" for name in given)
    counts = sorted({len(keys) for keys in trials.values()})
    per_subject = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    which = " and ".join(empty) + (" parts are" if len(empty) > 1 else " part is")
    raise ConfigError(
        f"the {which} empty with data.split.protocol={settings.protocol}, {named} on "
        f"{len(trials)} subjects x {per_subject} trials; change data.split so that every part "
        "gets some data"
    )


def _trial_keys(trials: dict[int, list[int]], subject: int) -> list[tuple[int, int]]:
    return [(subject, t) for t in trials[subject]]


def _add_train_val(
    out: dict[str, list[Key]],
    keys: Sequence[tuple[int, int]],
    *,
    settings: SplitSettings,
    strata: dict[tuple[int, int], int],
    subject: int,
) -> None:
    """Add `subject`'s `keys` to train and val of `out`, val drawn stratified with the subject's
    own seed."""
    seed = settings.seed * 1000 + subject
    part = _partition(keys, [strata[k] for k in keys], settings.val_fraction, 0.0, seed)
    out["train"] += part["train"]
    out["val"] += part["val"]


def _trial_split(
    settings: SplitSettings, trials: dict[int, list[int]], strata: dict[tuple[int, int], int]
) -> dict[str, list[Key]]:
    """Within each subject, whole trials held out."""
    out: dict[str, list[Key]] = {p: [] for p in PARTS}
    val, test, seed = settings.val_fraction, settings.test_fraction, settings.seed
    for s in sorted(trials):
        keys = _trial_keys(trials, s)
        part = _partition(keys, [strata[k] for k in keys], val, test, seed * 1000 + s)
        for p in PARTS:
            out[p] += part[p]
    return out


def _cross_trial_split(
    settings: SplitSettings, trials: dict[int, list[int]]
) -> dict[str, list[Key]]:
    """k folds over videos: the same videos held out for everyone."""
    pairs = [k for s in sorted(trials) for k in _trial_keys(trials, s)]
    videos = sorted({t for _, t in pairs})
    order = [videos[i] for i in np.random.default_rng(settings.seed).permutation(len(videos))]
    held = set(order[settings.fold :: settings.num_folds])
    rest: list[Key] = [(t,) for t in videos if t not in held]
    part = _partition(rest, [0] * len(rest), settings.val_fraction, 0.0, settings.seed)
    where = {t: "test" for t in held} | {t: p for p in ("train", "val") for (t,) in part[p]}
    out: dict[str, list[Key]] = {p: [] for p in PARTS}
    for s, t in pairs:
        out[where[t]].append((s, t))
    return out


def _loso_split(
    settings: SplitSettings, trials: dict[int, list[int]], strata: dict[tuple[int, int], int]
) -> dict[str, list[Key]]:
    """Test: one subject; val: held-out trials of the others."""
    subjects = sorted(trials)
    held = subjects[settings.fold]
    out: dict[str, list[Key]] = {p: [] for p in PARTS}
    out["test"] += _trial_keys(trials, held)
    for s in subjects:
        if s == held:
            continue
        _add_train_val(out, _trial_keys(trials, s), settings=settings, strata=strata, subject=s)
    return out


def _cross_session_split(
    settings: SplitSettings, trials: dict[int, list[int]], strata: dict[tuple[int, int], int]
) -> dict[str, list[Key]]:
    """Test: session `fold` (in session order) of every subject; train and val: the subjects'
    other sessions, val drawn from each subject's trials there. One model for all subjects."""
    held = sessions(trials)[settings.fold]
    out: dict[str, list[Key]] = {p: [] for p in PARTS}
    for s in sorted(trials):
        keys = _trial_keys(trials, s)
        out["test"] += [k for k in keys if session_of(k[1]) == held]
        rest = [k for k in keys if session_of(k[1]) != held]
        if rest:
            _add_train_val(out, rest, settings=settings, strata=strata, subject=s)
    return out


def _kfold_split(
    settings: SplitSettings, trials: dict[int, list[int]], strata: dict[tuple[int, int], int]
) -> dict[str, list[Key]]:
    """k folds over each subject's trials; fold `fold` is test."""
    out: dict[str, list[Key]] = {p: [] for p in PARTS}
    k = settings.num_folds
    for s in sorted(trials):
        seed = settings.seed * 1000 + s
        rng = np.random.default_rng(seed)
        order = sorted(_trial_keys(trials, s), key=lambda key: (strata[key], rng.random()))
        folds = [order[i::k] for i in range(k)]
        rest = [key for i, f in enumerate(folds) if i != settings.fold for key in f]
        out["test"] += folds[settings.fold]
        _add_train_val(out, rest, settings=settings, strata=strata, subject=s)
    return out


def _subject_kfold_split(
    settings: SplitSettings, trials: dict[int, list[int]]
) -> dict[str, list[Key]]:
    """k folds over the subjects; fold `fold`'s subjects are test, a val_fraction of the other
    subjects (at least one, when val_fraction > 0) val, the rest train: no subject in two parts,
    so a model cannot score by knowing who the subject is."""
    subjects = sorted(trials)
    k = settings.num_folds
    order = [subjects[i] for i in np.random.default_rng(settings.seed).permutation(len(subjects))]
    held = order[settings.fold :: k]
    rest = [s for s in order if s not in held]  # in the seeded order: its head is val
    n_val = round(len(rest) * settings.val_fraction)
    if settings.val_fraction > 0:
        n_val = max(n_val, 1)  # a small subject pool still gets a val subject to select on
    parts = {"test": held, "val": rest[:n_val], "train": rest[n_val:]}
    return {p: [key for s in sorted(parts[p]) for key in _trial_keys(trials, s)] for p in PARTS}


def _segment_split(
    settings: SplitSettings,
    trials: dict[int, list[int]],
    windows: dict[tuple[int, int], int],
    strata: dict[tuple[int, int], int],
) -> dict[str, list[Key]]:
    """The original method's random split over windows: it leaks."""
    log.warning(
        "data.split.protocol=segment puts windows of the same trial in train and test: "
        "scores are inflated by trial leakage; use it only to reproduce the original method"
    )
    pairs = [(s, t) for s in sorted(trials) for t in trials[s]]
    keys: list[Key] = [(s, t, w) for s, t in pairs for w in range(windows[(s, t)])]
    return _partition(
        keys,
        [strata[(k[0], k[1])] for k in keys],
        settings.val_fraction,
        settings.test_fraction,
        settings.seed,
    )


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
        raw = fileio.load_json(Path(path))
        return {p: [tuple(int(v) for v in k) for k in raw[p]] for p in PARTS}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(path, f"not a valid splits.json ({exc})") from None
