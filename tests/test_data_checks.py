"""Impossible data settings are refused up front with one message, and nothing is written."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from eeg_emotion.data import pipeline, stages
from eeg_emotion.data.deap_pickle import write_subject
from eeg_emotion.data.preprocessor import Preprocessor
from eeg_emotion.data.readers import RecordingRef, deap
from eeg_emotion.data.synthetic import SyntheticSpec, synthesize
from eeg_emotion.errors import ConfigError, DataError
from tests.helpers.paths import data_settings

SMALL = SyntheticSpec(subjects=3, trials=2, samples=640, seed=0)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def checksums(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def refused(root: Path, tmp_path: Path, monkeypatch, *overrides: str, error=ConfigError):
    """Build with `overrides`; the exception, checked to leave the cache folder as it was and
    to come before any token is written."""

    def no_tokens(*args, **kwargs):
        raise AssertionError("tokens were written before the refusal")

    monkeypatch.setattr(stages, "_start_tokens_file", no_tokens)
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    before = listing(cache)
    with pytest.raises(error) as info:
        pipeline.build(data_settings(root, cache, *overrides), progress=False)
    assert listing(cache) == before == []
    return info.value


# tiny: 3 subjects x 12 trials of 13 s, 10 s (1280 samples) once the 3 s baseline is dropped.
SPLIT_CASES = {
    "kfold-more-folds-than-trials": (
        ["data.split.protocol=kfold", "data.split.num_folds=13"],
        ["num_folds=13", "subject 1 has only 12 trials", "at most num_folds=12"],
    ),
    "cross-trial-more-folds-than-videos": (
        ["data.split.protocol=cross_trial", "data.split.num_folds=13"],
        ["num_folds=13", "only 12 videos"],
    ),
    "cross-trial-fold-out-of-range": (
        ["data.split.protocol=cross_trial", "data.split.num_folds=3", "data.split.fold=3"],
        ["fold=3 is out of range for data.split.num_folds=3", "0..2"],
    ),
    "loso-fold-out-of-range": (
        ["data.split.protocol=loso", "data.split.num_folds=3", "data.split.fold=3"],
        ["fold=3 but only 3 subjects"],
    ),
    "kfold-fold-out-of-range": (
        ["data.split.protocol=kfold", "data.split.num_folds=3", "data.split.fold=3"],
        ["fold 3 is out of range for num_folds=3"],
    ),
    "trial-empty-val": (
        ["data.split.val_fraction=0.04"],
        ["val part is empty", "protocol=trial", "val_fraction=0.04", "3 subjects x 12 trials"],
    ),
    "trial-empty-test": (
        ["data.split.test_fraction=0.04"],
        ["test part is empty", "test_fraction=0.04", "3 subjects x 12 trials"],
    ),
    "kfold-empty-val": (
        ["data.split.protocol=kfold", "data.split.num_folds=12", "data.split.val_fraction=0.04"],
        ["val part is empty", "protocol=kfold", "num_folds=12", "val_fraction=0.04"],
    ),
    "trial-empty-train": (
        ["data.split.val_fraction=0.49", "data.split.test_fraction=0.49"],
        ["val_fraction=0.49", "test_fraction=0.49", "no training data out of 12"],
    ),
}


@pytest.mark.parametrize("case", list(SPLIT_CASES))
def test_impossible_splits_are_refused_before_any_token(tiny_root, tmp_path, monkeypatch, case):
    overrides, fragments = SPLIT_CASES[case]
    message = str(refused(tiny_root, tmp_path, monkeypatch, *overrides))
    for fragment in fragments:
        assert fragment in message


def test_the_same_splits_within_bounds_still_build(tiny_root, tmp_path):
    """The largest settings each check allows are not refused."""
    for overrides in (
        ["data.split.protocol=kfold", "data.split.num_folds=12", "data.split.fold=11"],
        ["data.split.protocol=loso", "data.split.num_folds=3", "data.split.fold=2"],
        ["data.split.protocol=loso", "data.split.fold=2"],  # num_folds left at its default
        ["data.split.protocol=cross_trial", "data.split.num_folds=12", "data.split.fold=11"],
    ):
        data = pipeline.build(data_settings(tiny_root, tmp_path, *overrides), progress=False)
        assert all(len(data.split[p]) > 0 for p in ("train", "val", "test")), overrides


def test_a_window_longer_than_the_trials_is_refused_naming_the_file(
    tiny_root, tmp_path, monkeypatch
):
    error = refused(
        tiny_root,
        tmp_path,
        monkeypatch,
        "data.window=11s",
        "data.stride=1s",
        "data.tokenizer.max_tokens=4096",
        error=DataError,
    )
    assert error.path == tiny_root / "s01.dat"
    message = str(error)
    for fragment in ("1280 samples (10 s)", "data.baseline=drop of 3 s", "1664 samples recorded"):
        assert fragment in message
    assert "data.window='11s' (1408 samples, 11 s)" in message


def test_a_file_with_shorter_trials_is_refused_naming_it(tiny_root, tmp_path, monkeypatch):
    root = tmp_path / "deap"
    root.mkdir()
    shutil.copy(tiny_root / "s01.dat", root / "s01.dat")
    # 600 samples: 216 (1.6875 s) once the baseline is dropped, under one 2 s window.
    rng = np.random.default_rng(0)
    write_subject(root / "s02.dat", rng.normal(0, 10, (4, 40, 600)), np.full((4, 4), 5.0))
    error = refused(root, tmp_path, monkeypatch, error=DataError)
    assert error.path == root / "s02.dat"
    assert "216 samples (1.6875 s)" in str(error) and "(256 samples, 2 s)" in str(error)

    # predict reads a new recording through a preprocessor fitted elsewhere: the same refusal.
    pre = Preprocessor(data_settings(tiny_root, tmp_path))
    reader = deap.DeapReader(pre.settings.reader_options())
    with pytest.raises(DataError, match=r"s02\.dat: trials have 216 samples"):
        pre.prepare(reader.read(RecordingRef(root / "s02.dat", 2)))
    assert np.shape(pre.prepare(reader.read(RecordingRef(root / "s01.dat", 1)))) == (12, 32, 1280)


def test_synthesize_refuses_a_folder_with_deap_files(tmp_path):
    folder = tmp_path / "deap"
    synthesize(folder, SMALL)
    (folder / "notes.txt").write_text("kept")
    before = checksums(folder)
    with pytest.raises(DataError) as info:
        synthesize(folder, SyntheticSpec(subjects=2, trials=2, samples=640, seed=1))
    message = str(info.value)
    assert str(folder) in message and "3 DEAP files" in message and "--overwrite" in message
    assert checksums(folder) == before  # nothing replaced, nothing left behind
    assert sorted(before) == ["notes.txt", "s01.dat", "s02.dat", "s03.dat"]


def test_synthesize_overwrite_leaves_exactly_the_new_set(tmp_path):
    folder, fresh = tmp_path / "deap", tmp_path / "fresh"
    synthesize(folder, SMALL)
    (folder / "notes.txt").write_text("kept")
    new = SyntheticSpec(subjects=2, trials=2, samples=640, seed=1)
    paths = synthesize(folder, new, overwrite=True)
    assert paths == [folder / "s01.dat", folder / "s02.dat"]
    # Only the new set's files (s03.dat of the old one is gone) and the unrelated file remain.
    assert listing(folder) == ["notes.txt", "s01.dat", "s02.dat"]
    synthesize(fresh, new)
    expected = checksums(fresh)
    assert {k: v for k, v in checksums(folder).items() if k != "notes.txt"} == expected
