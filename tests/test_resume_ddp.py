"""Two processes (CPU DDP over gloo, as `accelerate launch --multi_gpu` starts them) stopped in
the LoRA phase and resumed: exactly the uninterrupted 2-process run, with the default LoRA
dropout, so each rank must draw its own masks again after the restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eeg_emotion.training import checkpoint
from tests.helpers.training import (
    assert_resumed_exactly,
    command,
    ddp,
    finish,
    run,
    start,
    status,
    stop_when,
    worker_pid,
)

pytestmark = pytest.mark.slow
EVERY = ("train.checkpoint_every=3", "train.log_every=1")
LORA_STEP = 16  # configs/tiny.yaml: 15 optimizer steps per epoch, LoRA trains from epoch 1


@pytest.fixture(scope="module")
def uninterrupted(tiny_root, cache, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "reference"
    run(command(tiny_root, cache, run_dir, *EVERY, launcher=ddp(29631)))
    assert "2 process(es) on cpu" in (run_dir / "train.log").read_text()
    return run_dir


def test_a_stop_asked_of_one_rank_stops_both_and_resumes_exactly(
    tiny_root, cache, tmp_path, uninterrupted
):
    run_dir = tmp_path / "stopped"
    cmd = command(tiny_root, cache, run_dir, *EVERY, launcher=ddp(29632))
    proc = start(cmd)
    # SIGUSR1 to rank 1 alone: rank 0 sees no request of its own and must still stop with it,
    # in the same step (else one rank waits for the other in a collective until killed).
    stop_when(run_dir, LORA_STEP, "sigusr1", proc, pid=worker_pid(proc, 1))
    err = finish(proc)
    assert status(run_dir) == "stopped", err[-3000:]
    stopped_at = json.loads((run_dir / "status.json").read_text())["global_step"]
    log = (run_dir / "train.log").read_text()  # rank 0's: it had neither signal nor STOP file
    expected = "stop requested (on another rank; this one had no signal and no STOP file)"
    assert f"{expected}: checkpoint saved at step {stopped_at}" in log, log[-2000:]
    newest, skipped = checkpoint.latest_verified(run_dir)
    assert newest == run_dir / "checkpoints" / f"step-{stopped_at}" and not skipped
    saved = checkpoint.read_state(newest)["run"]
    assert saved["epoch"] == 1 and 0 < saved["batches_done"] < 15, saved  # mid-LoRA phase
    # Each rank saved its own random state beside the shared files.
    assert {p.name for p in newest.glob("random_states_*.pkl")} == {
        "random_states_0.pkl",
        "random_states_1.pkl",
    }

    run(cmd)  # the same command again resumes, on both ranks
    assert f"resumed from {newest}\n" in (run_dir / "train.log").read_text()
    assert_resumed_exactly(run_dir, uninterrupted)
