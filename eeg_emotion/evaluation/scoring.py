"""Predictions -> their scores -> the run folder: the one path every printed number takes.

The trainer, both baselines, `launch/evaluate.py`, cross-validation and `launch/report.py` all
go through here, so a figure in test_results.txt, results.json, report.md, cv_results or W&B
has one source: `score` on saved `Predictions`.

    pred = Predictions(probs, labels, rows)
    results = {"test": score(pred, targets, num_classes, Majorities.of(data), seed)}
    write_run(run_dir, results, {"test": pred}, ...)

Outputs are published, never written in place: `fileio.staged(folder)` collects a set of files
and moves them in together, so a full disk, a missing permission or a file where a folder
belongs leaves every earlier file as it was; `fileio.writing(path)` turns such a failure into
one StorageError naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from eeg_emotion import fileio
from eeg_emotion.errors import DataError
from eeg_emotion.evaluation import tables
from eeg_emotion.evaluation.metrics import (
    majority_classes,
    per_subject,
    split_metrics,
    subject_majorities,
    trial_level,
    uncertainty,
)

if TYPE_CHECKING:
    from eeg_emotion.data.pipeline import TokenData
    from eeg_emotion.evaluation.scalp_maps import Importance


@dataclass
class Predictions:
    """Class probabilities of every window of a split, with its labels and where it is from."""

    probs: np.ndarray  # (n, targets, classes) float
    labels: np.ndarray  # (n, targets) int
    rows: np.ndarray  # (n, 3): subject, trial, window

    def save(self, path: Path) -> None:
        np.savez(path, probs=self.probs, labels=self.labels, rows=self.rows)

    @classmethod
    def load(cls, path: Path) -> Predictions:
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(z["probs"], z["labels"], z["rows"])
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(path, f"cannot read predictions ({exc})") from None

    def take(self, index: np.ndarray) -> Predictions:
        return Predictions(self.probs[index], self.labels[index], self.rows[index])

    @classmethod
    def concat(cls, parts: list[Predictions]) -> Predictions:
        return cls(
            *(
                np.concatenate(x)
                for x in zip(*((p.probs, p.labels, p.rows) for p in parts), strict=True)
            )
        )


@dataclass
class Majorities:
    """What a classifier must beat, from the training split: its majority class per target, and
    each subject's own (needs no EEG, yet beats the global one wherever subjects rate
    differently: the bar a pooled classifier must clear to show it reads more than who the
    subject is)."""

    overall: list[int]
    per_subject: dict[int, list[int]]

    @classmethod
    def of(cls, data: TokenData) -> Majorities:
        labels = data.train_labels()
        return cls(
            majority_classes(labels, data.num_classes),
            subject_majorities(labels, data.train_subjects(), data.num_classes),
        )

    def rows(self, subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row (n, targets): the overall and the subject's majority class (the overall one
        for a subject without training trials)."""
        n = len(subjects)
        own = [self.per_subject.get(int(s), self.overall) for s in subjects]
        overall = np.tile(np.asarray(self.overall), (n, 1))
        return overall, np.asarray(own, np.int64).reshape(n, len(self.overall))


def score(
    pred: Predictions, targets: list[str], num_classes: int, majorities: Majorities, seed: int = 0
) -> dict:
    """Window-level metrics (trial-bootstrap CIs, permutation p-values), the same at trial level
    (mean probability over a trial's windows: the honest unit), both majority baselines, and a
    per-subject breakdown of the trials."""

    def level(p: np.ndarray, y: np.ndarray, keys: np.ndarray, rows_are_trials: bool) -> tuple:
        predicted = p.argmax(-1)
        out = split_metrics(y, predicted, targets, num_classes, majorities.overall)
        _, own = majorities.rows(keys[:, 0])
        trial_ids = keys[:, 0].astype(np.int64) * 100000 + keys[:, 1]
        for i, t in enumerate(targets):
            out[t]["subject_majority_baseline"] = float((y[:, i] == own[:, i]).mean())
            out[t].update(
                uncertainty(
                    y[:, i],
                    predicted[:, i],
                    trial_ids,
                    num_classes,
                    majorities.overall[i],
                    rows_are_trials=rows_are_trials,
                    seed=seed,
                )
            )
        return out, predicted

    window, _ = level(pred.probs, pred.labels, pred.rows, rows_are_trials=False)
    t_probs, t_labels, keys = trial_level(pred.probs, pred.labels, pred.rows)
    trial, t_preds = level(t_probs, t_labels, keys, rows_are_trials=True)
    overall, own = majorities.rows(keys[:, 0])
    window["trial_level"] = trial
    window["per_subject"] = per_subject(
        t_labels, t_preds, keys[:, 0], targets, num_classes, overall, own
    )
    return window


