"""Classification metrics per target, always next to the majority baseline of the same split."""

from __future__ import annotations

import warnings

import numpy as np


def target_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, majority: int | np.ndarray
) -> dict:
    """accuracy, balanced accuracy, macro-F1, confusion matrix (rows = truth), and
    `majority_baseline`: the accuracy of always predicting the training split's majority class
    on this split (`majority` per row where rows come from several training splits, as when
    the folds of a cross-validation are pooled)."""
    cm = confusion(y_true, y_pred, num_classes)
    single = np.ndim(majority) == 0
    return {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred, num_classes),
        "macro_f1": macro_f1(cm),
        "majority_baseline": float((y_true == majority).mean()) if len(y_true) else float("nan"),
        **({"majority_class": int(majority)} if single else {}),
        "confusion_matrix": cm.tolist(),
        "support": len(y_true),
    }


def split_metrics(
    labels: np.ndarray,
    preds: np.ndarray,
    targets: list[str],
    num_classes: int,
    majority: list[int] | np.ndarray,
) -> dict:
    """labels, preds: (n, targets); majority: per target, or (n, targets) per row. Adds
    `overall` (every target right) and the mean balanced accuracy over targets (the default
    model-selection metric)."""
    majority = np.asarray(majority)
    out: dict = {}
    for i, target in enumerate(targets):
        out[target] = target_metrics(labels[:, i], preds[:, i], num_classes, majority[..., i])
    out["overall"] = {
        "accuracy": float((labels == preds).all(axis=1).mean()) if len(labels) else float("nan"),
        "majority_baseline": float((labels == majority).all(axis=1).mean())
        if len(labels)
        else float("nan"),
    }
    out["mean_balanced_accuracy"] = float(np.mean([out[t]["balanced_accuracy"] for t in targets]))
    out["mean_macro_f1"] = float(np.mean([out[t]["macro_f1"] for t in targets]))
    return out


def majority_classes(train_labels: np.ndarray, num_classes: int) -> list[int]:
    return [
        int(np.bincount(train_labels[:, i], minlength=num_classes).argmax())
        for i in range(train_labels.shape[1])
    ]


def subject_majorities(
    train_labels: np.ndarray, train_subjects: np.ndarray, num_classes: int
) -> dict[int, list[int]]:
    """Each subject's majority class in the training split. Predicting it needs no EEG at all,
    yet beats the global majority wherever subjects rate differently: the bar a pooled
    classifier must clear to show it reads more than who the subject is."""
    return {
        int(s): majority_classes(train_labels[train_subjects == s], num_classes)
        for s in np.unique(train_subjects)
    }


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Mean recall over the classes present in `y_true` (a class absent from the labels has
    no recall to score; nan when there are no labels). The one definition used everywhere."""
    recalls = [(y_pred[y_true == c] == c).mean() for c in range(num_classes) if (y_true == c).any()]
    return float(np.mean(recalls)) if recalls else float("nan")


# The confusion matrix and macro-F1 in numpy, as scikit-learn's `confusion_matrix(labels=range(k))`
# and `f1_score(average="macro", zero_division=0)` define them (tests/test_metrics.py compares):
# importing sklearn.metrics costs every training process seconds of start-up (scipy.stats).
def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (truth, prediction), classes 0..num_classes-1."""
    flat = np.asarray(y_true, np.int64) * num_classes + np.asarray(y_pred, np.int64)
    return np.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)


def macro_f1(cm: np.ndarray) -> float:
    """The mean over every class of 2 tp / (2 tp + fp + fn), 0 where a class is neither true
    nor predicted."""
    tp = np.diag(cm).astype(float)
    denominator = cm.sum(0) + cm.sum(1)  # 2 tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return float(f1.mean())


# Resamples x windows scored in one array operation, at most (memory: a few of these arrays).
BOOT_CHUNK = 1 << 22


def balanced_accuracies(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, weight: np.ndarray | None = None
) -> np.ndarray:
    """`balanced_accuracy` of many labelings at once: each row of `y_true` (or of `weight`, the
    times each window counts) against `y_pred`; exactly the same numbers, row by row."""
    y_true = np.broadcast_to(y_true, weight.shape) if weight is not None else np.atleast_2d(y_true)
    count_of = (lambda m: m.sum(1)) if weight is None else (lambda m: (weight * m).sum(1))
    recalls = np.full((len(y_true), num_classes), np.nan)
    for c in range(num_classes):
        is_c = y_true == c
        count = count_of(is_c)
        present = count > 0
        recalls[present, c] = count_of(is_c & (y_pred == c))[present] / count[present]
    with warnings.catch_warnings():  # a labeling without labels: nan, as one alone would be
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(recalls, 1)


