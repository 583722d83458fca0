"""What an offline W&B run holds, read back from its `.wandb` file: the full test report in the
summary (window and trial level, CIs, p-values, both majority baselines), val metrics at their
best, tables, W&B confusion-matrix charts, the model artifact, and the job types and group of
a training fold, a baseline and a CV group's aggregate.

The `.wandb` file is a LevelDB-style log of wandb's protobuf `Record`s (the installed wandb
has no reader of its own for it any more): 32 KiB blocks of chunks, each with a CRC-32 seeded by
its type (full, first, middle, last), behind a 7-byte ":W&B" header.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from wandb.proto.wandb_internal_pb2 import Record

from tests.helpers.training import command, run

pytestmark = pytest.mark.slow

BLOCK, HEADER = 32768, 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
TARGETS = ("valence", "arousal")
NAMES = ["low", "high"]  # the class names of two levels


def read_records(path: Path) -> list[Record]:
    """Every Record of a `.wandb` file, each chunk's checksum checked."""
    data = path.read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:HEADER])
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0)
    seeds = {t: zlib.crc32(bytes([t])) for t in (FULL, FIRST, MIDDLE, LAST)}
    records, pending, at = [], b"", HEADER
    while at + HEADER <= len(data):
        if BLOCK - at % BLOCK < HEADER:  # a block's tail too short for a chunk: zero padding
            at += BLOCK - at % BLOCK
            continue
        checksum, length, kind = struct.unpack("<IHB", data[at : at + HEADER])
        chunk = data[at + HEADER : at + HEADER + length]
        at += HEADER + length
        if kind == 0:  # preallocated, never written
            continue
        assert zlib.crc32(chunk, seeds[kind]) == checksum
        pending += chunk
        if kind in (FULL, LAST):
            record = Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def last_values(items: Iterable) -> dict:
    """Keys and values of summary or history items: a dict value (a table, an image) comes
    flattened, one item per field under its key path (`nested_key`), and is put back together."""
    out: dict = {}
    for item in items:
        path = [item.key] if item.key else list(item.nested_key)
        place = out
        for part in path[:-1]:
            place = place.setdefault(part, {})
        place[path[-1]] = json.loads(item.value_json)
    return out


class OfflineRun:
    """The records of the one offline W&B run in a run folder."""

    def __init__(self, run_dir: Path) -> None:
        [path] = run_dir.glob("wandb/offline-run-*/run-*.wandb")
        self.folder = path.parent
        self.records = read_records(path)

    def of(self, kind: str) -> list:
        return [getattr(r, kind) for r in self.records if r.WhichOneof("record_type") == kind]

    @property
    def run(self):  # the run's own record: job type, group, name
        return self.of("run")[0]

    def summary(self) -> dict:
        """Summary keys (as logged) with their last value."""
        return last_values(item for record in self.of("summary") for item in record.update)

    def history(self) -> dict:
        """History keys with their last value."""
        return last_values(item for record in self.of("history") for item in record.item)

    def table(self, key: str) -> dict:
        """A logged wandb.Table: its columns and rows, from the file the history points to."""
        value = self.history()[key]
        assert value["_type"] == "table-file"
        return json.loads((self.folder / "files" / value["path"]).read_text())


