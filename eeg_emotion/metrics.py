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


def format_table(metrics: dict, targets: list[str], title: str) -> str:
    rows = [
        title,
        f"{'target':<10} {'acc':>6} {'bal.acc':>8} {'macro-F1':>9} {'majority':>9} {'n':>6}",
    ]
    for t in targets:
        m = metrics[t]
        rows.append(
            f"{t:<10} {m['accuracy']:>6.3f} {m['balanced_accuracy']:>8.3f} "
            f"{m['macro_f1']:>9.3f} {m['majority_baseline']:>9.3f} {m['support']:>6}"
        )
    o = metrics["overall"]
    rows.append(
        f"{'overall':<10} {o['accuracy']:>6.3f} {'':>8} {'':>9} {o['majority_baseline']:>9.3f}"
    )
    rows.append(
        "(majority = always predicting the training split's majority class; chance "
        "balanced accuracy = 0.5 for 2 classes)"
    )
    return "\n".join(rows)
