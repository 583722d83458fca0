"""Stopping, crashing and resuming, as users hit them: every way a run can end early comes
back to exactly the uninterrupted result, with the default settings (LoRA dropout 0.1)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from eeg_emotion import fileio
from eeg_emotion.training import checkpoint
from tests.helpers.paths import ROOT
from tests.helpers.training import (
    PY,
    accelerate,
    assert_same_model,
    command,
    results,
    run,
    status,
    stop_when,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def uninterrupted(tiny_root, cache, tmp_path_factory) -> Path:
    """Reference run for the resume tests: 2 epochs, checkpoints every 3 steps."""
    run_dir = tmp_path_factory.mktemp("runs") / "reference"
    run(command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1"))
    return run_dir


@pytest.mark.parametrize("how", ["file", "sigusr1", "kill9"])
def test_stop_then_resume_equals_uninterrupted(tiny_root, cache, tmp_path, uninterrupted, how):
    """With the default LoRA dropout (0.1): resume is exact, not just close."""
    run_dir = tmp_path / "stopped"
    cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stop_when(run_dir, 5, how, proc)
    _, err = proc.communicate(timeout=600)
    if how == "kill9":  # no checkpoint of its own: the newest periodic one is resumed
        assert proc.returncode == -signal.SIGKILL
        run(cmd)
        assert "resumed from" in (run_dir / "train.log").read_text()
        assert results(run_dir)["test"] == results(uninterrupted)["test"]
        assert_same_model(run_dir, uninterrupted)
        steps = [
            r["step"]
            for r in map(json.loads, (run_dir / "metrics.jsonl").open())
            if "train/loss" in r
        ]
        assert steps == list(range(1, 31)), "a completed step was lost or repeated"
        return
    assert proc.returncode == 3, err[-3000:]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "stopped"
    stopped_at = json.loads((run_dir / "status.json").read_text())["global_step"]
    saved = json.loads(
        (run_dir / "checkpoints" / f"step-{stopped_at}" / "trainer_state.json").read_text()
    )
    assert 5 <= stopped_at < 15 and saved["run"]["epoch"] == 0  # 15 steps per epoch: mid-epoch
    assert saved["run"]["batches_done"] == stopped_at

    run(cmd)  # the same command again resumes
    assert (
        f"resumed from {run_dir / 'checkpoints' / f'step-{stopped_at}'}"
        in (run_dir / "train.log").read_text()
    )
    assert results(run_dir)["test"] == results(uninterrupted)["test"]
    assert results(run_dir)["val"] == results(uninterrupted)["val"]
    assert_same_model(run_dir, uninterrupted)
    steps = [
        json.loads(line)["step"]
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if "train/loss" in line
    ]
    assert steps == list(range(1, 31)), "a completed step was lost or repeated"


@pytest.fixture(scope="module")
def stopped_twice_saved(tiny_root, cache, tmp_path_factory) -> Path:
    """A run stopped mid-epoch-0 with two checkpoints (periodic and the stop's own)."""
    run_dir = tmp_path_factory.mktemp("runs") / "stopped"
    cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stop_when(run_dir, 5, "file", proc)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 3, err[-3000:]
    assert [p.name for p in sorted((run_dir / "checkpoints").iterdir())] == ["step-10", "step-9"]
    return run_dir


@pytest.mark.parametrize(
    "damage",
    ["optimizer.bin", "trainer_state.json", "truncate"],  # missing, missing state, cut short
)
def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(
    tiny_root, cache, tmp_path, uninterrupted, stopped_twice_saved, damage
):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_twice_saved, run_dir)
    newest = run_dir / "checkpoints" / "step-10"
    if damage == "truncate":
        target = newest / "model_0" / "head.safetensors"
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "model_0":
        shutil.rmtree(newest / damage)
    else:
        (newest / damage).unlink()
    cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
    run(cmd)
    log = (run_dir / "train.log").read_text()
    assert "skipping checkpoint step-10:" in log
    assert f"resumed from {run_dir / 'checkpoints' / 'step-9'}" in log
    assert results(run_dir)["test"] == results(uninterrupted)["test"]
    assert_same_model(run_dir, uninterrupted)


