"""The fast path (`model.kernels: fast`) computes what the plain path computes.

On the tiny model, one model per case, switched between peft's forward and the fused one
(model/fused_lora.py) with the same weights and the same seed: fp32, bf16 weights, fp32 under
bf16 autocast, and 4-bit nf4 through bitsandbytes' CPU backend (which works here: compute in
fp32, and in bf16 under autocast), each with LoRA dropout 0.1 (the same masks) and 0. Logits and
loss are bit for bit the same; the head's gradients and the last MLP's LoRA gradients too (no
shared input is summed above them). Below that, autograd sums a shared input's gradient in
another order (q, k and v read one input: peft adds six terms, the fused path three sums), so
the rest agree to fp32 rounding (1e-5 relative) or bf16 rounding (3e-2). Liger's CUDA kernels
are checked in tests/test_gpu.py (`pytest -m gpu`).
"""

from __future__ import annotations

import pytest
import torch

from eeg_emotion.config import load_settings
from eeg_emotion.model.classifier import EEGEmotionClassifier
from eeg_emotion.model.embedding import InputSpec
from eeg_emotion.model.fused_lora import FusedLoraLinear, fuse_lora, unfuse_lora
from eeg_emotion.model.kernels import apply_kernels
from eeg_emotion.training.probe import FirstStepProbe

SEQ = 12
# (precision overrides, bf16 autocast, relative tolerance of the gradients below the exact ones)
CASES = {
    "fp32": (["model.precision=fp32"], False, 1e-5),
    "fp32-autocast-bf16": (["model.precision=fp32"], True, 1e-5),
    "bf16": (["model.precision=bf16"], False, 3e-2),
    "4bit-fp32": (["model.precision=4bit", "model.compute_dtype=fp32"], False, 1e-5),
    "4bit-bf16-autocast": (["model.precision=4bit", "model.compute_dtype=bf16"], True, 3e-2),
}
EXACT = ("head.", "layers.1.mlp.")  # gradients with no reordered sum above them


def spec() -> InputSpec:
    return InputSpec(
        kind="eeg",
        vocab_size=9,
        pad_id=8,
        targets=["valence", "arousal"],
        num_classes=2,
        channel=[i % 4 for i in range(SEQ)],
        band=[-1] * SEQ,
        time=[i // 4 for i in range(SEQ)],
    )


def batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 8, (3, SEQ), generator=g)
    mask = torch.ones(3, SEQ, dtype=torch.long)
    mask[1, 8:], ids[1, 8:] = 0, 8
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, 2, (3, 2))}


def model(overrides: list[str], dropout: float, kernels: str = "plain") -> EEGEmotionClassifier:
    base = ["model.source=tiny", f"model.lora.dropout={dropout}", f"model.kernels={kernels}"]
    settings = load_settings(None, [*base, *overrides]).model
    torch.manual_seed(0)
    m = EEGEmotionClassifier(settings, spec()).train()
    with torch.no_grad():  # B starts at zero: give the adapters something to carry
        for name, p in m.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    return m


def step(m: EEGEmotionClassifier, autocast: bool, seed: int = 5) -> tuple[dict, dict]:
    m.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the dropout masks
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = m(**batch())
    out["loss"].backward()
    grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    return out, grads


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp(min=1e-30))


@pytest.mark.parametrize("dropout", [0.1, 0.0], ids=["dropout", "no-dropout"])
@pytest.mark.parametrize("case", list(CASES))
def test_fast_path_matches_plain_path(case, dropout):
    overrides, autocast, tolerance = CASES[case]
    m = model(overrides, dropout)
    plain, plain_grads = step(m, autocast)
    assert fuse_lora(m) == 2 * 7
    q = m.backbone.base_model.model.layers[0].self_attn.q_proj
    seen = []
    handle = q.register_forward_hook(lambda mod, args, out: seen.append(out.grad_fn.name()))
    fast, fast_grads = step(m, autocast)
    handle.remove()
    assert seen and all("FusedLoraFunction" in name for name in seen), seen
    for target in plain["logits"]:
        assert torch.equal(fast["logits"][target], plain["logits"][target]), target
    assert torch.equal(fast["loss"], plain["loss"])
    assert set(fast_grads) == set(plain_grads)
    lora = [n for n in plain_grads if "lora_" in n]
    assert len(lora) == 2 * 2 * 7 and any(n.startswith("head.") for n in plain_grads)
    for name, grad in plain_grads.items():
        if any(part in name for part in EXACT):
            assert torch.equal(fast_grads[name], grad), name
        else:
            assert relative(fast_grads[name], grad) <= tolerance, (
                name,
                relative(fast_grads[name], grad),
            )
    if dropout:  # the masks matter: another seed gives other logits
        unfuse_lora(m)
        other, _ = step(m, autocast, seed=6)
        assert not torch.equal(other["logits"]["valence"], plain["logits"]["valence"])


def test_summary_line_probe_and_fallbacks():
    m = model(["model.precision=bf16"], 0.1, kernels="fast")
    assert m.kernels == "kernels: fast (fused LoRA on 14 projections; liger: unavailable, no CUDA)"
    assert apply_kernels(m.backbone, m.settings.model_copy(update={"kernels": "plain"})) == (
        "kernels: plain (peft LoRA layers, transformers modules)"
    )
    # The saved adapter's keys are peft's own: the fused layers only change their class.
    from peft.utils import get_peft_model_state_dict

    names = set(get_peft_model_state_dict(m.backbone))
    assert len(names) == 28 and all("lora_" in n for n in names)
    q = m.backbone.base_model.model.layers[0].self_attn.q_proj
    assert isinstance(q, FusedLoraLinear)
    with FirstStepProbe(m.backbone) as probe:
        step(m, autocast=False)
    line = probe.describe(3, SEQ)
    assert "attention: SDPA " in line and "not seen" not in line, line
    # A trainable base weight (phase `backbone`) is outside the fused function: peft's forward.
    m.set_phase(["head", "lora", "backbone"])
    seen = []
    handle = q.register_forward_hook(lambda mod, args, out: seen.append(out.grad_fn.name()))
    step(m, autocast=False)
    handle.remove()
    assert seen and not any("FusedLoraFunction" in name for name in seen), seen
