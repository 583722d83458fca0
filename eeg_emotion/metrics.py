"""Classification metrics per target, always next to the majority baseline of the same split."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score


def target_metrics(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int, majority: int) -> dict:
    """accuracy, balanced accuracy (mean recall over classes present), macro-F1, confusion
    matrix (rows = truth), and `majority_baseline`: the accuracy of always predicting the
    training split's majority class on this split."""
    labels = list(range(num_classes))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    present = cm.sum(axis=1) > 0
    recalls = np.diag(cm)[present] / cm.sum(axis=1)[present]
    return {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "balanced_accuracy": float(recalls.mean()) if present.any() else float("nan"),
        "macro_f1": float(
            f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "majority_baseline": float((y_true == majority).mean()) if len(y_true) else float("nan"),
        "majority_class": int(majority),
        "confusion_matrix": cm.tolist(),
        "support": len(y_true),
    }


def split_metrics(
    labels: np.ndarray, preds: np.ndarray, targets: list[str], num_classes: int, majority: list[int]
) -> dict:
    """labels, preds: (n, targets). Adds `overall` (every target right) and the mean balanced
    accuracy over targets (the default model-selection metric)."""
    out: dict = {}
    for i, target in enumerate(targets):
        out[target] = target_metrics(labels[:, i], preds[:, i], num_classes, majority[i])
    out["overall"] = {
        "accuracy": float((labels == preds).all(axis=1).mean()) if len(labels) else float("nan"),
        "majority_baseline": float((labels == np.asarray(majority)).all(axis=1).mean())
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


def format_table(metrics: dict, targets: list[str], title: str) -> str:
    def ci(m: dict, key: str) -> str:
        lo_hi = m.get(f"{key}_ci95")
        return f" [{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]" if lo_hi else ""

    def block(m: dict, name: str) -> list[str]:
        rows = [
            name,
            f"{'target':<10} {'acc':>6} {'bal.acc [95% CI]':>24} {'macro-F1':>9} "
            f"{'majority':>9} {'subj.maj.':>9} {'p(bal>chance)':>14} {'n':>6}",
        ]
        for t in targets:
            x = m[t]
            p = x.get("p_value_balanced_accuracy_vs_chance")
            sm = x.get("subject_majority_baseline")
            rows.append(
                f"{t:<10} {x['accuracy']:>6.3f} {x['balanced_accuracy']:>8.3f}"
                f"{ci(x, 'balanced_accuracy'):>16} "
                f"{x['macro_f1']:>9.3f} {x['majority_baseline']:>9.3f} "
                f"{'' if sm is None else f'{sm:.3f}':>9} "
                f"{'' if p is None else f'{p:.4f}':>14} {x['support']:>6}"
            )
        o = m["overall"]
        rows.append(
            f"{'overall':<10} {o['accuracy']:>6.3f} {'':>24} {'':>9} {o['majority_baseline']:>9.3f}"
        )
        return rows

    lines = [title, *block(metrics, "windows")]
    if "trial_level" in metrics:
        lines += [
            "",
            *block(
                metrics["trial_level"],
                "trials (mean probability over each trial's windows; the honest unit)",
            ),
        ]
    lines.append(
        "(majority = always predicting the training split's majority class; subj.maj. = "
        "predicting each subject's own training majority class, no EEG needed; chance balanced "
        "accuracy = 1/classes; CIs resample whole trials)"
    )
    return "\n".join(lines)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    recalls = [(y_pred[y_true == c] == c).mean() for c in range(num_classes) if (y_true == c).any()]
    return float(np.mean(recalls)) if recalls else float("nan")


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


def uncertainty(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: np.ndarray,
    num_classes: int,
    majority: int,
    rows_are_trials: bool,
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
    members = [np.flatnonzero(inverse == g) for g in range(len(ids))]
    acc, bacc = [], []
    for _ in range(n_boot):
        pick = np.concatenate([members[g] for g in rng.integers(0, len(ids), len(ids))])
        acc.append((y_true[pick] == y_pred[pick]).mean())
        bacc.append(balanced_accuracy(y_true[pick], y_pred[pick], num_classes))
    observed = balanced_accuracy(y_true, y_pred, num_classes)
    trial_label = np.zeros(len(ids), y_true.dtype)
    trial_label[inverse] = y_true
    null = []
    for _ in range(n_perm):
        shuffled = rng.permutation(trial_label)[inverse]
        null.append(balanced_accuracy(shuffled, y_pred, num_classes))
    out = {
        "accuracy_ci95": [float(np.percentile(acc, 2.5)), float(np.percentile(acc, 97.5))],
        "balanced_accuracy_ci95": [
            float(np.nanpercentile(bacc, 2.5)),
            float(np.nanpercentile(bacc, 97.5)),
        ],
        "p_value_balanced_accuracy_vs_chance": float(
            (1 + np.sum(np.array(null) >= observed)) / (1 + n_perm)
        ),
        "trials": len(ids),
    }
    if rows_are_trials:  # a binomial test needs independent units: trials, never windows
        hits = int((y_true == y_pred).sum())
        rate = min(max(float((y_true == majority).mean()), 1e-9), 1 - 1e-9)
        out["p_value_accuracy_vs_majority"] = float(
            binomtest(hits, len(y_true), rate, alternative="greater").pvalue
        )
    return out


def full_report(
    probs: np.ndarray,
    labels: np.ndarray,
    rows: np.ndarray,
    targets: list[str],
    num_classes: int,
    majority: list[int],
    seed: int = 0,
    subject_majority: dict[int, list[int]] | None = None,
) -> dict:
    """Window-level metrics (with trial-bootstrap CIs and p-values), the same at trial level
    (mean probability over a trial's windows: the honest unit), and a per-subject breakdown.
    With `subject_majority` (see subject_majorities), each target also gets
    `subject_majority_baseline`; a subject absent from training falls back to `majority`."""

    def by_subject(subjects: np.ndarray) -> np.ndarray:
        table = subject_majority or {}
        return np.array([table.get(int(s), majority) for s in subjects]).reshape(-1, len(targets))

    def level(p: np.ndarray, y: np.ndarray, keys: np.ndarray, rows_are_trials: bool) -> tuple:
        pred = p.argmax(-1)
        out = split_metrics(y, pred, targets, num_classes, majority)
        if subject_majority is not None:
            own = by_subject(keys[:, 0])
            for i, t in enumerate(targets):
                out[t]["subject_majority_baseline"] = float((y[:, i] == own[:, i]).mean())
        trial_ids = keys[:, 0].astype(np.int64) * 100000 + keys[:, 1]
        for i, t in enumerate(targets):
            out[t].update(
                uncertainty(
                    y[:, i],
                    pred[:, i],
                    trial_ids,
                    num_classes,
                    majority[i],
                    rows_are_trials,
                    seed=seed,
                )
            )
        return out, pred

    window, _ = level(probs, labels, rows, rows_are_trials=False)
    t_probs, t_labels, keys = trial_level(probs, labels, rows)
    trial, t_preds = level(t_probs, t_labels, keys, rows_are_trials=True)
    per_subject = {}
    own = by_subject(keys[:, 0])
    for subject in np.unique(keys[:, 0]):
        sel = keys[:, 0] == subject
        per_subject[str(int(subject))] = {
            t: {
                "accuracy": float((t_labels[sel, i] == t_preds[sel, i]).mean()),
                "balanced_accuracy": balanced_accuracy(
                    t_labels[sel, i], t_preds[sel, i], num_classes
                ),
                "majority_baseline": float((t_labels[sel, i] == majority[i]).mean()),
                **(
                    {"subject_majority_baseline": float((t_labels[sel, i] == own[sel, i]).mean())}
                    if subject_majority is not None
                    else {}
                ),
                "trials": int(sel.sum()),
            }
            for i, t in enumerate(targets)
        }
    window["trial_level"] = trial
    window["per_subject"] = per_subject
    return window