def test_crash_mid_save_resumes_from_the_previous_checkpoint(
    tiny_root, cache, tmp_path, uninterrupted
):
    run_dir = tmp_path / "crashed"
    cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
    crash = [PY, str(ROOT / "tests" / "helpers" / "crash_in_checkpoint.py"), *cmd[2:]]
    crashed = subprocess.run(crash, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert crashed.returncode == 137
    assert (run_dir / "checkpoints" / ".tmp-step-6").is_dir()  # the half-published checkpoint
    assert not (run_dir / "checkpoints" / "step-6").exists()
    run(cmd)
    log = (run_dir / "train.log").read_text()
    assert "taking over the run folder's lock: process" in log  # the killed run left its lock
    assert "removed .tmp-step-6, left half-written by an earlier job" in log
    assert "resumed from" in log
    assert "step-3" in (run_dir / "train.log").read_text().split("resumed from")[-1].splitlines()[0]
    assert results(run_dir)["test"] == results(uninterrupted)["test"]
    assert_same_model(run_dir, uninterrupted)


def killed_inside(publish: AbstractContextManager[Path]) -> None:
    """Enter `publish` in a child process that writes into the temporary path and dies there
    like a SIGKILL (no cleanup): the leftover a crash mid-save leaves."""
    pid = os.fork()
    if pid == 0:
        with publish as tmp:
            (tmp / "part" if tmp.is_dir() else tmp).write_text("half")
            os._exit(137)
    _, code = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(code) == 137


def test_a_launch_removes_what_saves_killed_midway_left(tmp_path):
    run_dir = tmp_path / "run"
    ckpts = run_dir / "checkpoints"
    (ckpts / "step-3").mkdir(parents=True)
    (ckpts / ".tmp-step-6").mkdir()  # save_checkpoint: written, not yet published
    (ckpts / ".old-step-6").mkdir()  # swap_in: killed between its two renames
    (run_dir / "best").mkdir()
    (run_dir / "metrics.jsonl").write_text("")
    killed_inside(fileio.publish_dir(run_dir / "best", replace=True))  # as in save_best
    killed_inside(fileio.publish_file(run_dir / "metrics.jsonl"))  # as in MetricsLog.drop_after
    assert len(list(run_dir.iterdir())) == 5  # the two leftovers beside the three above

    removed = checkpoint.remove_leftovers(run_dir)
    assert len(removed) == 4
    assert sorted(p.name for p in run_dir.iterdir()) == ["best", "checkpoints", "metrics.jsonl"]
    assert [p.name for p in ckpts.iterdir()] == ["step-3"]
    assert (run_dir / "metrics.jsonl").read_text() == ""


def test_resume_never_starts_fresh_and_auto_continues(tiny_root, cache, tmp_path):
    run_dir = tmp_path / "fresh"
    run(command(tiny_root, cache, run_dir, "train.epochs=1"))
    first = results(run_dir)
    run(command(tiny_root, cache, run_dir, "train.epochs=1", "train.resume=never"))
    log = (run_dir / "train.log").read_text()
    assert "resumed from" not in log and log.count("1 process(es) on cpu") == 2
    train_steps = [
        json.loads(line)["step"]
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if "train/loss" in line
    ]
    assert train_steps.count(2) == 2  # both runs trained from the start
    run(command(tiny_root, cache, run_dir, "train.epochs=1"))  # resume=auto on a finished run
    assert "resumed from" in (run_dir / "train.log").read_text()
    assert results(run_dir)["test"] == first["test"]


def test_ctrl_c_and_a_killed_launcher_stop_with_a_checkpoint(tiny_root, cache, tmp_path):
    # Ctrl-C: a checkpoint, one line, status stopped, exit 3 - no traceback.
    run_dir = tmp_path / "ctrl-c"
    cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stop_when(run_dir, 5, "sigint", proc)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 3 and "Traceback" not in err, err[-3000:]
    assert "stopping at the next checkpoint" in err and status(run_dir) == "stopped"

    # SIGTERM to `accelerate launch`: the launcher goes at once; its worker must not train on,
    # detached - it gets SIGTERM as its parent dies, checkpoints and stops.
    run_dir = tmp_path / "launcher"
    launcher = accelerate(29621, "--num_processes", "1")
    cmd = command(
        tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1",
        "train.epochs=6", launcher=launcher,
    )  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stop_when(run_dir, 5, "sigterm", proc)
    proc.communicate(timeout=600)
    deadline = time.time() + 120
    while status(run_dir) == "running" and time.time() < deadline:
        time.sleep(0.2)
    assert status(run_dir) == "stopped"
    time.sleep(2)
    rows = (run_dir / "metrics.jsonl").read_text()
    time.sleep(3)
    assert (run_dir / "metrics.jsonl").read_text() == rows  # nobody is writing any more
    assert not (run_dir / ".lock").exists()


def test_a_full_disk_fails_cleanly_and_the_run_resumes_from_its_last_checkpoint(
    tiny_root, cache, tmp_path, uninterrupted
):
    small = tmp_path / "small"
    small.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=1600k", "tmpfs", str(small)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        run_dir = small / "run"
        cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
        out = run(cmd, expect=2)
        assert "No space left on device" in out.stderr, out.stderr[-3000:]
        assert "the checkpoints saved before are intact" in out.stderr
        assert "Traceback" not in out.stderr
        status = json.loads((run_dir / "status.json").read_text())
        assert status["status"] == "failed" and "No space left" in status["message"]
        assert not list((run_dir / "checkpoints").glob(".tmp-*"))  # its space given back
        moved = tmp_path / "moved"  # e.g. the user moves the run to a bigger disk
        shutil.copytree(run_dir, moved)
    finally:
        subprocess.run(["umount", str(small)], check=True)
    newest, skipped = checkpoint.latest_verified(moved)
    assert newest is not None and not skipped
    run(command(tiny_root, cache, moved, "train.checkpoint_every=3", "train.log_every=1"))
    assert f"resumed from {newest}" in (moved / "train.log").read_text()
    assert results(moved)["test"] == results(uninterrupted)["test"]
    assert_same_model(moved, uninterrupted)
