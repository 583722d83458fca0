"""Cross-validation: aggregate the folds of a CV group into one table (mean +- sd per metric).

A CV group is recorded when it starts: `write_group` writes FOLDER/cv_group.json (protocol,
number of folds, the fold folders FOLDER/fold-<i>, the settings that define the group).
`aggregate` pools exactly those folds and refuses, naming them, when any is missing, broken
(results.json unreadable or without a test part) or was made for another split; other folders
in FOLDER are never counted. A folder made before groups were recorded (no cv_group.json) is
read with a warning, its fold-<i> folders checked against their own config.yaml.
`write_cv_results(folder)` writes FOLDER/cv_results.json (`aggregate`) and FOLDER/cv_results.md
(`tables.cv_summary`), together.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from eeg_emotion import fileio
from eeg_emotion.config import flatten
from eeg_emotion.errors import ConfigError, DataError
from eeg_emotion.evaluation import scoring, tables
from eeg_emotion.evaluation.metrics import per_subject, split_metrics, trial_level
from eeg_emotion.evaluation.scoring import Predictions
from eeg_emotion.training.run_folder import HARMLESS

log = logging.getLogger(__name__)
METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "majority_baseline")
OPTIONAL = ("subject_majority_baseline",)
GROUP_FILE = "cv_group.json"
# Keys of the group's settings that may differ between launches: those a training run's may
# (where things are, how long to train), except the baseline, which is the group's model.
GROUP_HARMLESS = tuple(h for h in HARMLESS if h != "baseline")


@dataclass(frozen=True)
class Group:
    """What FOLDER/cv_group.json records: the folds that make up the group."""

    protocol: str
    num_folds: int
    folds: list[str]
    baseline: str | None  # None: the LLM classifier
    settings: dict[str, Any]
    recorded: bool = True  # False: read from the folds of a folder without cv_group.json

    def to_json(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "num_folds": self.num_folds,
            "folds": self.folds,
            "baseline": self.baseline,
            "settings": self.settings,
        }


def write_group(
    folder: str | Path,
    protocol: str,
    num_folds: int,
    settings_dump: dict[str, Any],
    *,
    baseline: str | None = None,
) -> Path:
    """Record FOLDER as the CV group of `num_folds` folds FOLDER/fold-0 .. fold-<n-1> (call it
    before the first fold runs). A folder holds one group: recording another one (other
    protocol, number of folds, baseline or settings) is refused, naming what differs; the same
    group again (a relaunch) is fine."""
    folder = Path(folder)
    if num_folds < 2:  # as data.split.num_folds
        raise ConfigError(f"a CV group needs at least 2 folds, got {num_folds}")
    folds = [f"fold-{i}" for i in range(num_folds)]
    group = Group(protocol, num_folds, folds, baseline, settings_dump)
    path = folder / GROUP_FILE
    if path.exists():
        changed = _group_changes(read_group(folder), group)
        if changed:
            raise ConfigError(
                f"{folder} holds another CV group: {', '.join(changed[:8])}. A CV folder holds "
                "one group: use a new folder (or the group's own settings)"
            )
        return path  # the same group: its record stays as first written
    with fileio.writing(path):
        folder.mkdir(parents=True, exist_ok=True)
        with fileio.publish_file(path) as tmp:
            tmp.write_text(json.dumps(group.to_json(), indent=1))
    return path


def _group_changes(old: Group, new: Group) -> list[str]:
    changed = [
        f"{key} ({getattr(old, key)!r} -> {getattr(new, key)!r})"
        for key in ("protocol", "num_folds", "baseline")
        if getattr(old, key) != getattr(new, key)
    ]
    before, after = flatten(old.settings), flatten(new.settings)
    for key in sorted(before.keys() | after.keys()):
        if before.get(key) != after.get(key) and not _harmless(key):
            changed.append(f"{key} ({before.get(key)!r} -> {after.get(key)!r})")
    return changed


def _harmless(key: str) -> bool:
    return any(key == h or key.startswith(h + ".") for h in GROUP_HARMLESS)


def read_group(folder: Path) -> Group:
    path = folder / GROUP_FILE
    try:
        raw = fileio.load_json(path)
        group = Group(
            str(raw["protocol"]),
            int(raw["num_folds"]),
            [str(f) for f in raw["folds"]],
            raw.get("baseline"),
            dict(raw.get("settings") or {}),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(
            path, f"not a valid CV group record ({type(exc).__name__}: {exc})"
        ) from None
    if not group.folds:
        raise DataError(path, "names no folds")
    return group


def group_of(folder: Path) -> Group:
    """The folder's CV group: its cv_group.json, or (a folder made before groups were recorded)
    the fold-<i> folders as their config.yaml describe them, with a warning."""
    if not folder.is_dir():
        raise DataError(folder, "not a folder")
    if (folder / GROUP_FILE).exists():
        return read_group(folder)
    made = [_split_of(p) for p in unrecorded_folds(folder)]
    kinds = sorted(
        {(str(s.get("protocol")), int(s.get("num_folds", 0))) for s in made if s is not None}
    )
    if not kinds:
        raise DataError(
            folder,
            f"not a CV group: no {GROUP_FILE} and no fold-<i>/config.yaml (`eeg-emotion cv` and "
            "slurm/cv.sh record the group when they start it)",
        )
    if len(kinds) > 1:
        shown = ", ".join(f"{p} with {n} folds" for p, n in kinds)
        raise DataError(folder, f"its fold folders belong to different CV groups ({shown})")
    protocol, num_folds = kinds[0]
    log.warning(
        "warning: %s has no %s (a CV group from before groups were recorded): pooling fold-0 .. "
        "fold-%d as their config.yaml describe them (%s, %d folds)",
        folder,
        GROUP_FILE,
        num_folds - 1,
        protocol,
        num_folds,
    )
    folds = [f"fold-{i}" for i in range(num_folds)]
    return Group(protocol, num_folds, folds, None, {}, recorded=False)


def unrecorded_folds(folder: Path) -> list[Path]:
    """The fold-<i> folders of a CV folder without cv_group.json."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and re.fullmatch(r"fold-\d+", p.name))