def tracker_row(m: dict, part: str, targets: list[str]) -> dict[str, float]:
    """The headline figures of one split's metrics for W&B and metrics.jsonl."""
    row = {
        f"{part}/mean_balanced_accuracy": m["mean_balanced_accuracy"],
        f"{part}/overall_accuracy": m["overall"]["accuracy"],
    }
    for target in targets:
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "majority_baseline"):
            row[f"{part}/{target}/{key}"] = m[target][key]
    return row


def summary_row(stored: dict, part: str) -> dict[str, float]:
    """A split's full report as flat, stable keys (W&B's run summary: one runs-table column
    each), read through the typed view of results.json (`tables.SplitResults`):

        {part}/{window|trial}/mean_balanced_accuracy, .../overall/accuracy,
        .../overall/majority/accuracy, and per target .../{target}/...:
        accuracy, balanced_accuracy, macro_f1, support, trials,
        accuracy/ci_low, accuracy/ci_high, balanced_accuracy/ci_low, balanced_accuracy/ci_high,
        balanced_accuracy/p_value (against chance), accuracy/p_value (against the majority
        baseline; trials only), majority/accuracy and majority/class (the training split's
        majority class), subject_majority/accuracy (each subject's own majority class)

    A figure results.json does not hold (older runs, pooled CV predictions) has no key."""
    split = tables.SplitResults.of(stored)
    row: dict[str, float] = {}
    for unit, level in (("window", split.windows), ("trial", split.trials)):
        if level is None:
            continue
        row.update(level_row(level, f"{part}/{unit}"))
    return row


def level_row(level: tables.LevelResults, prefix: str) -> dict[str, float]:
    """One level's figures under `prefix` (see `summary_row`)."""
    row: dict[str, Any] = {
        f"{prefix}/mean_balanced_accuracy": float(
            np.mean([m.balanced_accuracy for m in level.targets.values()])
        ),
        f"{prefix}/overall/accuracy": level.overall_accuracy,
        f"{prefix}/overall/majority/accuracy": level.overall_majority_baseline,
    }
    for target, m in level.targets.items():
        key = f"{prefix}/{target}"
        ci = {"accuracy": m.accuracy_ci95, "balanced_accuracy": m.balanced_accuracy_ci95}
        row.update(
            {
                f"{key}/accuracy": m.accuracy,
                f"{key}/balanced_accuracy": m.balanced_accuracy,
                f"{key}/macro_f1": m.macro_f1,
                f"{key}/support": m.support,
                f"{key}/trials": m.trials,
                f"{key}/balanced_accuracy/p_value": m.p_value_balanced_accuracy_vs_chance,
                f"{key}/accuracy/p_value": m.p_value_accuracy_vs_majority,
                f"{key}/majority/accuracy": m.majority_baseline,
                f"{key}/majority/class": m.majority_class,
                f"{key}/subject_majority/accuracy": m.subject_majority_baseline,
            }
        )
        for metric, bounds in ci.items():
            if bounds is not None:
                row[f"{key}/{metric}/ci_low"], row[f"{key}/{metric}/ci_high"] = bounds
    return {k: v for k, v in row.items() if v is not None}


