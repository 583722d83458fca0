"""Metrics on hand-made cases: balanced accuracy, majority baseline, trial aggregation, CIs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from eeg_emotion.evaluation import tables
from eeg_emotion.evaluation.metrics import (
    balanced_accuracy,
    split_metrics,
    subject_majorities,
    trial_level,
    uncertainty,
)
from eeg_emotion.evaluation.scoring import Majorities, Predictions, score


def test_split_metrics_hand_made():
    labels = np.array([[0, 1], [0, 1], [1, 1], [1, 0]])
    preds = np.array([[0, 1], [1, 1], [1, 1], [1, 1]])
    m = split_metrics(labels, preds, ["valence", "arousal"], 2, majority=[0, 1])
    assert m["valence"]["accuracy"] == 0.75
    assert m["valence"]["balanced_accuracy"] == (0.5 + 1.0) / 2
    assert m["valence"]["majority_baseline"] == 0.5  # class 0 is the training majority
    assert m["arousal"]["balanced_accuracy"] == (0.0 + 1.0) / 2
    assert m["arousal"]["majority_baseline"] == 0.75
    assert m["valence"]["confusion_matrix"] == [[1, 1], [0, 2]]
    assert m["overall"]["accuracy"] == 0.5  # rows 0 and 2 have both targets right
    assert m["valence"]["macro_f1"] == np.mean([2 / 3, 0.8])
    assert (
        balanced_accuracy(np.array([2, 2, 0]), np.array([2, 0, 0]), 3) == 0.75
    )  # absent class 1 ignored


@pytest.mark.parametrize("num_classes", [2, 3, 4])
def test_confusion_and_macro_f1_are_scikit_learns(num_classes):
    """The numpy confusion matrix and macro-F1 give scikit-learn's numbers to the bit, classes
    never predicted or never true included."""
    from sklearn.metrics import confusion_matrix, f1_score

    rng = np.random.default_rng(num_classes)
    for n in (1, 7, 50, 333):
        y_true = rng.integers(0, num_classes - 1 if n == 7 else num_classes, n)
        y_pred = rng.integers(0, num_classes, n)
        y_pred[: n // 3] = y_true[: n // 3]
        got = split_metrics(y_true[:, None], y_pred[:, None], ["t"], num_classes, [0])["t"]
        labels = list(range(num_classes))
        assert got["confusion_matrix"] == confusion_matrix(y_true, y_pred, labels=labels).tolist()
        expected = f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        assert got["macro_f1"] == float(expected), (n, got["macro_f1"], expected)


def test_trial_level_averages_probabilities_over_windows():
    probs = np.array([[[0.9, 0.1]], [[0.2, 0.8]], [[0.3, 0.7]], [[0.4, 0.6]]])
    labels = np.array([[0], [0], [1], [1]])
    rows = np.array([[1, 0, 0], [1, 0, 1], [1, 3, 0], [2, 0, 0]])
    p, y, keys = trial_level(probs, labels, rows)
    assert keys.tolist() == [[1, 0], [1, 3], [2, 0]]
    np.testing.assert_allclose(p[0, 0], [0.55, 0.45])
    assert y[:, 0].tolist() == [0, 1, 1]


def test_bootstrap_resamples_trials_not_windows():
    # 6 trials x 20 windows; every window of a trial gets the same (right or wrong) prediction.
    y = np.repeat([0, 1, 0, 1, 0, 1], 20)
    pred = np.repeat([0, 1, 1, 0, 0, 1], 20)
    groups = np.repeat(np.arange(6), 20)
    u = uncertainty(y, pred, groups, 2, majority=0, rows_are_trials=False, seed=0)
    lo, hi = u["balanced_accuracy_ci95"]
    assert hi - lo > 0.4  # 6 trials say little; 120 "independent" windows would claim far more
    rng = np.random.default_rng(0)
    naive = [
        balanced_accuracy(y[i], pred[i], 2)
        for i in (rng.integers(0, 120, 120) for _ in range(1000))
    ]
    assert np.percentile(naive, 97.5) - np.percentile(naive, 2.5) < (hi - lo) / 2
    assert u["trials"] == 6 and "p_value_accuracy_vs_majority" not in u  # no binomial on windows


def test_p_values_separate_skill_from_chance():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    good = uncertainty(y, y.copy(), np.arange(60), 2, majority=0, rows_are_trials=True, seed=0)
    assert (
        good["p_value_balanced_accuracy_vs_chance"] < 0.01
        and good["p_value_accuracy_vs_majority"] < 0.01
    )
    random = uncertainty(
        y, rng.integers(0, 2, 60), np.arange(60), 2, majority=0, rows_are_trials=True, seed=0
    )
    assert random["p_value_balanced_accuracy_vs_chance"] > 0.05


def test_full_report_has_window_trial_and_subject_levels():
    rng = np.random.default_rng(2)
    rows = np.array([[s, t, w] for s in (1, 2) for t in range(8) for w in range(3)])
    labels = np.repeat(rng.integers(0, 2, (16, 2)), 3, axis=0)
    probs = rng.dirichlet([1, 1], size=(len(rows), 2))
    pred = Predictions(probs, labels, rows)
    r = score(pred, ["valence", "arousal"], 2, Majorities([0, 1], {}))
    assert r["valence"]["support"] == 48 and r["trial_level"]["valence"]["support"] == 16
    assert "p_value_accuracy_vs_majority" in r["trial_level"]["valence"]
    assert set(r["per_subject"]) == {"1", "2"} and r["per_subject"]["1"]["arousal"]["trials"] == 8


def test_subject_majority_baseline_needs_no_eeg():
    # Subject 1 rates everything high, subject 2 everything low: predicting the subject's own
    # training majority is perfect, the global majority is right half the time.
    train_labels = np.array([[1], [1], [1], [0], [0], [0], [0]])
    train_subjects = np.array([1, 1, 1, 2, 2, 2, 2])
    own = subject_majorities(train_labels, train_subjects, 2)
    assert own == {1: [1], 2: [0]}
    rows = np.array([[1, 0, 0], [1, 1, 0], [2, 0, 0], [2, 1, 0], [3, 0, 0]])
    labels = np.array([[1], [1], [0], [0], [1]])
    probs = np.tile([[[0.6, 0.4]]], (5, 1, 1))  # always low
    r = score(Predictions(probs, labels, rows), ["valence"], 2, Majorities([0], own))
    # Subject 3 has no training trials: it falls back to the global majority (low), wrong.
    assert r["trial_level"]["valence"]["subject_majority_baseline"] == pytest.approx(4 / 5)
    assert r["trial_level"]["valence"]["majority_baseline"] == pytest.approx(2 / 5)
    assert r["per_subject"]["1"]["valence"]["subject_majority_baseline"] == 1.0
    assert r["per_subject"]["3"]["valence"]["subject_majority_baseline"] == 0.0
    assert "subj.maj." in tables.text_table(tables.SplitResults.of(r), "t")


def test_tables_read_the_stored_results_and_print_what_they_hold():
    rng = np.random.default_rng(3)
    rows = np.array([[s, t, w] for s in (1, 2) for t in range(6) for w in range(2)])
    labels = np.repeat(rng.integers(0, 2, (12, 2)), 2, axis=0)
    probs = rng.dirichlet([1, 1], size=(len(rows), 2))
    stored = json.loads(
        json.dumps(
            score(
                Predictions(probs, labels, rows),
                ["valence", "arousal"],
                2,
                Majorities([0, 1], {1: [1, 0]}),
            )
        )
    )
    stored["loss"] = 0.69  # the trainer adds a split's loss: no target
    assert tables.targets_of(stored) == ["valence", "arousal"]
    split = tables.SplitResults.of(stored)
    assert split.targets == ["valence", "arousal"] and split.trials is not None
    v = stored["trial_level"]["valence"]
    assert split.trials.targets["valence"].balanced_accuracy_ci95 == tuple(
        v["balanced_accuracy_ci95"]
    )
    assert split.per_subject["2"]["arousal"].trials == 6
    text = tables.text_table(split, "t").splitlines()
    trial_row = text[text.index(next(x for x in text if x.startswith("trials"))) + 2]
    lo, hi = v["balanced_accuracy_ci95"]
    assert trial_row.split() == [
        "valence",
        f"{v['accuracy']:.3f}",
        f"{v['balanced_accuracy']:.3f}",
        f"[{lo:.2f},",
        f"{hi:.2f}]",
        f"{v['macro_f1']:.3f}",
        f"{v['majority_baseline']:.3f}",
        f"{v['subject_majority_baseline']:.3f}",
        f"{v['p_value_balanced_accuracy_vs_chance']:.4f}",
        "12",
    ]
    # Results written before the uncertainty figures existed: blank cells, no trial block.
    old = {k: v for k, v in stored.items() if k not in ("trial_level", "per_subject")}
    for t in ("valence", "arousal"):
        old[t] = {k: x for k, x in old[t].items() if "ci95" not in k and "p_value" not in k}
        del old[t]["subject_majority_baseline"]
    text = tables.text_table(tables.SplitResults.of(old), "old")
    assert "trials (" not in text
    row = next(x for x in text.splitlines() if x.startswith("arousal")).split()
    assert row == [
        "arousal",
        f"{old['arousal']['accuracy']:.3f}",
        f"{old['arousal']['balanced_accuracy']:.3f}",
        f"{old['arousal']['macro_f1']:.3f}",
        f"{old['arousal']['majority_baseline']:.3f}",
        "24",
    ]
    md = tables.markdown_level(tables.SplitResults.of(old).windows)
    assert md[2].startswith(f"| valence | {old['valence']['accuracy']:.3f} | ")
    assert md[-1].startswith(f"| overall (all right) | {old['overall']['accuracy']:.3f} |")