def _split_of(run: Path) -> dict[str, Any] | None:
    """A run folder's data.split settings (None where config.yaml is missing or unreadable)."""
    try:
        split = yaml.safe_load((run / "config.yaml").read_text())["data"]["split"]
        return split if isinstance(split, dict) else None
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def read_folds(folder: Path, group: Group) -> dict[str, dict]:
    """Each fold's results.json, in the group's order; refuses, listing every one, when a fold
    is missing, unreadable, without a test part, or made for another split or model."""
    folds, problems = {}, []
    for index, name in enumerate(group.folds):
        result, problem = _read_fold(folder / name, index, group)
        if problem:
            problems.append(f"{name}: {problem}")
        else:
            folds[name] = result
    if problems:
        raise DataError(
            folder,
            f"cannot pool the CV group's {len(group.folds)} folds: " + "; ".join(problems),
        )
    return folds


def _read_fold(run: Path, index: int, group: Group) -> tuple[dict, str | None]:
    path = run / "results.json"
    if not path.exists():
        return {}, f"missing (no {path})"
    try:
        result = fileio.load_json(path)
    except (OSError, ValueError) as exc:
        return {}, f"{path} is corrupt ({exc})"
    test = result.get("test") if isinstance(result, dict) else None
    if not isinstance(test, dict) or not tables.targets_of(test) or "overall" not in test:
        return {}, f"{path} has no test part (the fold did not finish)"
    split = _split_of(run)
    if split is not None:
        made = (split.get("protocol"), split.get("num_folds"), split.get("fold"))
        if made != (group.protocol, group.num_folds, index):
            return {}, (
                f"made for another split ({made[0]}, fold {made[2]} of {made[1]}; the group "
                f"is {group.protocol} with {group.num_folds} folds)"
            )
    baseline = result.get("baseline")
    name = baseline.get("name") if isinstance(baseline, dict) else None
    if group.recorded and name != group.baseline:  # the fold must be of the group's model
        return {}, f"holds {_model(name)}, not the group's {_model(group.baseline)}"
    return result, None