@pytest.fixture(scope="module")
def runs(tiny_root: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One offline W&B training run (fold 0 of a 2-fold kfold split, in group `grp`) and a
    band_power_lr cross-validation of 2 folds, with its aggregate, into group `cvb`."""
    base = tmp_path_factory.mktemp("wandb-dashboard")
    env = {"WANDB_MODE": "offline", "HOME": str(base / "home"), "WANDB_ERROR_REPORTING": "false"}
    wandb = ["train.tracker.kind=wandb", "train.tracker.timeout_s=20"]
    fold = ["data.split.protocol=kfold", "data.split.num_folds=2", "data.split.fold=0"]
    train_dir = base / "train"
    group = ["train.tracker.group=grp", "train.epochs=1"]
    run(command(tiny_root, cache, train_dir, *fold, *group, *wandb), env=env)
    cv_dir = base / "cvb"
    argv = [sys.executable, "launch/cv.py", "--config", "configs/tiny.yaml", "--protocol"]
    argv += ["kfold", "--folds", "2", "--out", str(cv_dir), "--baseline", "band_power_lr"]
    argv += [f"data.root={tiny_root}", f"data.cache_dir={cache}", *wandb]
    run(argv, env=env)
    return {"train": train_dir, "cv": cv_dir}


def test_the_summary_holds_the_full_test_report_from_results_json(runs):
    run_dir = runs["train"]
    test = json.loads((run_dir / "results.json").read_text())["test"]
    summary = OfflineRun(run_dir).summary()
    for unit, level in (("window", test), ("trial", test["trial_level"])):
        for target in TARGETS:
            stored, key = level[target], f"test/{unit}/{target}"
            for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
                assert summary[f"{key}/{metric}"] == stored[metric]
            for metric in ("accuracy", "balanced_accuracy"):
                low, high = stored[f"{metric}_ci95"]
                assert (summary[f"{key}/{metric}/ci_low"], summary[f"{key}/{metric}/ci_high"]) == (
                    low,
                    high,
                )
            assert (
                summary[f"{key}/balanced_accuracy/p_value"]
                == stored["p_value_balanced_accuracy_vs_chance"]
            )
            assert summary[f"{key}/majority/accuracy"] == stored["majority_baseline"]
            assert summary[f"{key}/majority/class"] == stored["majority_class"]
            assert (
                summary[f"{key}/subject_majority/accuracy"] == stored["subject_majority_baseline"]
            )
        assert summary[f"test/{unit}/mean_balanced_accuracy"] == pytest.approx(
            level["mean_balanced_accuracy"]
        )
        assert summary[f"test/{unit}/overall/accuracy"] == level["overall"]["accuracy"]
    trial = test["trial_level"]["valence"]
    assert summary["test/trial/valence/accuracy/p_value"] == trial["p_value_accuracy_vs_majority"]
    assert "test/window/valence/accuracy/p_value" not in summary  # windows are not independent


def test_val_metrics_are_summarized_at_their_best_with_the_best_step(runs):
    run_dir = runs["train"]
    results = json.loads((run_dir / "results.json").read_text())
    offline = OfflineRun(run_dir)
    defined = {m.name: m.summary for m in offline.of("metric")}
    assert defined["val/loss"].min and not defined["val/loss"].max
    for name in ("val/mean_balanced_accuracy", "val/valence/balanced_accuracy"):
        assert defined[name].max
    summary = offline.summary()
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in rows if "val/loss" in r]
    best = max(r["val/mean_balanced_accuracy"] for r in val)
    assert summary["val/mean_balanced_accuracy"] == {"max": best}
    assert summary["val/loss"] == {"min": min(r["val/loss"] for r in val)}
    assert summary["val/best_step"] == results["best"]["step"] == summary["best/step"]
    assert summary["val/best/mean_balanced_accuracy"] == results["best"]["value"]


def test_tables_and_confusion_matrix_charts(runs):
    run_dir = runs["train"]
    test = json.loads((run_dir / "results.json").read_text())["test"]
    offline = OfflineRun(run_dir)
    subjects = offline.table("test/per_subject")
    assert subjects["columns"][:5] == [
        "subject",
        "target",
        "trials",
        "accuracy",
        "balanced_accuracy",
    ]
    by_row = {(row[0], row[1]): row for row in subjects["data"]}
    assert len(by_row) == len(test["per_subject"]) * len(TARGETS)
    for subject, targets in test["per_subject"].items():
        for target, stored in targets.items():
            row = by_row[(int(subject), target)]
            assert row[2:5] == [stored["trials"], stored["accuracy"], stored["balanced_accuracy"]]
    windows = offline.table("test/predictions/windows")
    assert windows["columns"] == [
        "subject",
        "trial",
        "window",
        "target",
        "label",
        "predicted",
        "p_low",
        "p_high",
    ]
    assert len(windows["data"]) == test["valence"]["support"] * len(TARGETS)
    trials = offline.table("test/predictions/trials")
    assert trials["columns"] == ["subject", "trial", *windows["columns"][3:]]
    assert len(trials["data"]) == test["trial_level"]["valence"]["support"] * len(TARGETS)
    # Every row against the run's own predictions: per target its label and each class's
    # probability, per window and (their mean) per trial.
    with np.load(run_dir / "predictions_test.npz") as z:
        probs, labels, rows = z["probs"].astype(np.float64), z["labels"], z["rows"]
    expected_windows, by_trial = {}, {}
    for n, (subject, trial, window) in enumerate(rows.tolist()):
        by_trial.setdefault((subject, trial), []).append(n)
        for j, target in enumerate(TARGETS):
            expected_windows[(subject, trial, window, target)] = (labels[n, j], probs[n, j])
    expected_trials = {
        (*key, target): (labels[at[0], j], probs[at, j].mean(0))
        for key, at in by_trial.items()
        for j, target in enumerate(TARGETS)
    }
    for table, expected, width in ((windows, expected_windows, 4), (trials, expected_trials, 3)):
        seen = set()
        for row in table["data"]:
            key, (label, predicted, *p) = tuple(row[:width]), row[width:]
            true_label, true_p = expected[key]
            assert (label, predicted) == (NAMES[true_label], NAMES[true_p.argmax()]), row
            np.testing.assert_allclose(p, true_p, rtol=1e-6, err_msg=str(row))
            seen.add(key)
        assert seen == set(expected)

    # W&B's own chart (a Vega panel over a table of counts) next to the PNG.
    charts = {
        "/".join(u.nested_key[2:]): json.loads(u.value_json)
        for c in offline.of("config")
        for u in c.update
        if list(u.nested_key[:2]) == ["_wandb", "visualize"]
    }
    for unit, level in (("window", test), ("trial", test["trial_level"])):
        for target in TARGETS:
            chart = charts[f"test/{unit}/{target}/confusion_matrix"]
            assert chart["panel_config"]["panelDefId"] == "wandb/confusion_matrix/v1"
            cells = offline.table(f"test/{unit}/{target}/confusion_matrix_table")
            counts = {(a, p): n for a, p, n in cells["data"]}
            matrix = [[counts.get((NAMES[i], NAMES[j]), 0) for j in (0, 1)] for i in (0, 1)]
            assert matrix == level[target]["confusion_matrix"]
    history = offline.history()
    assert "test_trials_confusion_valence" in history  # the PNG stays


def test_best_model_is_a_model_artifact_with_its_aliases(runs):
    run_dir = runs["train"]
    offline = OfflineRun(run_dir)
    [model] = [a for a in offline.of("artifact") if a.type == "model"]
    status = json.loads((run_dir / "status.json").read_text())
    assert {"best", f"step-{status['global_step']}"} <= set(model.aliases)
    files = {entry.path for entry in model.manifest.contents}
    assert {"adapter/adapter_model.safetensors", "head.safetensors", "preprocessor.json"} <= files
    assert files == {
        str(p.relative_to(run_dir / "best")) for p in (run_dir / "best").rglob("*") if p.is_file()
    }


def test_job_types_and_groups_of_a_fold_a_baseline_and_a_cv_aggregate(runs):
    fold = OfflineRun(runs["train"]).run
    assert (fold.job_type, fold.run_group) == ("fold", "grp")
    cv_dir = runs["cv"]
    for i in (0, 1):
        baseline = OfflineRun(cv_dir / f"fold-{i}")
        assert (baseline.run.job_type, baseline.run.run_group) == ("baseline", "cvb")
        assert baseline.run.display_name == f"cvb-fold-{i}"
        assert "test/trial/valence/balanced_accuracy/ci_low" in baseline.summary()
    aggregate = OfflineRun(cv_dir)
    assert (aggregate.run.job_type, aggregate.run.run_group) == ("cv", "cvb")
    assert aggregate.run.display_name == "cvb-cv"
    pooled = json.loads((cv_dir / "cv_results.json").read_text())
    summary = aggregate.summary()
    assert (
        summary["cv/pooled/trial/valence/balanced_accuracy"]
        == pooled["pooled"]["trials"]["valence"]["balanced_accuracy"]
    )
    assert (
        summary["cv/trial/valence/balanced_accuracy/mean"]
        == pooled["test_trials"]["valence"]["balanced_accuracy"]["mean"]
    )
    folds = aggregate.table("cv/folds")
    assert [row[:2] for row in folds["data"]] == [[f"fold-{i}", t] for i in (0, 1) for t in TARGETS]
