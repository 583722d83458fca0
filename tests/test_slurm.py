"""The SLURM templates on a real one-node SLURM (munge + slurmctld + slurmd on loopback)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from eeg_emotion.data.splits import session_of
from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic
from tests.helpers import slurm
from tests.helpers.paths import ROOT
from tests.helpers.training import RUN_FILES

# One cluster for this file: `make test` (--dist loadfile) runs a file in one pytest-xdist worker.
pytestmark = [pytest.mark.slow, pytest.mark.cluster]
EPOCH_STEPS = 15  # tiny.yaml: 15 optimizer steps per epoch
STEPS = 3 * EPOCH_STEPS  # a preemption after the first epoch resumes mid-epoch, with room to stop
SUBJECTS, SESSIONS, TRIALS = 2, 3, 3  # the cross-session CV's synthetic SEED-IV
# configs/tiny.yaml read as SEED-IV: 62 channels, so one 2 s band-power sub-window per window
# (248 tokens); the first phase only, a few optimizer steps.
SEED_IV = [
    "data.source=seed_iv",
    "data.options.sampling_rate=200",
    "data.labels.targets=[emotion]",
    "data.labels.num_classes=4",
    "data.tokenizer.sub_window=2s",
    "data.tokenizer.sub_stride=2s",
    "train.epochs=1",
]


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


def test_cv_sh_runs_one_fold_per_session_and_aggregates(cluster, tmp_path):
    """slurm/cv.sh with the cross_session protocol: synthetic SEED-IV of 3 sessions, one array
    task per session (its run folder and W&B run in the group), each testing that session of
    every subject on a model trained on the others, then the aggregate job."""
    root, out = tmp_path / "seed_iv", tmp_path / "cv-session"
    write_synthetic(
        "seed_iv",
        root,
        FormatSpec(subjects=SUBJECTS, sessions=SESSIONS, trials=TRIALS, seconds=(4, 4)),
    )
    data = [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", *SEED_IV]
    # Two CPUs per fold: the three folds run side by side on the node's eight.
    env = {**cluster, "EEG_SBATCH_ARGS": "--cpus-per-task=2"}
    args = ["configs/tiny.yaml", "cross_session", str(SESSIONS), str(out), *data]
    slurm.sh(env, "bash", "slurm/cv.sh", *args)
    jobs = slurm.sh(env, "squeue", "-h", "-o", "%A").split()
    slurm.wait_gone(env, *sorted(set(jobs)))

    tested, scores = [], []
    for fold in range(SESSIONS):
        run = out / f"fold-{fold}"
        assert json.loads((run / "status.json").read_text())["status"] == "finished", fold
        config = (run / "config.yaml").read_text()
        assert "protocol: cross_session" in config and f"fold: {fold}" in config
        assert "group: cv-session" in config and f"name: cv-session-fold-{fold}" in config
        split = json.loads((run / "splits.json").read_text())
        # The fold's test part is session fold + 1 of every subject, all of it; train and val
        # hold the other sessions only.
        test = split["test"]
        assert {session_of(t) for _, t in test} == {fold + 1}
        assert len(test) == SUBJECTS * TRIALS and {s for s, _ in test} == {1, 2}
        others = split["train"] + split["val"]
        assert fold + 1 not in {session_of(t) for _, t in others} and split["val"]
        tested += [tuple(k) for k in test]
        result = json.loads((run / "results.json").read_text())
        scores.append(result["test"]["emotion"]["balanced_accuracy"])
    assert len(tested) == len(set(tested)) == SUBJECTS * SESSIONS * TRIALS
    summary = json.loads((out / "cv_results.json").read_text())
    assert summary["folds"] == [f"fold-{i}" for i in range(SESSIONS)] and summary["missing"] == []
    assert summary["pooled"]["trials"]["emotion"]["support"] == SUBJECTS * SESSIONS * TRIALS
    mean = summary["test"]["emotion"]["balanced_accuracy"]["mean"]
    assert mean == pytest.approx(sum(scores) / SESSIONS)
    table = (out / "cv_results.md").read_text()
    assert "| emotion |" in table and "±" in table
