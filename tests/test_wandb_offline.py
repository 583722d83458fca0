"""A baseline and a CV group's aggregate with W&B unreachable (a port on this machine that refuses
connections, as from a compute node without internet): each logs offline with one warning and
still writes its results; WANDB_JOB_TYPE sets the job type of both runs. Both commands
run in-process through their own `main`."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from eeg_emotion.cli import aggregate as aggregate_cli
from eeg_emotion.cli import baseline as baseline_cli
from eeg_emotion.config import load_settings
from eeg_emotion.evaluation import cv
from eeg_emotion.training import tracking
from tests.helpers.paths import ROOT
from tests.test_wandb_dashboard import OfflineRun

pytestmark = pytest.mark.slow

TINY_YAML = ROOT / "configs" / "tiny.yaml"
FAKE_KEY = "0123456789abcdef" * 2 + "01234567"  # 40 hex characters, like a real key
WARNING = re.compile(r"W&B unreachable .*: logging offline to (\S+); upload it later with: (.*)$")


@pytest.fixture
def unreachable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """A W&B key, and the W&B server at a port on 127.0.0.1 that nothing listens on."""
    import wandb

    for name in list(os.environ):
        if name.startswith("WANDB_"):
            monkeypatch.delenv(name)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")  # what the commands set: undone after
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield
    wandb.teardown()


def offline_run(folder: Path, caplog: pytest.LogCaptureFixture) -> OfflineRun:
    """The one offline W&B run the command in `folder` fell back to, after its one warning."""
    import wandb

    # W&B's service writes the run's file in the background: complete once the service stops.
    wandb.teardown()
    [line] = [r.getMessage() for r in caplog.records if "W&B unreachable" in r.getMessage()]
    caplog.clear()
    found = WARNING.search(line)
    assert found, line
    logged_to, sync = found.groups()
    assert sync == f"wandb sync {logged_to}"
    offline = OfflineRun(folder)
    assert offline.folder == Path(logged_to) and offline.folder.parent == folder / "wandb"
    assert offline.folder.name.endswith("-" + (folder / "wandb_run_id").read_text().strip())
    return offline


def test_baseline_and_aggregate_log_offline_when_wandb_is_unreachable(
    tiny_root, tmp_path, unreachable, monkeypatch, caplog, capsys
):
    group = tmp_path / "cvb"
    wandb = ["train.tracker.kind=wandb", "train.tracker.timeout_s=3"]
    base = [f"data.root={tiny_root}", f"data.cache_dir={tmp_path / 'cache'}", *wandb]
    base += ["baseline.c_grid=[0.1]", "data.split.protocol=kfold", "data.split.num_folds=2"]
    settings = load_settings(TINY_YAML, base)
    cv.write_group(group, "kfold", 2, settings.model_dump(mode="json"), baseline="band_power_lr")
    caplog.set_level(logging.WARNING)

    # A baseline (fold 0 of the group), its job type from the environment.
    monkeypatch.setenv("WANDB_JOB_TYPE", "job-type-from-env")
    fold = group / "fold-0"
    argv = ["--config", str(TINY_YAML), *base, "data.split.fold=0", f"output_dir={fold}"]
    assert baseline_cli.main(argv) == 0
    monkeypatch.delenv("WANDB_JOB_TYPE")
    offline = offline_run(fold, caplog)
    assert offline.run.job_type == "job-type-from-env"
    test = json.loads((fold / "results.json").read_text())["test"]
    summary = offline.summary()
    assert summary["test/window/valence/accuracy"] == test["valence"]["accuracy"]
    assert (fold / "predictions_test.npz").exists() and (fold / "test_results.txt").exists()

    # The other fold without W&B, then the aggregate, which tracks with the group's settings.
    other = [
        *base,
        "data.split.fold=1",
        f"output_dir={group / 'fold-1'}",
        "train.tracker.kind=none",
    ]
    assert baseline_cli.main(["--config", str(TINY_YAML), *other]) == 0
    capsys.readouterr()
    monkeypatch.setenv("WANDB_JOB_TYPE", "aggregate-from-env")  # its default, cv: tested below
    assert aggregate_cli.main([str(group)]) == 0
    monkeypatch.delenv("WANDB_JOB_TYPE")
    assert "mean ± sd" in capsys.readouterr().out
    offline = offline_run(group, caplog)
    assert (offline.run.job_type, offline.run.run_group) == ("aggregate-from-env", "cvb")
    results = json.loads((group / "cv_results.json").read_text())
    assert results["folds"] == ["fold-0", "fold-1"] and (group / "cv_results.md").exists()
    summary = offline.summary()
    assert summary["cv/num_folds"] == 2 and summary["cv/protocol"] == "kfold"
    pooled = results["pooled"]["trials"]["valence"]["balanced_accuracy"]
    assert summary["cv/pooled/trial/valence/balanced_accuracy"] == pooled


def test_wandb_job_type_names_each_kind_of_run_and_the_environment_overrides_all(monkeypatch):
    monkeypatch.delenv("WANDB_JOB_TYPE", raising=False)
    trial = load_settings(TINY_YAML)
    fold = load_settings(TINY_YAML, ["data.split.protocol=kfold"])
    kinds = [
        tracking.wandb_job_type(trial),
        tracking.wandb_job_type(fold),
        tracking.wandb_job_type(fold, kind="baseline"),
        tracking.wandb_job_type(fold, kind="cv"),
    ]
    assert kinds == ["train", "fold", "baseline", "cv"]
    monkeypatch.setenv("WANDB_JOB_TYPE", "sweep")
    assert {tracking.wandb_job_type(fold, kind=k) for k in ("model", "baseline", "cv")} == {"sweep"}
