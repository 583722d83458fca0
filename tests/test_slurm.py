"""The SLURM templates on a real one-node SLURM (munge + slurmctld + slurmd on loopback)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import slurm
from tests.helpers.paths import ROOT
from tests.helpers.training import RUN_FILES

# One cluster for this file: `make test` (--dist loadfile) runs a file in one pytest-xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.cluster]
EPOCH_STEPS = 15  # tiny.yaml: 15 optimizer steps per epoch
STEPS = 3 * EPOCH_STEPS  # a preemption after the first epoch resumes mid-epoch, with room to stop


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[dict[str, str]]:
    # Ports and job ids apart from tests/test_slurm_multinode.py's cluster.
    with slurm.local_cluster(tmp_path_factory.mktemp("slurm"), port=16917) as env:
        yield env


def submit(
    env: dict, run_dir: Path, root: Path, cache: Path, *extra: str, script_env: dict | None = None
) -> str:
    epochs = f"train.epochs={STEPS // EPOCH_STEPS}"
    env = {**env, **(script_env or {})}
    return slurm.submit_training(
        env, run_dir, root, cache, epochs, "train.checkpoint_every=3", *extra
    )


@pytest.fixture(scope="module")
def reference(cluster, tiny_root, tmp_path_factory) -> Path:
    """An uninterrupted job: also the test that sbatch trains to a complete run folder."""
    base = tmp_path_factory.mktemp("slurm-runs")
    run_dir = base / "reference"
    job = submit(cluster, run_dir, tiny_root, base / "cache")
    slurm.wait_gone(cluster, job)
    return run_dir


def test_sbatch_trains_to_a_complete_run_folder(reference):
    for name in RUN_FILES:
        assert (reference / name).exists(), name
    assert json.loads((reference / "status.json").read_text())["status"] == "finished"
    [log] = list((reference / "logs").glob("slurm-*.log"))
    assert "finished" in log.read_text() and "requeue" not in log.read_text()
    assert slurm.train_steps(reference) == list(range(1, STEPS + 1))


def test_a_job_killed_mid_checkpoint_then_preempted_resumes_each_time(
    cluster, tiny_root, reference, tmp_path
):
    """One job, two ends: its first run dies while publishing checkpoint step-6 (as a SIGKILL
    would), train.sh requeues it and it resumes from step-3; that run is then preempted past
    the first epoch, requeued by SLURM, and resumes mid-epoch. It ends exactly where the
    uninterrupted job ends, with no step lost or repeated."""
    run_dir = tmp_path / "killed"
    helper = str(ROOT / "tests" / "helpers" / "crash_in_checkpoint.py")
    job = submit(
        cluster,
        run_dir,
        tiny_root,
        reference.parent / "cache",
        script_env={"EEG_TRAIN_SCRIPT": helper},
    )
    # Signal it past the first epoch, as --signal=B:USR1@... would: the resumed run must then
    # restore a mid-run epoch, not start over at epoch 0.
    record, log = slurm.preempt(cluster, job, run_dir, after=EPOCH_STEPS + 1, restarts=2)
    assert record["ExitCode"] == "0:0"
    assert "with status 'running': requeueing (restart 1 of 3)" in log  # the kill, then requeue
    train_log = (run_dir / "train.log").read_text()
    assert f"resumed from {run_dir / 'checkpoints' / 'step-3'}\n" in train_log
    assert slurm.train_steps(run_dir) == list(range(1, STEPS + 1)), (
        "a completed step was lost or repeated"
    )
    res, ref = (json.loads((d / "results.json").read_text()) for d in (run_dir, reference))
    assert res["test"] == ref["test"] and res["val"] == ref["val"]


def test_a_job_that_keeps_failing_gives_up(cluster, tiny_root, reference, tmp_path):
    run_dir = tmp_path / "broken"
    job = submit(
        cluster,
        run_dir,
        tiny_root,
        reference.parent / "cache",
        script_env={"EEG_TRAIN_SCRIPT": "/nonexistent/train.py", "EEG_MAX_RESTARTS": "1"},
    )
    slurm.wait_gone(cluster, job)
    record = slurm.job_record(cluster, job)  # requeued once by the script, then failed for good
    assert (record["JobState"], record["Restarts"], record["ExitCode"]) == ("FAILED", "1", "1:0")
    log = slurm.job_log(run_dir)
    assert log.count("requeueing") == 1 and "after 1 restarts: giving up" in log


def test_invalid_settings_fail_at_once_without_requeue(cluster, tmp_path):
    out = subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--output={tmp_path}/out-%j.txt",
            "slurm/train.sh",
            "configs/tiny.yaml",
            "train.epoks=1",
        ],
        cwd=ROOT,
        env=cluster,
        capture_output=True,
        text=True,
        timeout=60,
    )
    job = out.stdout.strip()
    slurm.wait_gone(cluster, job)
    record = slurm.job_record(cluster, job)  # failed with the script's exit code, never requeued
    assert (record["JobState"], record["Restarts"], record["ExitCode"]) == ("FAILED", "0", "2:0")
    text = next(tmp_path.glob("out-*.txt")).read_text()
    assert "unknown key 'train.epoks'" in text and "not training" in text


def test_cv_array_and_aggregate(cluster, tiny_root, reference, tmp_path):
    out_dir = tmp_path / "cv"
    slurm.sh(
        cluster,
        "bash",
        "slurm/cv.sh",
        "configs/tiny.yaml",
        "kfold",
        "2",
        str(out_dir),
        f"data.root={tiny_root}",
        f"data.cache_dir={reference.parent / 'cache'}",
        "train.epochs=1",
    )
    jobs = slurm.sh(cluster, "squeue", "-h", "-o", "%A").split()
    slurm.wait_gone(cluster, *sorted(set(jobs)))
    for fold in (0, 1):
        config = (out_dir / f"fold-{fold}" / "config.yaml").read_text()
        assert f"fold: {fold}" in config and "group: cv" in config
    summary = json.loads((out_dir / "cv_results.json").read_text())
    assert summary["folds"] == ["fold-0", "fold-1"] and summary["missing"] == []
    table = (out_dir / "cv_results.md").read_text()
    assert "| valence |" in table and "±" in table
    folds = [json.loads((out_dir / f"fold-{i}" / "results.json").read_text()) for i in (0, 1)]
    mean = (
        folds[0]["test"]["valence"]["balanced_accuracy"]
        + folds[1]["test"]["valence"]["balanced_accuracy"]
    ) / 2
    assert summary["test"]["valence"]["balanced_accuracy"]["mean"] == pytest.approx(mean)
