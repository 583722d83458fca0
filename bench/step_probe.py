"""Which training loop really ran: the code that called each optimizer step, for the benches
that time this project's loop against another (bench/train_loop.py, bench/gpu_throughput.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

# Frames of these packages lie between a loop and its optimizer: the optimizer's own wrappers,
# an LR scheduler's and accelerate's.
PASS_THROUGH = ("torch", "accelerate")


@contextmanager
def stepped_by() -> Iterator[set[str]]:
    """The modules whose code called `optimizer.step()` of any torch optimizer inside the
    block: the first caller outside `PASS_THROUGH` (for the Hugging Face Trainer,
    `transformers.trainer`)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    seen: set[str] = set()

    def hook(*_: object) -> None:
        frame = sys._getframe(1)
        while frame.f_back and frame.f_globals["__name__"].split(".")[0] in PASS_THROUGH:
            frame = frame.f_back
        seen.add(frame.f_globals["__name__"])

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()
