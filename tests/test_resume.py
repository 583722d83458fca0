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
from typing import NoReturn

import pytest

from eeg_emotion import fileio
from eeg_emotion.errors import ConfigError
from eeg_emotion.training import checkpoint, stopping
from tests.helpers.paths import ROOT
from tests.helpers.training import (
    PY,
    accelerate,
    assert_same_model,
    assert_same_run,
    command,
    finish,
    lora_trained,
    loss_rows,
    results,
    run,
    run_until_stop_file,
    start,
    status,
    stop_when,
)

pytestmark = pytest.mark.slow
LORA_STEP = 16  # configs/tiny.yaml: 15 optimizer steps per epoch, LoRA trains from epoch 1


@pytest.fixture(scope="module")
def uninterrupted(tiny_root, cache, tmp_path_factory) -> Path:
    """Reference run for the resume tests: 2 epochs, checkpoints every 3 steps."""
    run_dir = tmp_path_factory.mktemp("runs") / "reference"
    run(command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1"))
    return run_dir


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose prerequisite this machine lacks; under CI, which has it, fail."""
    __tracebackhide__ = True  # the skip or failure is reported at the test's line
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI=true: the CI machine must have it)")
    pytest.skip(reason)


def assert_mid_lora(folder: Path) -> None:
    """The checkpoint was saved inside epoch 1: the phase that trains LoRA (configs/tiny.yaml),
    so the adapter, its dropout and its optimizer state are all interrupted."""
    saved = checkpoint.read_state(folder)["run"]
    assert saved["epoch"] == 1 and 0 < saved["batches_done"] < 15, saved
    assert saved["global_step"] == 15 + saved["batches_done"]


@pytest.mark.parametrize("how", ["file", "kill9"])  # SIGUSR1: test_resume_qlora.py
def test_stop_mid_lora_then_resume_equals_uninterrupted(
    tiny_root, cache, tmp_path, uninterrupted, how
):
    """With the default LoRA dropout (0.1): resume is exact, not just close."""
    run_dir = tmp_path / "stopped"
    cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
    # Asked for in epoch 1; a stop is taken at the next poll (step 20: stop_check_every=10),
    # a kill leaves the periodic checkpoint before it (step 18 or later).
    if how == "kill9":  # no checkpoint of its own: the newest periodic one is resumed
        proc = start(cmd)
        stop_when(run_dir, LORA_STEP + 3, how, proc)
        finish(proc)
        assert proc.returncode == -signal.SIGKILL
        resumed_from, skipped = checkpoint.latest_verified(run_dir)
        assert resumed_from is not None and not skipped
    else:
        run_until_stop_file(cmd, run_dir, LORA_STEP)
        assert status(run_dir) == "stopped"
        stopped_at = json.loads((run_dir / "status.json").read_text())["global_step"]
        resumed_from = run_dir / "checkpoints" / f"step-{stopped_at}"
    assert_mid_lora(resumed_from)

    run(cmd)  # the same command again resumes
    assert f"resumed from {resumed_from}\n" in (run_dir / "train.log").read_text()
    assert lora_trained(uninterrupted)
    assert_same_run(run_dir, uninterrupted)  # adapter, head, loss rows, results
    steps = [step for step, _ in loss_rows(run_dir)["train/loss"]]
    assert steps == list(range(1, 31)), "a completed step was lost or repeated"


@pytest.fixture(scope="module")
def stopped_twice_saved(tiny_root, cache, tmp_path_factory) -> Path:
    """A run stopped mid-epoch-0 with two checkpoints (periodic and the stop's own)."""
    run_dir = tmp_path_factory.mktemp("runs") / "stopped"
    cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
    run_until_stop_file(cmd, run_dir, 5)
    assert [p.name for p in sorted((run_dir / "checkpoints").iterdir())] == ["step-10", "step-9"]
    return run_dir


@pytest.mark.parametrize(
    "damage",
    # missing optimizer, missing state, weights cut short, weights missing
    ["optimizer.bin", "trainer_state.json", "truncate", "model_0"],
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
    reason = {
        "optimizer.bin": "optimizer.bin is missing",
        "trainer_state.json": "trainer_state.json is missing",
        "truncate": "model_0/head.safetensors has 100 bytes",
        "model_0": "model_0/",  # the first of its files that the manifest lists
    }
    [line] = [line for line in log.splitlines() if "skipping checkpoint step-10: " in line]
    assert reason[damage] in line.split("skipping checkpoint step-10: ")[1], line
    assert damage == "truncate" or line.endswith(" is missing"), line
    assert f"resumed from {run_dir / 'checkpoints' / 'step-9'}" in log
    assert results(run_dir)["test"] == results(uninterrupted)["test"]
    assert_same_model(run_dir, uninterrupted)


def test_resume_from_a_named_checkpoint_and_a_bad_one_refused(
    tiny_root, cache, tmp_path, uninterrupted, stopped_twice_saved
):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_twice_saved, run_dir)
    before = {p.name: checkpoint.verify(p) for p in checkpoint.checkpoint_dirs(run_dir)}
    assert before == {"step-9": None, "step-10": None}
    rows = (run_dir / "metrics.jsonl").read_text()
    every = ("train.checkpoint_every=3", "train.log_every=1")
    missing = tmp_path / "no-such-checkpoint"
    out = run(command(tiny_root, cache, run_dir, *every, f"train.resume={missing}"), expect=2)
    assert f"train.resume={missing}: {missing} does not exist" in out.stderr, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert (run_dir / "metrics.jsonl").read_text() == rows  # refused: nothing trained
    assert {p.name: checkpoint.verify(p) for p in checkpoint.checkpoint_dirs(run_dir)} == before

    # The older of the two (auto would take step-10): the run goes on from there.
    older = run_dir / "checkpoints" / "step-9"
    run(command(tiny_root, cache, run_dir, *every, f"train.resume={older}"))
    log = (run_dir / "train.log").read_text()
    assert f"resumed from {older}\n" in log and "skipping checkpoint" not in log
    assert_same_run(run_dir, uninterrupted)
    steps = [step for step, _ in loss_rows(run_dir)["train/loss"]]
    assert steps == list(range(1, 31)), "rows after the named checkpoint must be logged again"


def test_crash_mid_save_resumes_from_the_previous_checkpoint(
    tiny_root, cache, tmp_path, uninterrupted
):
    run_dir = tmp_path / "crashed"
    cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
    crash = [PY, str(ROOT / "tests" / "helpers" / "crash_in_checkpoint.py"), *cmd[2:]]
    run(crash, expect=137)
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


def test_ctrl_c_and_a_killed_launcher_stop_with_a_checkpoint(
    tiny_root, cache, tmp_path, uninterrupted
):
    # Ctrl-C: a checkpoint, one line, status stopped, exit 3 - no traceback.
    run_dir = tmp_path / "ctrl-c"
    cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
    proc = start(cmd)
    stop_when(run_dir, 5, "sigint", proc)
    err = finish(proc)
    assert proc.returncode == 3 and "Traceback" not in err, err[-3000:]
    assert "stopping at the next checkpoint" in err and status(run_dir) == "stopped"

    # SIGTERM to `accelerate launch`: the launcher goes at once; its worker must not train on,
    # detached - it gets SIGTERM as its parent dies, checkpoints and stops.
    run_dir = tmp_path / "launcher"
    launcher = accelerate(29621, "--num_processes", "1")
    cmd = command(
        tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1",
        launcher=launcher,
    )  # fmt: skip
    proc = start(cmd)
    stop_when(run_dir, LORA_STEP, "sigterm", proc)
    finish(proc)
    deadline = time.time() + 120
    while status(run_dir) == "running" and time.time() < deadline:
        time.sleep(0.2)
    assert status(run_dir) == "stopped"  # a worker left training on would finish the run
    time.sleep(2)
    rows = (run_dir / "metrics.jsonl").read_text()
    time.sleep(3)
    assert (run_dir / "metrics.jsonl").read_text() == rows  # nobody is writing any more
    assert not (run_dir / ".lock").exists()
    # The stop's own checkpoint, complete, mid-LoRA; the same command resumes it exactly.
    stopped_at = json.loads((run_dir / "status.json").read_text())["global_step"]
    newest, skipped = checkpoint.latest_verified(run_dir)
    assert newest == run_dir / "checkpoints" / f"step-{stopped_at}" and not skipped
    assert_mid_lora(newest)
    # The launch script alone resumes it (in this process: the launcher's part is over).
    run(command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1"))
    assert f"resumed from {newest}\n" in (run_dir / "train.log").read_text()
    assert_same_run(run_dir, uninterrupted)


def test_a_second_ctrl_c_stops_at_once_without_a_checkpoint(tiny_root, cache, tmp_path):
    run_dir = tmp_path / "twice"
    # Polled once in 1000 steps: the first Ctrl-C alone cannot end this run before the second.
    cmd = command(
        tiny_root, cache, run_dir, "train.log_every=1", "train.stop_check_every=1000",
        "train.epochs=6",
    )  # fmt: skip
    proc = start(cmd)
    stop_when(run_dir, 2, "sigint", proc)
    assert proc.stderr is not None
    # The second once the first is handled and training went on (the next progress line):
    # signals that arrive together count as one.
    lines = iter(proc.stderr)
    for line in lines:
        if "stopping at the next checkpoint (Ctrl-C again to abort)" in line:
            next(lines, None)
            break
    proc.send_signal(signal.SIGINT)
    err = finish(proc, timeout=120)
    assert proc.returncode == -signal.SIGINT, err[-3000:]  # an uncaught KeyboardInterrupt
    assert "KeyboardInterrupt" in err
    log = (run_dir / "train.log").read_text()
    assert "stop requested" not in log and "interrupted (Ctrl-C) without a checkpoint" in log
    assert status(run_dir) == "stopped"  # the same command resumes from the last checkpoint
    # No checkpoint for the stop (only those of finished epochs), nothing evaluated on test.
    assert all(int(p.name[5:]) % 15 == 0 for p in checkpoint.checkpoint_dirs(run_dir))
    assert max(step for step, _ in loss_rows(run_dir)["train/loss"]) < 90
    assert not (run_dir / "results.json").exists() and not (run_dir / ".lock").exists()


def test_train_resume_names_a_path_that_is_not_a_checkpoint_and_why(tmp_path, monkeypatch):
    def refusal(resume: str) -> str:
        with pytest.raises(ConfigError) as refused:
            checkpoint.resolve_resume(resume, tmp_path / "run")
        return str(refused.value)

    missing = tmp_path / "run" / "checkpoints" / "step-30"
    assert refusal(str(missing)) == f"train.resume={missing}: {missing} does not exist"
    monkeypatch.chdir(tmp_path)  # a relative path: also where it was looked for
    assert refusal("step-3") == f"train.resume=step-3: {tmp_path / 'step-3'} does not exist"
    (tmp_path / "step-4").write_text("")
    assert refusal("step-4") == (
        f"train.resume=step-4: {tmp_path / 'step-4'} is a file, not a checkpoint folder"
    )
    (tmp_path / "step-5").mkdir()  # there, but never completed
    assert (
        refusal("step-5")
        == "train.resume=step-5: not a usable checkpoint: no manifest (incomplete)"
    )


def test_a_stop_reason_names_what_asked_for_it(tmp_path, monkeypatch):
    """A distributed stop reaches the ranks that were not asked themselves: their reason says
    so, not that a STOP file was found (the trigger is one collective flag)."""
    monkeypatch.setattr(stopping, "_term_when_parent_dies", lambda: None)  # not on pytest
    handlers = {
        sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
    }
    try:
        stop = stopping.StopRequest(tmp_path)
        assert not stop.requested()
        assert stop.reason() == "on another rank; this one had no signal and no STOP file"
        (tmp_path / "STOP").write_text("")
        assert stop.requested() and stop.reason() == str(tmp_path / "STOP")
        (tmp_path / "STOP").unlink()
        os.kill(os.getpid(), signal.SIGUSR1)  # handled before the next bytecode runs
        assert stop.requested() and stop.reason() == "SIGUSR1"
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def test_a_full_disk_fails_cleanly_and_the_run_resumes_from_its_last_checkpoint(
    tiny_root, cache, tmp_path, request
):
    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        unavailable("a full disk is a small tmpfs mounted for the test: needs root and mount")
    mount = ["mount", "-t", "tmpfs", "-o", "size=1600k", "tmpfs", str(small)]
    mounted = subprocess.run(mount, capture_output=True, text=True)
    if mounted.returncode != 0:
        unavailable(f"cannot mount a small tmpfs, even as root: {mounted.stderr.strip()}")
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
    uninterrupted = request.getfixturevalue("uninterrupted")  # only now: a skip trains nothing
    assert results(moved)["test"] == results(uninterrupted)["test"]
    assert_same_model(moved, uninterrupted)
