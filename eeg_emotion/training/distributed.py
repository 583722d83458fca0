"""The Accelerate side of a run: one process or many (DDP on GPUs, gloo on CPUs), with or
without DeepSpeed, mixed precision, and per-rank logging."""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.utils import DistributedType, InitProcessGroupKwargs, KwargsHandler

from eeg_emotion.config import Settings
from eeg_emotion.training import launch_checks, tracking

file_log = logging.getLogger("eeg_emotion.training.trainer.file")


def make_accelerator(settings: Settings, run_dir: Path) -> Accelerator:
    # `accelerate launch --use_deepspeed` sets this; cpu=True would silently drop DeepSpeed
    # (it runs on CPUs with its own CPU accelerator).
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    cpu = not torch.cuda.is_available() and not deepspeed
    if deepspeed:  # DeepSpeed fills `gradient_clipping: auto` from here (else 1.0)
        os.environ["ACCELERATE_GRADIENT_CLIPPING"] = str(settings.train.max_grad_norm or 0.0)
    precision = settings.train.mixed_precision
    if precision == "auto":  # the launcher's --mixed_precision if set, else bf16 on a GPU
        launcher = os.environ.get("ACCELERATE_MIXED_PRECISION", "no")
        gpu = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        precision = launcher if launcher != "no" else ("bf16" if gpu else "no")
    # DDP registers the parameters that require grad when it wraps the model, which happens with
    # every part that any phase trains switched on; parameters of parts that a phase freezes
    # then get no gradient, which DDP must be told to expect.
    unused = settings.model.phases_differ
    handlers: list[KwargsHandler] = [DistributedDataParallelKwargs(find_unused_parameters=unused)]
    if deepspeed and not torch.cuda.is_available():
        # Without a GPU Accelerate names no backend for DeepSpeed, and each process then counts
        # itself alone (rank 0 of 1) while DeepSpeed counts every rank; gloo gives them one group.
        handlers.append(InitProcessGroupKwargs(backend="gloo"))
    return Accelerator(
        cpu=cpu,
        mixed_precision=precision,
        gradient_accumulation_steps=settings.train.grad_accum,
        log_with=tracking.tracker_names(settings) or None,
        project_dir=str(run_dir),
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        kwargs_handlers=handlers,
    )


def check_launch(settings: Settings, accelerator: Accelerator) -> None:
    """Refuse, before any work, what would fail mid-run under this launcher."""
    stage = None
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        stage = accelerator.state.deepspeed_plugin.zero_stage
    launch_checks.check_launch(settings, accelerator.num_processes, stage)


def setup_logging(accelerator: Accelerator) -> None:
    """The console now; what is logged before the run folder is claimed is kept for train.log
    (`log_to_file`), so that a refused run writes no file at all."""
    level = logging.INFO if accelerator.is_main_process else logging.WARNING
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if accelerator.is_main_process:
        handlers.append(
            logging.handlers.MemoryHandler(capacity=10**6, flushLevel=logging.CRITICAL + 1)
        )
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(message)s", handlers=handlers, force=True
    )
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # per-file checkpoint chatter
    file_log.handlers[:] = []
    file_log.propagate = False
    file_log.setLevel(logging.INFO)


def log_to_file(accelerator: Accelerator, run_dir: Path) -> None:
    """train.log in the claimed run folder (main process): the lines kept so far, then the rest.
    What the console shows outside logging (the results table, the error that ends a run) goes
    there through `file_log`, which does not echo to the console again."""
    if not accelerator.is_main_process:
        return
    to_file = logging.FileHandler(run_dir / "train.log")
    to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    for kept in [h for h in root.handlers if isinstance(h, logging.handlers.MemoryHandler)]:
        kept.setTarget(to_file)
        kept.flush()
        root.removeHandler(kept)
        kept.close()
    root.addHandler(to_file)
    file_log.handlers[:] = [to_file]


def describe(accelerator: Accelerator, batch_size: int) -> str:
    """What runs where; tests read the backend from this line in train.log."""
    return (
        f"{accelerator.num_processes} process(es) on {accelerator.device}, "
        f"distributed={accelerator.distributed_type.value}, "
        f"mixed precision={accelerator.mixed_precision}, "
        f"{batch_size // accelerator.num_processes} window(s) per process per micro-batch"
    )
