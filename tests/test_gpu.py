"""What only a CUDA GPU can show (`pytest -m gpu`); every test skips, not fails, without one.

4-bit nf4 LoRA against a bf16 model of the dequantized weights, a tiny bf16 run with stop and
resume, DDP over NCCL, DeepSpeed ZeRO-2 with a 4-bit backbone and ZeRO-3's refusal.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from eeg_emotion.config import load_settings
from eeg_emotion.model.classifier import EEGEmotionClassifier, InputSpec
from tests.helpers.paths import ROOT, zero3_json
from tests.helpers.training import command as train_command

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
PY = sys.executable
ACCELERATE = [
    PY,
    "-m",
    "accelerate.commands.launch",
    "--num_machines",
    "1",
    "--dynamo_backend",
    "no",
]
SEQ = 32


def spec() -> InputSpec:
    return InputSpec(
        kind="eeg",
        vocab_size=17,
        pad_id=16,
        targets=["valence", "arousal"],
        num_classes=2,
        channel=[i % 8 for i in range(SEQ)],
        band=[(i // 8) % 4 for i in range(SEQ)],
        time=[i // 32 for i in range(SEQ)],
    )


def test_nf4_lora_forward_and_backward_match_a_bf16_model_of_the_dequantized_weights():
    import bitsandbytes as bnb

    tiny = ["model.source=tiny", "model.tiny.hidden_size=256", "model.tiny.intermediate_size=512"]
    settings = load_settings(None, [*tiny, "model.precision=4bit", "model.lora.dropout=0"]).model
    torch.manual_seed(0)
    q = EEGEmotionClassifier(settings, spec(), device=0).cuda()
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in q.modules())
    with torch.no_grad():  # non-zero B so that A gets gradients too
        for n, p in q.named_parameters():
            if "lora_B" in n:
                p.normal_(std=0.05)
    ref = EEGEmotionClassifier(
        settings.model_copy(update={"precision": "bf16"}), spec(), device=0
    ).cuda()
    modules = dict(ref.named_modules())
    with torch.no_grad():
        for name, module in q.named_modules():
            if isinstance(module, bnb.nn.Linear4bit):
                w = bnb.functional.dequantize_4bit(module.weight.data, module.weight.quant_state)
                modules[name].weight.copy_(w)
        state = ref.state_dict()
        for key, value in q.state_dict().items():
            if key in state and state[key].shape == value.shape and value.is_floating_point():
                state[key].copy_(value)
    g = torch.Generator().manual_seed(1)
    batch = {
        "input_ids": torch.randint(0, 16, (4, SEQ), generator=g).cuda(),
        "attention_mask": torch.ones(4, SEQ, dtype=torch.long).cuda(),
        "labels": torch.randint(0, 2, (4, 2), generator=g).cuda(),
    }
    outs = {}
    for name, model in (("nf4", q), ("bf16", ref)):
        model.train()
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(**batch)
        out["loss"].backward()
        outs[name] = out
    for target in ("valence", "arousal"):
        torch.testing.assert_close(
            outs["nf4"]["logits"][target], outs["bf16"]["logits"][target], rtol=0.05, atol=0.05
        )
    ref_params = dict(ref.named_parameters())
    compared = 0
    for name, p in q.named_parameters():
        if "lora_" in name:
            r = ref_params[name].grad.float()
            assert p.grad is not None and p.grad.abs().sum() > 0, name
            assert (p.grad.float() - r).norm() <= 0.05 * r.norm() + 1e-6, name
            compared += 1
    assert compared == 2 * 7 * 2  # A and B of 7 projections in 2 layers


def command(
    root: Path, cache: Path, run: Path, *overrides: str, launcher: list[str] | None = None
) -> list[str]:
    """Training on configs/tiny.yaml as QLoRA in bf16."""
    qlora = ("model.precision=4bit", "model.compute_dtype=bf16", "train.mixed_precision=bf16")
    return train_command(root, cache, run, *qlora, *overrides, launcher=launcher)


def run(cmd: list[str], expect: int = 0) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == expect, (
        f"exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    )
    return out


def head(run_dir: Path) -> dict[str, np.ndarray]:
    return load_file(str(run_dir / "best" / "head.safetensors"))


def test_tiny_bf16_run_on_the_gpu_then_stop_and_resume_to_the_same_model(tiny_root, tmp_path):
    cache, full, stopped = tmp_path / "cache", tmp_path / "full", tmp_path / "stopped"
    extra = ["train.checkpoint_every=3", "train.log_every=1"]  # LoRA dropout 0.1, the default
    run(command(tiny_root, cache, full, *extra))
    log = (full / "train.log").read_text()
    assert "on cuda" in log and "mixed precision=bf16" in log, log
    proc = subprocess.Popen(
        command(tiny_root, cache, stopped, *extra), cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    metrics = stopped / "metrics.jsonl"
    while proc.poll() is None:
        if metrics.exists() and any(
            json.loads(line).get("step", 0) >= 5 for line in metrics.read_text().splitlines()
        ):
            (stopped / "STOP").write_text("")
            break
        time.sleep(0.01)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 3, err[-3000:]
    run(command(tiny_root, cache, stopped, *extra))
    a, b = head(full), head(stopped)
    for key in a:  # GPU kernels (embedding backward) accumulate in a nondeterministic order
        np.testing.assert_allclose(a[key], b[key], atol=2e-3, rtol=0, err_msg=key)
    ra = json.loads((full / "results.json").read_text())["test"]
    rb = json.loads((stopped / "results.json").read_text())["test"]
    assert ra["valence"]["support"] == rb["valence"]["support"]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP over NCCL needs 2 or more GPUs")
def test_ddp_over_nccl_on_every_gpu(tiny_root, tmp_path):
    n = torch.cuda.device_count()
    launcher = [
        *ACCELERATE,
        "--multi_gpu",
        "--num_processes",
        str(n),
        "--main_process_port",
        "29631",
    ]
    run_dir = tmp_path / "ddp"
    run(
        command(
            tiny_root,
            tmp_path / "cache",
            run_dir,
            f"train.batch_size={8 // n * n}",
            launcher=launcher,
        )
    )
    log = (run_dir / "train.log").read_text()
    assert f"{n} process(es) on cuda" in log and "distributed=MULTI_GPU" in log, log


def deepspeed_launcher(config: str | Path, port: int) -> list[str]:
    return [
        *ACCELERATE,
        "--use_deepspeed",
        "--num_processes",
        "1",
        "--deepspeed_config_file",
        str(ROOT / "ds_configs" / config),
        "--mixed_precision",
        "bf16",
        "--main_process_port",
        str(port),
    ]


def test_deepspeed_zero2_trains_a_4bit_backbone_and_checkpoints_only_what_trains(
    tiny_root, tmp_path
):
    run_dir = tmp_path / "zero2"
    run(
        command(
            tiny_root,
            tmp_path / "cache",
            run_dir,
            "model.phases=[{train: [head, embedding, lora]}]",
            "train.epochs=1",
            launcher=deepspeed_launcher("zero2.json", 29632),
        )
    )
    log = (run_dir / "train.log").read_text()
    assert "distributed=DEEPSPEED" in log and "on cuda" in log, log
    ckpt = sorted((run_dir / "checkpoints").iterdir())[-1]
    [states] = ckpt.rglob("*model_states.pt")  # the DeepSpeed engine's module state
    module = torch.load(states, map_location="cpu", weights_only=False)["module"]
    # Trainable parameters, plus the small quantization statistics bitsandbytes keeps as
    # buffers (absmax, quant_map: about 1/32 of the 4-bit weights' size); never a base weight.
    stats = (".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map", "bitsandbytes__nf4")
    trainable = [k for k in module if "lora_" in k or k.startswith(("head.", "embedding."))]
    assert trainable and all(k in trainable or k.endswith(stats) for k in module), sorted(module)
    assert not any(k.endswith(("base_layer.weight", "embed_tokens.weight")) for k in module)
    trained = sum(p.stat().st_size for p in (ckpt / "model_0").rglob("*.safetensors"))
    biggest = max(p.stat().st_size for p in ckpt.rglob("*") if p.is_file())
    assert biggest <= 4 * trained  # fp32 master weights + two Adam moments at most
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"


def test_deepspeed_zero3_is_refused_at_start_with_the_reason(tiny_root, tmp_path):
    run_dir = tmp_path / "zero3"
    cmd = command(
        tiny_root,
        tmp_path / "cache",
        run_dir,
        "model.phases=[{train: [head, embedding, lora]}]",
        launcher=deepspeed_launcher(zero3_json(tmp_path), 29633),
    )
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode != 0 and "ZeRO-3 is not supported" in out.stderr, out.stderr[-3000:]
    assert not (run_dir / "checkpoints").exists()


def test_fast_kernels_on_cuda_match_the_plain_path():
    """model.kernels=fast on CUDA: fused LoRA in 4-bit plus Liger's RMSNorm, SwiGLU and RoPE
    (the `gpu` extra) against peft's layers and transformers' modules, same seed and dropout
    masks; Liger rounds otherwise in bf16, so the tolerances are bf16's."""
    pytest.importorskip("liger_kernel", reason="needs the gpu extra (liger-kernel)")
    from eeg_emotion.model.kernels import restore_globals

    tiny = ["model.source=tiny", "model.tiny.hidden_size=256", "model.tiny.intermediate_size=512"]
    g = torch.Generator().manual_seed(1)
    batch = {
        "input_ids": torch.randint(0, 16, (4, SEQ), generator=g).cuda(),
        "attention_mask": torch.ones(4, SEQ, dtype=torch.long).cuda(),
        "labels": torch.randint(0, 2, (4, 2), generator=g).cuda(),
    }
    outs, grads = {}, {}
    try:
        for kernels in ("plain", "fast"):
            overrides = [*tiny, "model.precision=4bit", f"model.kernels={kernels}"]
            settings = load_settings(None, overrides).model
            torch.manual_seed(0)
            model = EEGEmotionClassifier(settings, spec(), device=0).cuda().train()
            with torch.no_grad():
                for n, p in model.named_parameters():
                    if "lora_B" in n:
                        p.normal_(std=0.05)
            if kernels == "fast":
                assert "fused LoRA on 14 projections" in model.kernels, model.kernels
                assert "liger: RMSNorm, SwiGLU, RoPE" in model.kernels, model.kernels
            torch.manual_seed(5)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                outs[kernels] = model(**batch)
            outs[kernels]["loss"].backward()
            grads[kernels] = {
                n: p.grad.float() for n, p in model.named_parameters() if p.grad is not None
            }
    finally:
        restore_globals()
    for target in ("valence", "arousal"):
        torch.testing.assert_close(
            outs["fast"]["logits"][target], outs["plain"]["logits"][target], rtol=0.05, atol=0.05
        )
    assert set(grads["fast"]) == set(grads["plain"])
    for name, ref in grads["plain"].items():
        assert (grads["fast"][name] - ref).norm() <= 0.05 * ref.norm() + 1e-6, name
