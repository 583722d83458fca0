"""configs/llama31_8b_qlora.yaml trained as shipped on the CPU, with only the backbone made
small: what ran is read off the run. Its own file, the suite's longest test, so that the test
workers can run it beside the rest of test_train.py."""

from __future__ import annotations

import json

import pytest

from eeg_emotion.config import load_settings
from eeg_emotion.data import pipeline
from tests.helpers.paths import ROOT
from tests.helpers.training import PY, run

pytestmark = pytest.mark.slow


def test_the_reference_config_trains_on_cpu_with_only_the_backbone_overridden(tiny_root, tmp_path):
    """configs/llama31_8b_qlora.yaml as shipped (1024 band-power tokens, two phases, LoRA
    dropout 0.1, bf16 autocast, gradient checkpointing, accumulation over 2 micro-batches, W&B
    offline), with the tiny random Llama in fp32 as its backbone, for 2 of its epochs: an 8B
    backbone's speed is a GPU's business, and a real one under bf16 autocast takes many minutes
    per micro-batch on a CPU without native bf16. What ran is
    read off the run: the model's own line per phase and the optimizer steps per epoch."""
    run_dir = tmp_path / "reference"
    out = run(
        [
            PY,
            str(ROOT / "launch" / "train.py"),
            "--config",
            str(ROOT / "configs" / "llama31_8b_qlora.yaml"),
            "model.source=tiny",
            "model.precision=fp32",
            "train.epochs=2",
            f"data.root={tiny_root}",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"output_dir={run_dir}",
        ],
        env={"HOME": str(tmp_path), "WANDB_API_KEY": "", "WANDB_MODE": "offline"},
    )
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    saved = load_settings(run_dir / "config.yaml")
    assert saved.model.source == "tiny" and saved.model.lora.dropout == 0.1
    assert saved.model.precision == "fp32" and saved.data.tokenizer.sub_window == "1s"
    log = (run_dir / "train.log").read_text()
    assert "mixed precision=bf16" in log, log[-3000:]
    # Both phases ran 1024-token windows through bf16 projections, and checkpointing (on for
    # this non-4-bit backbone as the config asks) recomputed the layer in the backward.
    for phase in ("head+embedding", "head+embedding+lora"):
        line = (
            f"{phase}: first micro-batch of the phase: 16 window(s) x 1024 tokens, projections "
            "computed in bfloat16, the first projection ran 2x (gradient checkpointing recomputed"
        )
        assert line in log, log[-3000:]
    # Accumulation: an optimizer step per 2 micro-batches of 16 windows; an evaluation per epoch.
    data = pipeline.build(saved.data, progress=False)
    micro_batches = len(data.indices("train")) // 16  # full micro-batches only
    per_epoch = -(-micro_batches // 2)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "val/loss" in r] == [per_epoch, 2 * per_epoch]
    assert "test (best model from step" in out.stdout
    assert (run_dir / "best" / "adapter" / "adapter_model.safetensors").exists()
    # None of the libraries' start-up chatter reaches the user.
    for noise in ("gemm_4bit_forward", "is_gradient_checkpointing", "is deprecated"):
        assert noise not in out.stderr, noise
