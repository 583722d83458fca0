"""`model.kernels`: which kernels the backbone computes with, chosen once where it gets its
LoRA adapter, and one line that says what ran (train.log).

- plain: peft's LoRA layers and transformers' modules as they are.
- fast: every LoRA projection fused with its base matmul (model/fused_lora.py, any device);
  where CUDA and Liger-Kernel (the `gpu` extra) are present, Liger's RMSNorm, SwiGLU and RoPE
  on a Llama backbone; with `model.compile_layers`, each decoder layer under torch.compile
  (CUDA only). Attention stays SDPA either way; which SDPA kernel ran is in the first
  micro-batch's probe line (training/probe.py).

Liger's RoPE replaces a function of transformers' Llama module, so it holds for every Llama
in the process; its RMSNorm and SwiGLU are bound to this model's modules only (the module-level
classes Liger also swaps are put back). `restore_globals` undoes the RoPE swap.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from eeg_emotion.model.fused_lora import fuse_lora
from eeg_emotion.model_settings import ModelSettings

_ORIGINAL: dict[str, Any] = {}


def apply_kernels(backbone: nn.Module, settings: ModelSettings) -> str:
    """Switch the peft-wrapped `backbone` to the configured kernels; returns the summary
    line (`kernels: ...`)."""
    if settings.kernels == "plain":
        return "kernels: plain (peft LoRA layers, transformers modules)"
    fused = fuse_lora(backbone)
    inner: Any = getattr(getattr(backbone, "base_model", backbone), "model", backbone)
    device = next(backbone.parameters()).device
    liger = _liger(inner, device)
    parts = [f"fused LoRA on {fused} projections", f"liger: {liger}"]
    if settings.compile_layers:
        parts.append(f"compile: {_compile_layers(inner, device)}")
    return f"kernels: fast ({'; '.join(parts)})"


def _liger(inner: Any, device: torch.device) -> str:
    if device.type != "cuda":
        return "unavailable, no CUDA"
    try:
        from liger_kernel.transformers import apply_liger_kernel_to_llama
    except ImportError:
        return "unavailable, liger-kernel not installed (pip install '.[gpu]')"
    model_type = getattr(getattr(inner, "config", None), "model_type", None)
    if model_type != "llama":
        return f"not applied (model_type {model_type}: Llama only)"
    from transformers.models.llama import modeling_llama

    _ORIGINAL.setdefault("apply_rotary_pos_emb", modeling_llama.apply_rotary_pos_emb)
    classes = {name: getattr(modeling_llama, name) for name in ("LlamaRMSNorm", "LlamaMLP")}
    apply_liger_kernel_to_llama(
        rope=True,
        rms_norm=True,
        swiglu=True,
        cross_entropy=False,
        fused_linear_cross_entropy=False,
        model=inner,
    )
    for name, cls in classes.items():  # keep later models' classes transformers' own
        setattr(modeling_llama, name, cls)
    return "RMSNorm, SwiGLU, RoPE"


def _compile_layers(inner: Any, device: torch.device) -> str:
    if device.type != "cuda":
        return "off (no CUDA)"
    layers = getattr(inner, "layers", None)
    if layers is None:
        return "off (no decoder layers)"
    for layer in layers:
        layer.compile()
    return f"{len(layers)} decoder layers"


def restore_globals() -> None:
    """Put back what Liger replaced for the whole process (transformers' Llama RoPE)."""
    from transformers.models.llama import modeling_llama

    if "apply_rotary_pos_emb" in _ORIGINAL:
        modeling_llama.apply_rotary_pos_emb = _ORIGINAL.pop("apply_rotary_pos_emb")


def sdpa_backend(args: tuple, kwargs: dict) -> str:
    """The SDPA kernel torch picks for these scaled_dot_product_attention arguments."""
    from torch.nn.attention import SDPBackend

    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal")
    call = dict(zip(names, args, strict=False)) | kwargs
    try:
        choice = torch._fused_sdp_choice(
            call["query"],
            call["key"],
            call["value"],
            call.get("attn_mask"),
            call.get("dropout_p", 0.0),
            call.get("is_causal", False),
            scale=call.get("scale"),
            enable_gqa=call.get("enable_gqa", False),
        )
        return SDPBackend(choice).name.lower()
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        return f"unknown ({type(exc).__name__})"
