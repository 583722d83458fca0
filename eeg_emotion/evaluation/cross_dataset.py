"""A run's best model on another source's recordings: `evaluate RUN --data source=dreamer
root=/data/dreamer ...` (DEAP-trained on DREAMER, DREAMER-trained on DEAP, ...).

- Every trial of the other dataset is test data: the run's splits play no part.
- Channels are matched by name (`eeg_emotion.data.montage`): the model's channels are picked
  from each recording, the ones it lacks interpolated (or, for a patch model, read without);
  the recordings are resampled to the run's rate and preprocessed as its training data was.
- Targets are matched by name (the run's `valence` is the other dataset's `valence`), and each
  is thresholded on its own source's scale: the run's threshold (and cuts) placed at the same
  fraction of the other source's scale, so DEAP's 5 on 1..9 is DREAMER's 3 on 1..5, with the
  run's `high_if` and class count. `--data labels.threshold=...` (or `labels.cuts`) sets it.
- The majority baseline is the other dataset's own majority class: the run's training split is
  not read.

Scores go to RUN/eval_cross_<source>.json, marked `cross_dataset` with the channels used,
interpolated, left out and ignored and the label mapping; the table says the same.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eeg_emotion import fileio
from eeg_emotion.config import DataSettings, LabelSettings, load_settings
from eeg_emotion.data.labels import TargetKind, discretize, source_targets
from eeg_emotion.data.montage import Montage
from eeg_emotion.data.preprocessor import Preprocessor
from eeg_emotion.data.readers import Categories, make_reader
from eeg_emotion.data.splits import trial_key
from eeg_emotion.errors import ConfigError
from eeg_emotion.evaluation import tables
from eeg_emotion.evaluation.inference import check_run, load_run, recording_probs, warn_montage
from eeg_emotion.evaluation.metrics import majority_classes
from eeg_emotion.evaluation.scoring import Majorities, Predictions, score

log = logging.getLogger(__name__)


def other_settings(run: DataSettings, items: list[str]) -> DataSettings:
    """The other dataset's data settings from `--data KEY=VALUE` items (`source=dreamer`,
    `root=...`, `options.x=...`, `labels.threshold=...`; a leading `data.` may be given), with
    the run's targets and class count and its threshold mapped onto the other's scale."""
    keys = [item.partition("=")[0].removeprefix("data.") for item in items]
    if "source" not in keys or "root" not in keys:
        raise ConfigError("--data needs at least source=NAME and root=FOLDER")
    overrides = ["data." + item.removeprefix("data.") for item in items]
    labels = run.labels
    overrides += [
        f"data.labels.targets={json.dumps(labels.targets)}",
        f"data.labels.num_classes={labels.num_classes}",
        f"data.labels.high_if={json.dumps(labels.high_if)}",
    ]
    source = items[keys.index("source")].partition("=")[2].strip()
    theirs_of = _kinds(source, items)
    ours_of = source_targets(run.source, run.options)
    for t in labels.targets:
        if t not in theirs_of:
            raise ConfigError(
                f"--data source={source} has no target {t!r}, which the model predicts "
                f"(it has {', '.join(theirs_of)})"
            )
        ours, theirs = ours_of[t], theirs_of[t]
        if bool(ours.categories) or bool(theirs.categories):
            if ours.categories != theirs.categories:
                raise ConfigError(
                    f"target {t!r}: {run.source}'s and {source}'s are not the same "
                    "categories; cross-dataset evaluation maps ratings, or identical categories"
                )
        elif "labels.threshold" not in keys and "labels.cuts" not in keys:
            first = ours_of[labels.targets[0]]
            mapped = [_rescale(v, first, theirs) for v in (labels.threshold, *labels.cuts)]
            overrides += [
                f"data.labels.threshold={mapped[0]:g}",
                f"data.labels.cuts=[{mapped[1]:g}, {mapped[2]:g}]",
            ]
    return load_settings(None, overrides).data


def _kinds(source: str, items: list[str]) -> dict[str, TargetKind]:
    """The other source's targets, read with the options given (defaults otherwise)."""
    options = [i for i in items if i.removeprefix("data.").startswith(("source=", "options."))]
    other = load_settings(None, ["data." + i.removeprefix("data.") for i in options]).data
    return source_targets(source, other.options)


def _rescale(value: float, ours: TargetKind, theirs: TargetKind) -> float:
    """`value` on our scale placed at the same fraction of theirs (rounded to 0.01)."""
    share = (value - ours.low) / (ours.high - ours.low)
    return round(theirs.low + share * (theirs.high - theirs.low), 2)


@dataclass
class OtherPredictions:
    """A run's model on every trial of another dataset."""

    run: DataSettings
    other: DataSettings  # its labels: the run's targets, on the other source's scale
    pred: Predictions  # rows: subject, trial key (`splits.trial_key`), window
    montages: list[Montage]  # one per recording


