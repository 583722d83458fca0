"""The method's own settings on CPU: a 4-bit backbone (prepare_model_for_kbit_training) with
gradient checkpointing, stopped by SIGUSR1 in the LoRA phase and resumed, exactly the
uninterrupted run; and the W&B run kept across the restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eeg_emotion.training import checkpoint
from tests.helpers.training import (
    assert_resumed_exactly,
    command,
    finish,
    run,
    start,
    status,
    stop_when,
)

pytestmark = pytest.mark.slow
# configs/tiny.yaml sets fp32 without checkpointing; these are the method's defaults.
QLORA = (
    "model.precision=4bit",
    "model.gradient_checkpointing=true",
    "train.checkpoint_every=3",
    "train.log_every=1",
)
LORA_STEP = 16  # configs/tiny.yaml: 15 optimizer steps per epoch, LoRA trains from epoch 1


@pytest.fixture(scope="module")
def uninterrupted(tiny_root, cache, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "reference"
    run(command(tiny_root, cache, run_dir, *QLORA))
    return run_dir


@pytest.fixture(scope="module")
def resumed(tiny_root, cache, tmp_path_factory) -> tuple[Path, dict]:
    """Stopped with SIGUSR1 mid-LoRA-phase and resumed, W&B offline in both launches; the run
    folder and the stopped checkpoint's state."""
    base = tmp_path_factory.mktemp("qlora")
    run_dir = base / "stopped"
    env = {"HOME": str(base), "WANDB_API_KEY": "", "WANDB_MODE": "offline"}
    cmd = command(tiny_root, cache, run_dir, *QLORA, "train.tracker.kind=wandb")
    proc = start(cmd, env=env)
    stop_when(run_dir, LORA_STEP, "sigusr1", proc)
    err = finish(proc)
    assert proc.returncode == 3 and status(run_dir) == "stopped", err[-3000:]
    stopped_at = json.loads((run_dir / "status.json").read_text())["global_step"]
    folder = run_dir / "checkpoints" / f"step-{stopped_at}"
    assert checkpoint.verify(folder) is None
    saved = checkpoint.read_state(folder)["run"]
    run(cmd, env=env)
    assert f"resumed from {folder}\n" in (run_dir / "train.log").read_text()
    return run_dir, saved


def test_4bit_with_gradient_checkpointing_stops_mid_lora_and_resumes_exactly(
    uninterrupted, resumed
):
    run_dir, saved = resumed
    assert saved["epoch"] == 1 and 0 < saved["batches_done"] < 15, saved  # mid-LoRA phase
    saved_settings = (run_dir / "config.yaml").read_text()
    assert "precision: 4bit" in saved_settings and "gradient_checkpointing: true" in saved_settings
    assert_resumed_exactly(run_dir, uninterrupted)


def test_wandb_resumes_the_same_run_after_a_restart(resumed):
    run_dir, _ = resumed
    run_id = (run_dir / "wandb_run_id").read_text().strip()
    # One offline run folder per launch, both of the one W&B run.
    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 2, offline
    for folder in offline:
        assert folder.name.endswith(f"-{run_id}"), folder
        assert (folder / f"run-{run_id}.wandb").is_file(), sorted(folder.iterdir())
