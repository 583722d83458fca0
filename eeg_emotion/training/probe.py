"""What the first micro-batch really ran with, read off the model as it ran.

Settings say what should happen; this line says what did: the tokens per window, the dtype the
backbone's projections computed in (bf16 under autocast), and how often the first decoder
layer's first projection ran (twice per micro-batch when gradient checkpointing recomputes the
layer in the backward; transformers checkpoints a layer's `forward`, so only hooks inside it see
the recomputation). train.log
carries it, and the tests read it.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from eeg_emotion.model.kernels import sdpa_backend


class _SdpaSeen(TorchFunctionMode):
    """Records the SDPA kernel of the first scaled_dot_product_attention call."""

    def __init__(self) -> None:
        super().__init__()
        self.backend: str | None = None

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if self.backend is None and func is torch.nn.functional.scaled_dot_product_attention:
            self.backend = sdpa_backend(args, kwargs)
        return func(*args, **kwargs)


class FirstStepProbe:
    """A hook on the first decoder layer's first projection, for one micro-batch."""

    def __init__(self, backbone: nn.Module | None) -> None:
        modules = backbone.modules() if backbone is not None else iter(())
        layer = next((m for m in modules if type(m).__name__.endswith("DecoderLayer")), None)
        linear = None
        if layer is not None:  # the projection as the layer calls it: peft's wrapper if any
            # (the fused LoRA path never calls the base Linear inside it)
            linear = next(
                (
                    m
                    for m in layer.modules()
                    if hasattr(m, "base_layer") or isinstance(m, nn.Linear)
                ),
                None,
            )
        self.linear = linear
        self.calls = 0
        self.dtype: torch.dtype | None = None
        self.handles: list[Any] = []
        self.sdpa = _SdpaSeen()

    def __enter__(self) -> FirstStepProbe:
        if self.linear is not None:
            self.handles.append(self.linear.register_forward_hook(self._seen))
            self.sdpa.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handle in self.handles:
            handle.remove()
        if self.linear is not None:
            self.sdpa.__exit__(kind, exc, tb)

    def _seen(self, module: nn.Module, args: Any, output: Any) -> None:
        self.calls += 1
        if self.dtype is None and isinstance(output, torch.Tensor):
            self.dtype = output.dtype

    def describe(self, windows: int, tokens: int) -> str:
        if self.linear is None:
            seen = f"first micro-batch of the phase: {windows} window(s) x {tokens} tokens"
            return f"{seen}, no backbone"
        dtype = str(self.dtype).removeprefix("torch.") if self.dtype else "not seen"
        recompute = " (gradient checkpointing recomputed it)" if self.calls > 1 else ""
        return (
            f"first micro-batch of the phase: {windows} window(s) x {tokens} tokens, "
            f"projections computed in {dtype}, the first projection ran {self.calls}x{recompute}; "
            f"attention: SDPA {self.sdpa.backend or 'not seen'}"
        )