def trial_level(probs: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> tuple:
    """Aggregate windows into trials (mean class probability): probs (n, targets, classes),
    labels (n, targets), rows (n, 3) -> (probs, labels, keys (m, 2) = subject, trial)."""
    keys, inverse = np.unique(rows[:, :2], axis=0, return_inverse=True)
    inverse = inverse.ravel()
    counts = np.bincount(inverse, minlength=len(keys)).astype(float)
    trial_probs = np.zeros((len(keys), *probs.shape[1:]))
    np.add.at(trial_probs, inverse, probs)
    trial_probs /= counts[:, None, None]
    trial_labels = np.zeros((len(keys), labels.shape[1]), labels.dtype)
    trial_labels[inverse] = labels  # every window of a trial has the trial's label
    return trial_probs, trial_labels, keys


# A trial's probability of its true class is floored here: one sure mistake then costs
# -log(1e-12) = 27.6 nats rather than an infinite mean.
PROB_FLOOR = 1e-12


def trial_loss(probs: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> float:
    """The cross-entropy of each trial's mean window probabilities (`trial_level`) per target,
    averaged over the targets, then over the trials (lower is better): one number per trial,
    so a few trials with many windows cannot dominate it."""
    t_probs, t_labels, _ = trial_level(probs, labels, rows)
    true = np.take_along_axis(t_probs, t_labels[..., None].astype(np.int64), -1)[..., 0]
    return float(-np.log(np.maximum(true, PROB_FLOOR)).mean(1).mean())


def uncertainty(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: np.ndarray,
    num_classes: int,
    majority: int,
    rows_are_trials: bool,
    *,
    n_boot: int = 1000,
    n_perm: int = 1000,
    seed: int = 0,
) -> dict:
    """95 % bootstrap CIs resampling whole trials (`groups`: one id per row), a permutation
    p-value for balanced accuracy against chance (labels shuffled between trials, so windows of a
    trial move together) and, when each row is a trial (independent units), a one-sided binomial
    p-value for accuracy against the majority baseline."""
    from scipy.stats import binomtest

    rng = np.random.default_rng(seed)
    ids, inverse = np.unique(groups, return_inverse=True)
    inverse = inverse.ravel()
    n = len(ids)
    # A resample is each trial's count of draws: every window weighted by its trial's count is
    # the resampled trials' windows concatenated, scored in one array operation for all.
    draws = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)])
    accs, baccs = [], []
    for chunk in np.array_split(draws, max(1, n_boot * len(y_true) // BOOT_CHUNK)):
        weight = chunk[:, inverse]
        accs.append((weight * (y_true == y_pred)).sum(1) / weight.sum(1))
        baccs.append(balanced_accuracies(y_true, y_pred, num_classes, weight))
    observed = balanced_accuracy(y_true, y_pred, num_classes)
    trial_label = np.zeros(n, y_true.dtype)
    trial_label[inverse] = y_true
    shuffles = np.stack([rng.permutation(trial_label) for _ in range(n_perm)])
    null = np.concatenate(
        [
            balanced_accuracies(chunk[:, inverse], y_pred, num_classes)
            for chunk in np.array_split(shuffles, max(1, n_perm * len(y_true) // BOOT_CHUNK))
        ]
    )
    acc, bacc = np.concatenate(accs), np.concatenate(baccs)
    out = {
        "accuracy_ci95": [float(np.percentile(acc, 2.5)), float(np.percentile(acc, 97.5))],
        "balanced_accuracy_ci95": [
            float(np.nanpercentile(bacc, 2.5)),
            float(np.nanpercentile(bacc, 97.5)),
        ],
        "p_value_balanced_accuracy_vs_chance": float((1 + np.sum(null >= observed)) / (1 + n_perm)),
        "trials": len(ids),
    }
    if rows_are_trials:  # a binomial test needs independent units: trials, never windows
        hits = int((y_true == y_pred).sum())
        rate = min(max(float((y_true == majority).mean()), 1e-9), 1 - 1e-9)
        out["p_value_accuracy_vs_majority"] = float(
            binomtest(hits, len(y_true), rate, alternative="greater").pvalue
        )
    return out


def per_subject(
    labels: np.ndarray,
    preds: np.ndarray,
    subjects: np.ndarray,
    targets: list[str],
    num_classes: int,
    majority: np.ndarray,
    own_majority: np.ndarray | None = None,
) -> dict[str, dict]:
    """Per subject and target: accuracy, balanced accuracy, the majority baseline (majority:
    (n, targets) per row) and, given own_majority (n, targets), the subject-majority one."""
    out = {}
    for subject in np.unique(subjects):
        sel = subjects == subject
        out[str(int(subject))] = {
            t: {
                "accuracy": float((labels[sel, i] == preds[sel, i]).mean()),
                "balanced_accuracy": balanced_accuracy(labels[sel, i], preds[sel, i], num_classes),
                "majority_baseline": float((labels[sel, i] == majority[sel, i]).mean()),
                **(
                    {
                        "subject_majority_baseline": float(
                            (labels[sel, i] == own_majority[sel, i]).mean()
                        )
                    }
                    if own_majority is not None
                    else {}
                ),
                "trials": int(sel.sum()),
            }
            for i, t in enumerate(targets)
        }
    return out
