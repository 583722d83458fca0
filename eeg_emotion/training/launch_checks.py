"""What a launcher must allow of the settings, checked before torch is imported: under
`accelerate launch` a refusal then costs each process a second, not its ~10 s of imports.

The launcher is read from the environment it gives its processes (torchrun's WORLD_SIZE,
Accelerate's ACCELERATE_USE_DEEPSPEED and DeepSpeed config); trainer.main checks the same again
against the Accelerator it builds, for runs started some other way."""

from __future__ import annotations

import json
import os

from eeg_emotion.config import Settings
from eeg_emotion.errors import ConfigError


def check_launch(settings: Settings, processes: int, zero_stage: int | None) -> None:
    """Refuse what would fail mid-run over `processes` processes, under DeepSpeed ZeRO stage
    `zero_stage` (None: no DeepSpeed)."""
    batch = settings.train.batch_size
    if batch % processes:
        raise ConfigError(
            f"train.batch_size={batch} is the global micro-batch and must split evenly over the "
            f"{processes} processes (e.g. train.batch_size={max(1, batch // processes) * processes}"
            f" or {(batch // processes + 1) * processes})"
        )
    if zero_stage is None:
        return
    if settings.model.phases_differ:
        raise ConfigError(
            "DeepSpeed fixes the trainable parameters when it starts: give "
            "model.phases a single phase (e.g. [{train: [head, embedding, lora]}])"
        )
    if zero_stage == 3:
        raise ConfigError(
            "DeepSpeed ZeRO-3 is not supported: it partitions every parameter across ranks, so "
            "the EEG embedding's initialisation (it reads the token embedding), the 4-bit "
            "backbone's loading (a device_map and uint8 quant storage) and the rank-0 saves of "
            "the adapter, head and best model would see empty tensors. The backbone fits each "
            "GPU (Llama-3.1-8B in nf4: about 5 GB), so use ZeRO-2 (ds_configs/zero2.json), "
            "which partitions the optimizer state and gradients, or plain DDP"
        )


def check_launcher_environment(settings: Settings) -> None:
    """`check_launch` against the launcher this process was started by, as far as its
    environment tells; what it does not tell (an unreadable DeepSpeed config) is left to the
    check against the Accelerator."""
    try:
        processes = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return
    check_launch(settings, max(processes, 1), deepspeed_stage())


def deepspeed_stage() -> int | None:
    """The ZeRO stage `accelerate launch --use_deepspeed` gave this process; None without
    DeepSpeed or where the environment does not say (Accelerate then reads it itself)."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() != "true":
        return None
    path = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE")
    try:
        if path:
            with open(path) as f:
                stage = json.load(f).get("zero_optimization", {}).get("stage", 0)
        else:
            stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", 2)
        return int(stage)
    except (OSError, ValueError, TypeError, AttributeError):
        return None
