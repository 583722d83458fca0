"""Cross-validation: aggregate the folds of a CV group into one table (mean +- sd per metric).

`write_cv_results(folder)` reads FOLDER/fold-*/results.json and writes FOLDER/cv_results.json
(`aggregate`) and FOLDER/cv_results.md (`tables.cv_summary`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from eeg_emotion.evaluation import tables
from eeg_emotion.evaluation.metrics import per_subject, split_metrics, trial_level
from eeg_emotion.evaluation.scoring import Predictions

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "majority_baseline")
OPTIONAL = ("subject_majority_baseline",)


def aggregate(folder: str | Path) -> dict:
    """Read FOLDER/*/results.json (one per fold); mean and sd of each test metric over folds."""
    folder = Path(folder)
    folds = {
        p.parent.name: json.loads(p.read_text()) for p in sorted(folder.glob("*/results.json"))
    }
    if not folds:
        raise FileNotFoundError(f"{folder}: no fold has a results.json yet")
    targets = tables.targets_of(next(iter(folds.values()))["test"])
    tests = [r["test"] for r in folds.values()]
    expected = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith("fold-"))
    summary = {
        "folds": list(folds),
        "missing": sorted(set(expected) - set(folds)),
        "targets": targets,
        "test": over_folds(tests, targets),
        "pooled": pooled(folder, folds, targets),
    }
    if all("trial_level" in t for t in tests):
        summary["test_trials"] = over_folds([t["trial_level"] for t in tests], targets)
    return summary


def over_folds(results: list[dict], targets: list[str]) -> dict:
    """Mean and sd over folds (and the per-fold values) of each metric of each target."""

    def stats(values: list[float]) -> dict:
        v = np.array(values, float)
        return {
            "mean": float(v.mean()),
            "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "per_fold": v.round(4).tolist(),
        }

    # Older runs have no subject-majority baseline: include it only when every fold has it.
    extra = [m for m in OPTIONAL if all(m in r[t] for r in results for t in targets)]
    table: dict = {
        t: {m: stats([r[t][m] for r in results]) for m in (*METRICS, *extra)} for t in targets
    }
    table["overall"] = {"accuracy": stats([r["overall"]["accuracy"] for r in results])}
    return table


def pooled(folder: Path, folds: dict, targets: list[str]) -> dict | None:
    """Metrics over the test predictions of all folds together, per window and per trial, and
    per subject (trials). The majority baseline applies each fold's own training majority class
    to its own test rows. None if a fold saved no predictions."""
    parts, majority = [], []
    for name, result in folds.items():
        path = folder / name / "predictions_test.npz"
        if not path.exists():
            return None
        pred = Predictions.load(path)
        parts.append(pred)
        fold_majority = [result["test"][t]["majority_class"] for t in targets]
        majority.append(np.tile(fold_majority, (len(pred.rows), 1)))
    pred, major = Predictions.concat(parts), np.concatenate(majority)
    num_classes = pred.probs.shape[-1]
    t_probs, t_labels, keys = trial_level(pred.probs, pred.labels, pred.rows)
    # A trial is in one fold's test split only: its windows share that fold's majority class.
    _, first = np.unique(pred.rows[:, :2], axis=0, return_index=True)
    t_pred = t_probs.argmax(-1)
    return {
        "windows": split_metrics(pred.labels, pred.probs.argmax(-1), targets, num_classes, major),
        "trials": split_metrics(t_labels, t_pred, targets, num_classes, major[first]),
        "per_subject": per_subject(
            t_labels, t_pred, keys[:, 0], targets, num_classes, major[first]
        ),
    }


def write_cv_results(folder: str | Path) -> str:
    """FOLDER/cv_results.json and cv_results.md from the folds' results; returns the table."""
    folder = Path(folder)
    summary = aggregate(folder)
    text = tables.cv_summary(tables.CVSummary.of(summary))
    (folder / "cv_results.json").write_text(json.dumps(summary, indent=1))
    (folder / "cv_results.md").write_text(text + "\n")
    return text
