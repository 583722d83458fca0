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


class FirstStepProbe:
    """A hook on the first decoder layer's first projection, for one micro-batch."""

    def __init__(self, backbone: nn.Module | None) -> None:
        modules = backbone.modules() if backbone is not None else iter(())
        layer = next((m for m in modules if type(m).__name__.endswith("DecoderLayer")), None)
        linear = None
        if layer is not None:
            linear = next((m for m in layer.modules() if isinstance(m, nn.Linear)), None)
        self.linear = linear
        self.calls = 0
        self.dtype: torch.dtype | None = None
        self.handles: list[Any] = []

    def __enter__(self) -> FirstStepProbe:
        if self.linear is not None:
            self.handles.append(self.linear.register_forward_hook(self._seen))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handle in self.handles:
            handle.remove()

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
            f"projections computed in {dtype}, the first projection ran {self.calls}x{recompute}"
        )