PER_SUBJECT_COLUMNS = [
    "subject",
    "target",
    "trials",
    "accuracy",
    "balanced_accuracy",
    "majority_accuracy",
    "subject_majority_accuracy",
]


def per_subject_rows(split: tables.SplitResults) -> list[list[Any]]:
    """One row per subject and target of a split's per-subject results (PER_SUBJECT_COLUMNS)."""
    return [
        [
            int(subject),
            target,
            m.trials,
            m.accuracy,
            m.balanced_accuracy,
            m.majority_baseline,
            m.subject_majority_baseline,
        ]
        for subject in sorted(split.per_subject, key=int)
        for target, m in split.per_subject[subject].items()
    ]


def prediction_rows(
    pred: Predictions, targets: list[str], class_names: list[str], *, trials: bool
) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of a predictions table: one row per window (or per trial: its mean
    probability over its windows) and target, with the label, the prediction and each class's
    probability."""
    if trials:
        probs, labels, keys = trial_level(pred.probs, pred.labels, pred.rows)
        where = ["subject", "trial"]
    else:
        probs, labels, keys = pred.probs, pred.labels, pred.rows
        where = ["subject", "trial", "window"]
    columns = [*where, "target", "label", "predicted", *(f"p_{c}" for c in class_names)]
    rows = [
        [
            *(int(k) for k in keys[n]),
            target,
            class_names[int(labels[n, i])],
            class_names[int(probs[n, i].argmax())],
            *(float(p) for p in probs[n, i]),
        ]
        for n in range(len(keys))
        for i, target in enumerate(targets)
    ]
    return columns, rows


def confusion_pairs(matrix: list[list[int]]) -> tuple[list[int], list[int]]:
    """(truth, prediction) pairs that give a stored confusion matrix (rows = truth): W&B's
    confusion-matrix chart counts them back into the same cells."""
    truth, predicted = [], []
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            truth += [i] * int(count)
            predicted += [j] * int(count)
    return truth, predicted


def write_results(
    folder: Path,
    results: dict[str, Any],
    predictions: dict[str, Predictions],
    *,
    targets: list[str],
    class_names: list[str],
    title: str,
    rows: list[dict[str, Any]],
    importance: Importance | None = None,
) -> tuple[str, dict[str, Path]]:
    """results.json, test_results.txt, predictions_<part>.npz, plots/ (with the training curves
    of `rows`) and importance.json (`importance`) into `folder`. Returns the test table and the
    plots drawn. The scalp maps are drawn by `eeg-emotion report`: MNE's import and topomaps
    cost seconds, which every run (and every cross-validation fold) would pay."""
    from eeg_emotion.evaluation import plots  # matplotlib: only when writing

    for part, pred in predictions.items():
        path = folder / f"predictions_{part}.npz"
        with fileio.named(path):
            pred.save(path)
    fileio.write_file(folder / "results.json", json.dumps(results, indent=1))
    table = tables.text_table(tables.SplitResults.of(results["test"], targets), title)
    fileio.write_file(folder / "test_results.txt", table + "\n")
    with fileio.named(folder / "plots"):
        images = plots.run_plots(folder / "plots", results, targets, class_names, rows)
    if importance is not None:
        importance.save(folder)
    return table, images


def write_run(
    run_dir: Path,
    results: dict[str, Any],
    predictions: dict[str, Predictions],
    targets: list[str],
    class_names: list[str],
    title: str,
    importance: Importance | None = None,
) -> tuple[str, dict[str, Path]]:
    """results.json, test_results.txt, predictions_<part>.npz, importance.json and plots/ of a
    finished run (LLM or baseline), published together (`fileio.staged`). Returns the test
    table and the plots drawn."""
    rows = fileio.read_jsonl(run_dir / "metrics.jsonl")
    with fileio.staged(run_dir) as tmp:
        table, images = write_results(
            tmp,
            results,
            predictions,
            targets=targets,
            class_names=class_names,
            title=title,
            rows=rows,
            importance=importance,
        )
    return table, {key: run_dir / path.relative_to(tmp) for key, path in images.items()}
