"""subject_kfold: folds over whole subjects, so no subject is in two parts of any fold."""

from __future__ import annotations

import pytest

from eeg_emotion.config import SplitSettings
from eeg_emotion.data.splits import make_split
from eeg_emotion.errors import ConfigError
from tests.test_cv_checks import run_cv


def data(subjects: int, trials: int = 6) -> tuple[dict, dict, dict]:
    """`trials` per subject (subjects numbered from 1, as DEAP's), one window each, classes
    alternating: what make_split reads."""
    keys = {s: list(range(trials)) for s in range(1, subjects + 1)}
    pairs = [(s, t) for s in keys for t in keys[s]]
    return keys, dict.fromkeys(pairs, 1), {(s, t): t % 2 for s, t in pairs}


def folds(subjects: int, k: int, **split: object) -> list[dict[str, list]]:
    trials, windows, strata = data(subjects)
    return [
        make_split(
            SplitSettings(protocol="subject_kfold", num_folds=k, fold=f, **split),  # type: ignore[arg-type]
            trials,
            windows,
            strata,
        )
        for f in range(k)
    ]


def subjects_of(part: list) -> set[int]:
    return {key[0] for key in part}


@pytest.mark.parametrize(("subjects", "k", "seed"), [(8, 4, 0), (8, 4, 3), (9, 4, 1), (5, 5, 0)])
def test_every_subject_is_tested_once_and_never_in_two_parts(subjects, k, seed):
    every = set(range(1, subjects + 1))
    tested: list[int] = []
    for split in folds(subjects, k, seed=seed):
        train, val, test = (subjects_of(split[p]) for p in ("train", "val", "test"))
        assert train and val and test
        assert not train & val and not train & test and not val & test
        assert train | val | test == every
        # Whole subjects: every trial of a subject in its one part.
        assert all(
            len([k for k in split[p] if k[0] == s]) == 6
            for p in split
            for s in subjects_of(split[p])
        )
        tested += sorted(test)
    assert sorted(tested) == sorted(every)  # each subject in test exactly once over the folds
    sizes = [len(subjects_of(s["test"])) for s in folds(subjects, k, seed=seed)]
    assert max(sizes) - min(sizes) <= 1  # folds of near-equal size


def test_the_assignment_follows_the_seed():
    assert folds(8, 4, seed=5) == folds(8, 4, seed=5)
    tests = {
        seed: [sorted(subjects_of(s["test"])) for s in folds(8, 4, seed=seed)] for seed in range(4)
    }
    assert len({str(t) for t in tests.values()}) > 1  # another seed, other groups


def test_val_is_a_fraction_of_the_other_subjects():
    # 8 subjects, 4 folds: 6 others, 0.15 of them rounds to 1; 0.5 to 3.
    assert all(len(subjects_of(s["val"])) == 1 for s in folds(8, 4))
    assert all(len(subjects_of(s["val"])) == 3 for s in folds(8, 4, val_fraction=0.5))


@pytest.mark.parametrize(
    ("subjects", "k", "split", "message"),
    [
        (3, 4, {}, "num_folds=4 but there are only 3 subjects"),
        (2, 2, {}, "the train part is empty with data.split.protocol=subject_kfold"),
        (
            6,
            3,
            {"val_fraction": 0.0},
            "the val part is empty with data.split.protocol=subject_kfold",
        ),
    ],
)
def test_settings_the_subjects_cannot_satisfy_are_refused(subjects, k, split, message):
    trials, windows, strata = data(subjects)
    settings = SplitSettings(protocol="subject_kfold", num_folds=k, **split)
    with pytest.raises(ConfigError, match=message):
        make_split(settings, trials, windows, strata)


def test_a_fold_past_the_folds_is_refused_with_the_settings():
    with pytest.raises(ValueError, match="fold 2 is out of range for num_folds=2"):
        SplitSettings(protocol="subject_kfold", num_folds=2, fold=2)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--folds", "4"], "num_folds=4 but there are only 3 subjects ([1, 2, 3])"),
        # 1 test and 1 val subject leave none to train on: refused before any fold runs.
        (["--folds", "2", "data.subjects=[1,2]"], "the train part is empty"),
    ],
)
def test_cv_refuses_subject_folds_the_data_cannot_fill(capsys, tmp_path, tiny_root, argv, message):
    code, err = run_cv(capsys, tmp_path, tiny_root, "--protocol", "subject_kfold", *argv)
    assert code == 2 and "error: " in err and message in err, err
    assert not (tmp_path / "cv").exists()
