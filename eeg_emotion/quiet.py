"""Keep library start-up chatter that is not the user's business off the console.

Call `quiet_libraries()` before importing torch, bitsandbytes or DeepSpeed. Only the messages
named here are dropped; every other warning still shows.
"""

from __future__ import annotations

import logging
import warnings


class _Drop(logging.Filter):
    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(f in message for f in self.fragments)


def quiet_libraries() -> None:
    # bitsandbytes looks for an optional CPU kernel package on CPUs with AVX512-BF16; the project
    # turns that fast path off anyway (backbone.disable_cpu_repacking).
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_Drop("gemm_4bit_forward"))
    # DeepSpeed announces its accelerator choice (CPU whenever there is no GPU) on import.
    logging.getLogger("DeepSpeed").addFilter(
        _Drop("Setting accelerator to CPU", "Setting ds_accelerator to")
    )
    # peft calls transformers' deprecated `is_gradient_checkpointing` and
    # `gradient_checkpointing_enable` aliases (renamed activation_checkpointing_* in 5.x).
    warnings.filterwarnings(
        "ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning
    )
