"""Fused LoRA projections: the frozen base matmul and the LoRA term in one autograd function.

peft computes `base(x) + B(A(dropout(x))) * scaling` as separate autograd nodes; each keeps its
own input. Here one `torch.autograd.Function` per projection does both and keeps only the
dropped adapter input (in the dtype the adapter multiplies in), the dropout mask (one byte per
value) and the r-wide `A` output; never the base weight: a 4-bit weight is dequantized again in
the backward, into one buffer per device and dtype that every projection reuses. The frozen base
gets no gradient; `lora_A`, `lora_B` and the input do.

The arithmetic is peft's, step for step and dtype for dtype (autocast's casts made explicit,
dropout drawn by the same `native_dropout` as `F.dropout`, the 4-bit layer's casts and
`requires_conversion` rule mirrored), so with the same seed the two paths give the same logits,
and gradients that differ only by the order autograd sums a shared input's contributions
(tests/test_fused_lora.py: fp32, bf16 and 4-bit nf4 through bitsandbytes' CPU backend).

Where a layer is outside what the function covers (adapters merged or disabled, several active
adapters, DoRA or another variant, a trainable base weight or bias, weights packed for CPU
inference), that layer runs peft's own forward.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import torch
from peft.tuners.lora import Linear as LoraLinear
from torch import nn
from torch.nn import functional as F

# One dequantization buffer per (device, dtype), grown to the largest weight seen: a projection
# uses it between its dequantization and its matmul only, so all of them can share it.
_BUFFERS: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
# Where bitsandbytes registers `dequantize_4bit.out` (dequantization into a given tensor).
OUT_DEVICES = ("cuda", "xpu", "mps")


def _buffer(shape: torch.Size, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    numel = shape.numel()
    key = (device, dtype)
    buf = _BUFFERS.get(key)
    if buf is None or buf.numel() < numel:
        buf = _BUFFERS[key] = torch.empty(numel, device=device, dtype=dtype)
    return buf[:numel].view(shape)


def _base_weight(base: Any, dtype: torch.dtype) -> torch.Tensor:
    """The base weight (out, in) in `dtype`: a plain weight cast as autocast would, or a 4-bit
    one dequantized into the shared buffer."""
    weight = base.weight
    state = getattr(weight, "quant_state", None)
    if state is None:
        return weight if weight.dtype == dtype else weight.to(dtype)
    import bitsandbytes.functional as bnbf

    packed = weight.data.view(-1, 1)
    if weight.device.type in OUT_DEVICES:
        out = _buffer(torch.Size(state.shape), weight.device, state.dtype)
        bnbf.dequantize_4bit(packed, state, out=out)
    else:  # bitsandbytes' CPU backend has no in-place dequantization: a fresh tensor
        out = bnbf.dequantize_4bit(packed, state)
    return out if out.dtype == dtype else out.to(dtype)


class _Plan:
    """The dtypes peft's path would compute in, decided before the function runs."""

    def __init__(self, layer: Any, x: torch.Tensor, a_dtype: torch.dtype) -> None:
        device = x.device.type
        autocast = torch.is_autocast_enabled(device)
        cast = torch.get_autocast_dtype(device) if autocast else None
        base: Any = layer.get_base_layer()
        self.four_bit = getattr(base.weight, "quant_state", None) is not None
        if self.four_bit:
            # bnb's Linear4bit: input cast to its compute dtype, output back to the input's.
            self.base_in = base.compute_dtype or x.dtype
            self.base_mm = self.base_in
            self.base_out = x.dtype
            # peft's 4-bit layer asks torch.is_autocast_enabled() with no device: CUDA's state.
            convert = not torch.is_autocast_enabled()
        else:
            self.base_in = x.dtype
            self.base_mm = cast or x.dtype
            self.base_out = self.base_mm
            convert = True
        cast_input = getattr(layer, "cast_input_dtype_enabled", True)
        self.lora_in = a_dtype if convert and cast_input else x.dtype
        self.lora_mm = cast or self.lora_in
        self.lora_out = self.base_out if self.four_bit and convert else self.lora_mm
        summed = torch.promote_types(self.base_out, self.lora_out)
        self.out = summed if self.four_bit else self.base_out