def predict_other(
    run_dir: str | Path, items: list[str], overrides: list[str] | None = None
) -> tuple[OtherPredictions, int]:
    """Every window of the other dataset `items` name through the run's best model, with its
    label on the run's targets; and the run's seed."""
    run_dir = Path(run_dir)
    unfinished = check_run(run_dir)
    settings, model = load_run(run_dir, overrides)
    other = other_settings(settings.data, items)
    if unfinished:
        log.warning(unfinished)
    pre = Preprocessor.load(run_dir / "best")
    reader = make_reader(other.source, other.reader_options())
    targets, lab = other.labels.targets, other.labels
    probs, labels, rows, montages = [], [], [], []
    said: set[str] = set()
    for ref in reader.find(other.root):
        rec = reader.read(ref)
        p, counts, fitted = recording_probs(model, pre, rec)
        said = warn_montage(fitted, ref.path, said)
        montages.append(fitted)
        if isinstance(rec.targets, Categories):  # one target, the category
            y = discretize(rec.targets.values[:, None], lab, targets[:1], categorical=True)
        else:
            y = discretize(rec.targets.values, lab, rec.targets.names)
        keys = [trial_key(rec, i) for i in range(len(rec.trials))]
        probs.append(p)
        labels.append(np.repeat(y, counts, 0))
        windows = np.concatenate([np.arange(c) for c in counts])
        subject = np.full(len(windows), rec.subject)
        rows.append(np.stack([subject, np.repeat(keys, counts), windows], 1))
    pred = Predictions(np.concatenate(probs), np.concatenate(labels), np.concatenate(rows))
    return OtherPredictions(settings.data, other, pred, montages), settings.seed


def evaluate_on(
    run_dir: str | Path, items: list[str], overrides: list[str] | None = None
) -> tuple[dict, str]:
    """The run's best model on every trial of the other dataset `items` name: its scores
    (with a `cross_dataset` record) and their table."""
    out, seed = predict_other(run_dir, items, overrides)
    pred, other = out.pred, out.other
    targets, num_classes = other.labels.targets, other.labels.num_classes
    trial_labels = pred.labels[pred.rows[:, 2] == 0]  # each trial's first window
    majority = Majorities(majority_classes(trial_labels, num_classes), {})
    metrics = score(pred, targets, num_classes, majority, seed)
    metrics["cross_dataset"] = record(out.run, other, out.montages, len(trial_labels))
    title = (
        f"cross-dataset: {run_dir} (trained on {out.run.source}) on every trial of "
        f"{other.source} ({other.root})"
    )
    table = tables.text_table(tables.SplitResults.of(metrics, targets), title)
    return metrics, table + "\n" + "\n".join(describe(metrics["cross_dataset"]))


def record(
    run: DataSettings, other: DataSettings, montages: list[Montage], trials: int
) -> dict[str, Any]:
    """What the cross-dataset result is of: both sources, the channels, the label mapping."""

    def union(field: str) -> list[str]:
        return list(dict.fromkeys(c for m in montages for c in getattr(m, field)))

    ours = source_targets(run.source, run.options)
    theirs = source_targets(other.source, other.options)
    return {
        "trained_on": {"source": run.source, "root": str(run.root)},
        "tested_on": {"source": other.source, "root": str(other.root)},
        "recordings": len(montages),
        "trials": trials,
        "channels": {
            "used": union("used"),
            "interpolated": union("interpolated"),
            "dropped": union("dropped"),
            "ignored": union("extra"),
        },
        "labels": {
            t: {
                "trained": _rule(run.labels, ours[t], run.source),
                "tested": _rule(other.labels, theirs[t], other.source),
            }
            for t in other.labels.targets
        },
    }


def _rule(lab: LabelSettings, kind: TargetKind, source: str) -> str:
    if kind.categories:
        return f"{source}'s categories"
    scale = f"on {source}'s {kind.low:g}..{kind.high:g}"
    if lab.num_classes == 2:
        return f"high if rating {lab.high_if} {lab.threshold:g} {scale}"
    return f"cuts at {lab.cuts[0]:g} and {lab.cuts[1]:g} {scale}"


def describe(cross: dict[str, Any]) -> list[str]:
    """The cross-dataset record in lines, for under the table."""
    ch = cross["channels"]
    lines = [
        f"Cross-dataset result: {cross['recordings']} recordings, {cross['trials']} trials of "
        f"{cross['tested_on']['source']}, all of them test data (the run's splits play no part)",
        f"channels used ({len(ch['used'])}): {', '.join(ch['used']) or 'none'}",
    ]
    if ch["interpolated"]:
        lines.append(
            f"channels interpolated ({len(ch['interpolated'])}): " + ", ".join(ch["interpolated"])
        )
    if ch["dropped"]:
        lines.append(f"channels dropped ({len(ch['dropped'])}): " + ", ".join(ch["dropped"]))
    if ch["ignored"]:
        lines.append(
            f"channels ignored, not trained on ({len(ch['ignored'])}): " + ", ".join(ch["ignored"])
        )
    for t, rules in cross["labels"].items():
        lines.append(f"{t}: trained {rules['trained']}; tested {rules['tested']}")
    lines.append("majority baseline: the tested dataset's own majority class")
    return lines


def save_cross(run_dir: str | Path, metrics: dict) -> Path:
    """RUN/eval_cross_<source>.json, published whole."""
    source = metrics["cross_dataset"]["tested_on"]["source"]
    path = Path(run_dir) / f"eval_cross_{source}.json"
    with fileio.writing(path), fileio.publish_file(path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1))
    return path