def _model(baseline: str | None) -> str:
    return f"{baseline} baseline" if baseline else "LLM classifier"


def aggregate(folder: str | Path) -> dict:
    """Mean and sd of each test metric over the CV group's folds (FOLDER/fold-<i>/results.json),
    and their test predictions pooled."""
    folder = Path(folder)
    folds = read_folds(folder, group_of(folder))
    targets = tables.targets_of(next(iter(folds.values()))["test"])
    tests = [r["test"] for r in folds.values()]
    summary = {
        "folds": list(folds),
        "missing": [],  # a group with missing folds is not pooled
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
    """FOLDER/cv_results.json and cv_results.md from the folds' results, published together;
    returns the table."""
    folder = Path(folder)
    summary = aggregate(folder)
    text = tables.cv_summary(tables.CVSummary.of(summary))
    with fileio.writing(folder), fileio.staged(folder) as tmp:
        write_cv_files(tmp, summary, text)
    track(folder, summary)
    return text


def summary_row(cv: tables.CVSummary) -> dict[str, float]:
    """A CV group's results as flat keys (the aggregate run's W&B summary): per level and
    target, each metric's mean and sd over the folds (`cv/{window|trial}/{target}/{metric}/mean`,
    `.../sd`) and the metrics of all folds' test rows pooled (`cv/pooled/{window|trial}/...`,
    named as a run's test figures, see `scoring.summary_row`)."""
    row: dict[str, float] = {"cv/num_folds": len(cv.folds)}
    for unit, folds in (("window", cv.windows), ("trial", cv.trials)):
        if folds is None:
            continue
        row[f"cv/{unit}/overall/accuracy/mean"] = folds.overall_accuracy.mean
        row[f"cv/{unit}/overall/accuracy/sd"] = folds.overall_accuracy.sd
        for target, metrics in folds.targets.items():
            for metric, spread in metrics.items():
                row[f"cv/{unit}/{target}/{metric}/mean"] = spread.mean
                row[f"cv/{unit}/{target}/{metric}/sd"] = spread.sd
    for unit, level in (("window", cv.pooled_windows), ("trial", cv.pooled_trials)):
        if level is not None:
            row.update(scoring.level_row(level, f"cv/pooled/{unit}"))
    return row


def fold_rows(cv: tables.CVSummary) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows of the per-fold table: one row per fold and target, at the headline
    level (trials where every fold has them)."""
    level = cv.headline
    metrics = level.metrics
    rows = [
        [fold, target, *(level.targets[target][m].per_fold[i] for m in metrics)]
        for i, fold in enumerate(cv.folds)
        for target in cv.targets
    ]
    return ["fold", "target", *metrics], rows


def track(folder: Path, summary: dict) -> None:
    """The CV group's aggregate as a W&B run of its own (job type "cv", in the folds' group,
    named <group>-cv), when the group's settings track with W&B."""
    group = group_of(folder)
    tracker = (group.settings.get("train") or {}).get("tracker") or {}
    if tracker.get("kind") != "wandb":
        return
    from eeg_emotion.config import Settings
    from eeg_emotion.training import tracking

    dump = {**group.settings, "output_dir": str(folder)}
    dump["train"] = {**dump["train"], "tracker": {**tracker, "group": folder.name}}
    settings = Settings.model_validate(dump)
    cv = tables.CVSummary.of(summary)
    tracking.log_run(
        settings,
        folder,
        job_type=tracking.wandb_job_type(settings, kind="cv"),
        name=f"{folder.name}-cv",
        summary={**summary_row(cv), "cv/protocol": group.protocol},
        tables={"cv/folds": fold_rows(cv)},
    )


def write_cv_files(folder: Path, summary: dict, text: str) -> None:
    """cv_results.json and cv_results.md into `folder` (a staging folder)."""
    fileio.write_file(folder / "cv_results.json", json.dumps(summary, indent=1))
    fileio.write_file(folder / "cv_results.md", text + "\n")