class FusedLoraFunction(torch.autograd.Function):
    """y = base(x) + B A dropout(x) * scaling, with peft's dtypes (see `_Plan`)."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        lora_a: torch.Tensor,
        lora_b: torch.Tensor,
        base: Any,
        scaling: float,
        p: float,
        plan: _Plan,
    ) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):  # its casts are explicit here
            xb = x.to(plan.base_in).to(plan.base_mm)
            bias = base.bias.to(plan.base_mm) if base.bias is not None else None
            y = F.linear(xb, _base_weight(base, plan.base_mm), bias).to(plan.base_out)
            xl = x.to(plan.lora_in)
            mask = None
            if p > 0:
                xl, mask = torch.native_dropout(xl, p, True)
            dropped = xl.to(plan.lora_mm)
            h = F.linear(dropped, lora_a.to(plan.lora_mm))
            lora = F.linear(h, lora_b.to(plan.lora_mm)) * scaling
            out = (y + lora.to(plan.lora_out)).to(plan.out)
        ctx.save_for_backward(dropped, h, mask, lora_a, lora_b)
        ctx.base, ctx.scaling, ctx.p, ctx.plan, ctx.x_dtype = base, scaling, p, plan, x.dtype
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        dropped, h, mask, lora_a, lora_b = ctx.saved_tensors
        plan: _Plan = ctx.plan
        rows = grad.shape[:-1].numel()
        # The adapter: mm formulas as autograd's for F.linear (grad @ W, grad^T @ input).
        g = grad.to(plan.lora_out).to(plan.lora_mm) * ctx.scaling
        g2 = g.reshape(rows, -1)
        grad_b = g2.t().mm(h.reshape(rows, -1)).to(lora_b.dtype)
        gh = g2.mm(lora_b.to(plan.lora_mm))
        grad_a = gh.t().mm(dropped.reshape(rows, -1)).to(lora_a.dtype)
        grad_x = None
        if ctx.needs_input_grad[0]:
            gx = gh.mm(lora_a.to(plan.lora_mm)).view(dropped.shape).to(plan.lora_in)
            if mask is not None:
                gx = torch.ops.aten.native_dropout_backward(gx, mask, 1.0 / (1.0 - ctx.p))
            gy = grad.to(plan.base_out).to(plan.base_mm).reshape(rows, -1)
            weight = _base_weight(ctx.base, plan.base_mm)  # dequantized again, not kept
            gbase = gy.mm(weight).view(dropped.shape).to(plan.base_in).to(ctx.x_dtype)
            grad_x = gbase + gx.to(ctx.x_dtype)
        return grad_x, grad_a, grad_b, None, None, None, None


def _fused_forward(layer: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor | None:
    """The fused projection, or None where this call is outside what it covers."""
    if args or kwargs or layer.disable_adapters or layer.merged or layer.lora_variant:
        return None
    active = [a for a in layer.active_adapters if a in layer.lora_A]
    if len(active) != 1:
        return None
    base = layer.get_base_layer()
    state = getattr(base.weight, "quant_state", None)
    if base.weight.requires_grad or (base.bias is not None and base.bias.requires_grad):
        return None
    if state is not None and getattr(state, "packing_format_for_cpu", False):
        return None
    name = active[0]
    lora_a, lora_b = layer.lora_A[name].weight, layer.lora_B[name].weight
    dropout = layer.lora_dropout[name]
    p = float(dropout.p) if isinstance(dropout, nn.Dropout) and dropout.training else 0.0
    plan = _Plan(layer, x, lora_a.dtype)
    return FusedLoraFunction.apply(x, lora_a, lora_b, base, layer.scaling[name], p, plan)


class FusedLoraLinear(LoraLinear):
    """peft's LoRA Linear whose forward is the fused function (same parameters and names)."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = _fused_forward(self, x, *args, **kwargs)
        return super().forward(x, *args, **kwargs) if out is None else out


@functools.cache
def _fused_4bit(plain: type[nn.Module]) -> type:
    """peft's 4-bit LoRA Linear whose forward is the fused function."""

    def forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        out = _fused_forward(self, x, *args, **kwargs)
        return plain.forward(self, x, *args, **kwargs) if out is None else out

    return type("FusedLoraLinear4bit", (plain,), {"forward": forward, "__module__": __name__})


def _fused_classes() -> dict[type, type]:
    """peft's LoRA Linear classes in use, each with its fused subclass. peft's 4-bit class lives
    in a module that imports bitsandbytes (and with it torch's compiler: seconds of start-up in
    every process), so it is looked up only where a 4-bit model has loaded it already."""
    classes: dict[type, type] = {LoraLinear: FusedLoraLinear}
    plain_4bit = getattr(sys.modules.get("peft.tuners.lora.bnb"), "Linear4bit", None)
    if plain_4bit is not None:
        classes[plain_4bit] = _fused_4bit(plain_4bit)
    return classes


def fuse_lora(model: nn.Module) -> int:
    """Make every peft LoRA Linear of `model` compute through the fused function; returns how
    many. Only the class changes (peft built the layers: parameters, names and the saved
    adapter stay its own)."""
    classes = _fused_classes()
    count = 0
    for module in model.modules():
        fused = classes.get(type(module))
        if fused is not None:
            module.__class__ = fused
            count += 1
        elif type(module) in classes.values():
            count += 1
    return count


def unfuse_lora(model: nn.Module) -> None:
    """Back to peft's own forward (the plain path) on every fused layer."""
    plain = {fused: base for base, fused in _fused_classes().items()}
    for module in model.modules():
        if type(module) in plain:
            module.__class__ = plain[type(module)]
