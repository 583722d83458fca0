"""The training recipe: config -> data -> model -> fit -> best model on test -> run folder.

    accelerate launch launch/train.py --config configs/tiny.yaml [key.sub=value ...]

Read it top to bottom: `main` sets everything up, `fit` is the loop, `evaluate` computes metrics,
`finish` writes results. One process or many (DDP on GPUs, gloo on CPUs), with or without
DeepSpeed; on a machine without a GPU the same command runs on CPU processes.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.utils import DistributedType, set_seed
from torch.utils.data import DataLoader, Sampler
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from eeg_emotion import checkpoint, plots, run_folder, tracking
from eeg_emotion.classifier import EEGEmotionClassifier, InputSpec, phase_for_epoch
from eeg_emotion.config import Settings, dump_settings
from eeg_emotion.data import deap, pipeline
from eeg_emotion.data.dataset import Collator, TokenDataset
from eeg_emotion.data.splits import save_split
from eeg_emotion.errors import ConfigError, EEGEmotionError
from eeg_emotion.metrics import (
    format_table,
    full_report,
    majority_classes,
    split_metrics,
    subject_majorities,
)

log = logging.getLogger("eeg_emotion.train")
file_log = logging.getLogger("eeg_emotion.train.file")
EXIT_STOPPED = 3  # a stop was requested and a checkpoint saved: run again to resume


class StorageError(EEGEmotionError):
    """The run folder takes no more writes (full disk, quota, permissions); exit code 2."""


STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG}


class TrainingError(EEGEmotionError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is kept."""


@dataclass
class RunState:
    """Where training is; saved in every checkpoint (trainer_state.json)."""

    epoch: int = 0
    batches_done: int = 0  # micro-batches of `epoch` already consumed
    global_step: int = 0  # optimizer steps
    best_value: float | None = None
    best_step: int = -1
    bad_evals: int = 0
    early_stopped: bool = False


class EpochShuffle(Sampler[int]):
    """A fresh permutation per epoch from (seed, epoch): the data order never depends on
    global RNG state, so a resumed run sees exactly the batches it would have seen."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


def micro_batch_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, batch, rank]).generate_state(1)[0])


class StopRequest:
    """A stop file in the run folder, SIGTERM, SIGUSR1 or Ctrl-C (SIGINT) asks for
    checkpoint-and-exit; a second Ctrl-C aborts at once. When the process that started this one
    dies (`accelerate launch` killed with SIGTERM does not wait for its worker), the worker gets
    SIGTERM too rather than training on, detached (Linux)."""

    def __init__(self, run_dir: Path) -> None:
        self.file = run_dir / "STOP"
        self.signal: int | None = None
        for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
            signal.signal(sig, self._handle)
        _term_when_parent_dies()

    def _handle(self, signum: int, _frame: Any) -> None:
        if signum == signal.SIGINT and self.signal == signal.SIGINT:
            raise KeyboardInterrupt  # Ctrl-C twice: no checkpoint, stop now
        if signum == signal.SIGINT:
            print("stopping at the next checkpoint (Ctrl-C again to abort)", file=sys.stderr)
        self.signal = signum

    def requested(self) -> bool:
        return self.signal is not None or self.file.exists()


def _term_when_parent_dies() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return


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
    unused = len({tuple(sorted(p.train)) for p in settings.model.phases}) > 1
    return Accelerator(
        cpu=cpu,
        mixed_precision=precision,
        gradient_accumulation_steps=settings.train.grad_accum,
        log_with=tracking.tracker_names(settings) or None,
        project_dir=str(run_dir),
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=unused)],
    )


def check_launch(settings: Settings, accelerator: Accelerator) -> None:
    """Refuse, before any work, what would fail mid-run under this launcher."""
    n, batch = accelerator.num_processes, settings.train.batch_size
    if batch % n:
        raise ConfigError(
            f"train.batch_size={batch} is the global micro-batch and must split evenly over the "
            f"{n} processes (e.g. train.batch_size={max(1, batch // n) * n} or "
            f"{(batch // n + 1) * n})"
        )
    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return
    if len({tuple(p.train) for p in settings.model.phases}) > 1:
        raise ConfigError(
            "DeepSpeed fixes the trainable parameters when it starts: give "
            "model.phases a single phase (e.g. [{train: [head, embedding, lora]}])"
        )
    stage = accelerator.state.deepspeed_plugin.zero_stage
    if stage == 3:
        raise ConfigError(
            "DeepSpeed ZeRO-3 is not supported: it partitions every parameter across ranks, so "
            "the EEG embedding's initialisation (it reads the token embedding), the 4-bit "
            "backbone's loading (a device_map and uint8 quant storage) and the rank-0 saves of "
            "the adapter, head and best model would see empty tensors. The backbone fits each "
            "GPU (Llama-3.1-8B in nf4: about 5 GB), so use ZeRO-2 (ds_configs/zero2.json), "
            "which partitions the optimizer state and gradients, or plain DDP"
        )


def setup_logging(accelerator: Accelerator, run_dir: Path) -> None:
    level = logging.INFO if accelerator.is_main_process else logging.WARNING
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if accelerator.is_main_process:
        handlers.append(logging.FileHandler(run_dir / "train.log"))
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(message)s", handlers=handlers, force=True
    )
    logging.getLogger("accelerate").setLevel(logging.WARNING)  # per-file checkpoint chatter
    # What the console shows outside logging (the results table, the error that ends a run)
    # goes to train.log through this one, which does not echo to the console again.
    file_log.handlers[:] = handlers[1:]
    file_log.propagate = False
    file_log.setLevel(logging.INFO)


def main(settings: Settings) -> int:
    """Train, select the best checkpoint on val, evaluate it on test. Returns an exit code."""
    run_dir = Path(settings.output_dir)
    # Nothing in the folder is touched before these: a relaunch with other settings or on
    # changed data files is refused (see run_folder.py), and so is a folder in use.
    run_folder.check_settings(settings, run_dir)
    files = [
        deap.subject_file(settings.data.root, s)
        for s in deap.resolve_subjects(settings.data.root, settings.data.subjects)
    ]
    fingerprint = run_folder.data_fingerprint(files)
    run_folder.check_data(run_dir, fingerprint)
    accelerator = make_accelerator(settings, run_dir)
    check_launch(settings, accelerator)
    lock = run_folder.RunLock(run_dir)
    if accelerator.is_main_process:
        lock.acquire()  # creates the folder
    accelerator.wait_for_everyone()
    try:
        return run(settings, accelerator, run_dir, lock, fingerprint)
    finally:
        lock.release()


def run(
    settings: Settings,
    accelerator: Accelerator,
    run_dir: Path,
    lock: run_folder.RunLock,
    fingerprint: dict[str, list[float]],
) -> int:
    setup_logging(accelerator, run_dir)
    if lock.took_over:
        log.warning("taking over the run folder's lock: %s", lock.took_over)
    set_seed(settings.seed)
    log.info(
        "%d process(es) on %s, distributed=%s, mixed precision=%s, %d window(s) per process "
        "per micro-batch",
        accelerator.num_processes,
        accelerator.device,
        accelerator.distributed_type.value,
        accelerator.mixed_precision,
        settings.train.batch_size // accelerator.num_processes,
    )

    # Data: built (or loaded from the cache) by the main process first.
    with accelerator.main_process_first():
        data = pipeline.build(settings.data, progress=accelerator.is_main_process)
    if len(data.indices("val")) == 0:
        raise ConfigError(
            "the val split is empty: model selection needs it (data.split.val_fraction)"
        )
    if accelerator.is_main_process:
        dump_settings(settings, run_dir / "config.yaml")
        save_split(data.split, run_dir / "splits.json")
        if not (run_dir / "data_files.json").exists():
            run_folder.save_data_fingerprint(run_dir, fingerprint)
        if (run_dir / "STOP").exists():
            (run_dir / "STOP").unlink()  # a new launch means: go on
            log.info("removed a stop file left by the previous job")
        for path in checkpoint.remove_leftovers(run_dir):  # we hold the lock: nobody writes
            log.info("removed %s, left half-written by an earlier job", path.name)
    train_labels = np.asarray(data.labels)[data.indices("train")].astype(np.int64)
    majority = majority_classes(train_labels, int(data.meta["num_classes"]))
    train_subjects = np.asarray(data.rows)[data.indices("train"), 0]
    subject_majority = subject_majorities(
        train_labels, train_subjects, int(data.meta["num_classes"])
    )

    # Model, optimizer (separate learning rates), schedule sized in optimizer steps.
    device = accelerator.local_process_index if torch.cuda.is_available() else "cpu"
    # The main process first: it creates cached backbone folders (embedded conversion, tiny
    # model) that the other ranks then only read.
    with accelerator.main_process_first():
        model = EEGEmotionClassifier(settings.model, InputSpec.from_data(data), device=device)
    model.set_class_weights(torch.from_numpy(train_labels))
    t = settings.train
    # One group per part that some phase trains (DeepSpeed rejects a group with nothing to train).
    parts = {part for phase in settings.model.phases for part in phase.train}
    wanted = {
        "head": bool(parts & {"head", "embedding"}),
        "lora": bool(parts & {"lora", "backbone"}),
        "backbone": "backbone" in parts,
    }
    lr = {"head": t.lr_head, "lora": t.lr_lora, "backbone": t.lr_backbone}
    optimizer = torch.optim.AdamW(
        [
            {"params": params, "lr": lr[name], "name": name}
            for name, params in model.trainable_groups().items()
            if wanted[name] and params
        ],
        weight_decay=t.weight_decay,
    )
    pad = Collator(data.pad_id)
    train_ds = TokenDataset(data, "train")
    if len(train_ds) < t.batch_size:
        raise ConfigError(
            f"train.batch_size={t.batch_size} exceeds the {len(train_ds)} training windows"
        )
    train_loader = DataLoader(
        train_ds,
        batch_size=t.batch_size,
        sampler=EpochShuffle(len(train_ds), settings.seed),
        collate_fn=pad,
        drop_last=True,
        num_workers=t.num_workers,
    )
    eval_loaders = {
        part: DataLoader(
            TokenDataset(data, part),
            batch_size=t.batch_size,
            collate_fn=pad,
            num_workers=t.num_workers,
        )
        for part in ("val", "test")
    }
    steps_per_epoch = math.ceil(len(train_loader) / t.grad_accum)
    total_steps = steps_per_epoch * t.epochs
    # Not prepared: it is stepped once per optimizer step, whatever the number of processes.
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, round(t.warmup_ratio * total_steps), total_steps
    )
    model.train()
    # Wrapped with every part that any phase trains switched on (see make_accelerator).
    model.set_phase(parts)
    model, optimizer, train_loader, val_loader, test_loader = accelerator.prepare(
        model, optimizer, train_loader, eval_loaders["val"], eval_loaders["test"]
    )
    classifier = accelerator.unwrap_model(model)  # unwrapping walks every module: once
    accelerator.register_for_checkpointing(scheduler)
    checkpoint.install_hooks(accelerator, classifier)

    state = RunState()
    resume = resolve_resume(settings, run_dir)
    if resume is not None:
        accelerator.load_state(str(resume), **checkpoint.deepspeed_kwargs(accelerator, False))
        state = RunState(**checkpoint.read_state(resume)["run"])
        log.info("resumed from %s", resume)
    tracking.start(accelerator, settings, run_dir)
    metrics_log = tracking.MetricsLog(accelerator, run_dir)
    if resume is not None:  # rows a killed run logged after its last checkpoint come again
        metrics_log.drop_after(state.global_step)
    write_status(accelerator, run_dir, "running", state)

    ctx = {
        "accelerator": accelerator,
        "settings": settings,
        "run_dir": run_dir,
        "model": model,
        "classifier": classifier,
        "lock": lock,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "metrics_log": metrics_log,
        "majority": majority,
        "subject_majority": subject_majority,
        "data": data,
        "batches_per_epoch": len(train_loader),
    }
    try:
        outcome = fit(ctx, state, train_loader, val_loader, steps_per_epoch)
        if outcome == "stopped":
            write_status(accelerator, run_dir, "stopped", state)
            return EXIT_STOPPED
        finish(ctx, state, val_loader, test_loader)
        write_status(accelerator, run_dir, "finished", state)
        return 0
    except TrainingError as exc:
        write_status(accelerator, run_dir, "failed", state, str(exc))
        file_log.error("error: %s", exc)
        raise
    except EEGEmotionError as exc:
        file_log.error("error: %s", exc)
        raise
    except Exception as exc:  # torch, safetensors and numpy each word a full disk their way
        reason = storage_problem(exc)
        if reason is None:
            raise
        message = (
            f"cannot write to {run_dir} ({reason}); the checkpoints saved before are intact: "
            "free space (or fix the folder) and run the same command to resume"
        )
        write_status(accelerator, run_dir, "failed", state, message)
        raise StorageError(message) from None
    finally:
        accelerator.end_training()


def storage_problem(exc: BaseException) -> str | None:
    """What went wrong when the run folder cannot take more writes (full disk, quota,
    read-only, permissions), or None for any other error."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in STORAGE_ERRNOS:
            return f"{seen.filename + ': ' if seen.filename else ''}{seen.strerror}"
        text = str(seen)
        if "No space left on device" in text or "file write failed" in text:
            return text.strip().splitlines()[0][:300]
        seen = seen.__cause__ or seen.__context__
    return None


def resolve_resume(settings: Settings, run_dir: Path) -> Path | None:
    if settings.train.resume == "never":
        return None
    if settings.train.resume == "auto":  # the newest checkpoint whose files all verify
        found, skipped = checkpoint.latest_verified(run_dir)
        for folder, reason in skipped:
            log.warning("skipping checkpoint %s: %s", folder.name, reason)
        return found
    path = Path(settings.train.resume)
    reason = checkpoint.verify(path)
    if reason is not None:
        raise ConfigError(f"train.resume={path}: not a usable checkpoint: {reason}")
    return path


def fit(
    ctx: dict,
    state: RunState,
    train_loader: DataLoader,
    val_loader: DataLoader,
    steps_per_epoch: int,
) -> str:
    """The loop. Returns "finished" or "stopped" (checkpoint saved on request)."""
    accelerator, settings, model = ctx["accelerator"], ctx["settings"], ctx["model"]
    optimizer, scheduler, t = ctx["optimizer"], ctx["scheduler"], ctx["settings"].train
    if state.early_stopped:  # relaunched (e.g. requeued) after early stopping: nothing to do
        return "finished"
    stop = StopRequest(ctx["run_dir"])
    params = [p for g in optimizer.param_groups for p in g["params"]]
    window = {"loss": 0.0, "micro": 0, "samples": 0, "tokens": 0, "start": time.perf_counter()}
    nonfinite = torch.zeros((), device=accelerator.device)
    bar = tqdm(
        total=steps_per_epoch * t.epochs,
        initial=state.global_step,
        desc="train",
        disable=not accelerator.is_main_process,
    )
    for epoch in range(state.epoch, t.epochs):
        phase = phase_for_epoch(settings.model.phases, epoch)
        ctx["classifier"].set_phase(phase.train)
        train_loader.set_epoch(epoch)
        loader = (
            accelerator.skip_first_batches(train_loader, state.batches_done)
            if state.batches_done
            else train_loader
        )
        model.train()
        for batch in loader:
            # Dropout masks from (seed, epoch, micro-batch, rank) alone: a resumed run draws
            # exactly what an uninterrupted one draws, whatever consumed random numbers before
            # (a new DataLoader iterator, an evaluation, a restart).
            torch.manual_seed(
                micro_batch_seed(
                    settings.seed, epoch, state.batches_done, accelerator.process_index
                )
            )
            with accelerator.accumulate(model):
                out = model(
                    input_ids=batch["input_ids"],
                    attention_mask=batch["attention_mask"],
                    labels=batch["labels"],
                )
                loss = out["loss"]
                nonfinite += (~torch.isfinite(loss.detach())).float()  # on device: no sync
                # One collective per optimizer step, before the backward that syncs and steps
                # (under DeepSpeed `backward` also steps): every rank stops together.
                if accelerator.sync_gradients:
                    if accelerator.reduce(nonfinite, "sum").item() > 0:
                        last = checkpoint.latest_checkpoint(ctx["run_dir"])
                        raise TrainingError(
                            f"non-finite loss at epoch {epoch}, in optimizer step "
                            f"{state.global_step + 1} (micro-batch {state.batches_done}): "
                            f"stopped without saving; last good checkpoint: {last}"
                        )
                    nonfinite.zero_()
                accelerator.backward(loss)
                grad_norm = None
                if accelerator.sync_gradients and t.max_grad_norm:
                    grad_norm = accelerator.clip_grad_norm_(
                        [p for p in params if p.requires_grad], t.max_grad_norm
                    )
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            state.batches_done += 1
            window["loss"] += loss.detach().float()  # summed as a tensor: no sync per step
            window["micro"] += 1
            window["samples"] += t.batch_size
            window["tokens"] += batch["attention_mask"].sum()  # this rank's, on device
            if not accelerator.sync_gradients:
                continue
            state.global_step += 1
            bar.update(1)
            if state.global_step % t.log_every == 0:
                log_train(ctx, state, window, grad_norm, phase.train)
            paused = time.perf_counter()  # evaluation and saving are not training throughput
            if t.eval_every and state.global_step % t.eval_every == 0:
                validate(ctx, state, val_loader)
                model.train()
            if t.checkpoint_every and state.global_step % t.checkpoint_every == 0:
                save(ctx, state)
            window["start"] += time.perf_counter() - paused
            # Polled every stop_check_every steps: a collective and a file stat per step cost.
            if state.global_step % t.stop_check_every:
                continue
            ctx["lock"].refresh()  # tells a later launch that this run is alive
            if stop.requested():
                accelerator.set_trigger()
            if accelerator.check_trigger():
                save(ctx, state)
                log.info(
                    "stop requested (%s): checkpoint saved at step %d",
                    stop.signal or stop.file,
                    state.global_step,
                )
                return "stopped"
            if state.early_stopped:
                break
        if not state.early_stopped:
            state.epoch, state.batches_done = epoch + 1, 0
            if not t.eval_every:
                validate(ctx, state, val_loader)
        save(ctx, state)
        if state.early_stopped:
            log.info("early stopping: no improvement in %d evaluations", t.patience)
            break
    bar.close()
    return "finished"


def log_train(ctx: dict, state: RunState, window: dict, grad_norm: Any, phase: list[str]) -> None:
    accelerator, optimizer = ctx["accelerator"], ctx["optimizer"]
    elapsed = time.perf_counter() - window["start"]
    mean_loss = torch.as_tensor(window["loss"], device=accelerator.device) / max(window["micro"], 1)
    row = {
        "train/loss": accelerator.reduce(mean_loss, "mean").item(),
        "train/epoch": state.epoch + state.batches_done / ctx["batches_per_epoch"],
        "train/samples_per_s": window["samples"] / elapsed,
        "train/tokens_per_s": float(accelerator.reduce(window["tokens"], "sum")) / elapsed,
        "train/peak_memory_mb": tracking.peak_memory_mb(),
        "train/phase_lora": float("lora" in phase),
    }
    for group in optimizer.param_groups:
        row[f"train/lr_{group['name']}"] = group["lr"]
    if grad_norm is not None:
        row["train/grad_norm"] = float(grad_norm)
    seq = row["train/tokens_per_s"] / max(row["train/samples_per_s"], 1e-9)
    classifier = ctx["classifier"]
    util = tracking.mfu(
        row["train/tokens_per_s"],
        classifier.config,
        int(seq),
        accelerator.num_processes,
        backward=classifier.backbone_grad,
    )
    if util is not None:
        row["train/mfu"] = util
    ctx["metrics_log"].log(row, step=state.global_step)
    window.update(loss=0.0, micro=0, samples=0, tokens=0, start=time.perf_counter())


def predict(ctx: dict, loader: DataLoader) -> dict[str, np.ndarray]:
    """Probabilities per target, labels and rows for every example of `loader`, gathered."""
    accelerator, model = ctx["accelerator"], ctx["model"]
    model.eval()
    probs, labels, rows, losses = [], [], [], []
    with torch.no_grad():
        for batch in loader:
            out = model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                labels=batch["labels"],
            )
            p = torch.stack([torch.softmax(v.float(), -1) for v in out["logits"].values()], 1)
            row = torch.stack([batch["subject"], batch["trial"], batch["window"]], 1)
            n = torch.full((len(p),), 1.0, device=p.device) * out["loss"].detach()
            g = accelerator.gather_for_metrics((p, batch["labels"], row, n))
            for store, value in zip((probs, labels, rows, losses), g, strict=True):
                store.append(value.cpu())
    return {
        "probs": torch.cat(probs).numpy(),
        "labels": torch.cat(labels).numpy(),
        "rows": torch.cat(rows).numpy(),
        "loss": float(torch.cat(losses).mean()),
    }


def evaluate(ctx: dict, loader: DataLoader) -> dict:
    pred = predict(ctx, loader)
    data = ctx["data"]
    metrics = split_metrics(
        pred["labels"],
        pred["probs"].argmax(-1),
        data.targets,
        int(data.meta["num_classes"]),
        ctx["majority"],
    )
    metrics["loss"] = pred["loss"]
    return metrics


def validate(ctx: dict, state: RunState, loader: DataLoader) -> None:
    """Evaluate on val; keep the best model (RUN/best/); count evaluations without progress."""
    settings, accelerator = ctx["settings"], ctx["accelerator"]
    metrics = evaluate(ctx, loader)
    row = {
        "val/loss": metrics["loss"],
        "val/mean_balanced_accuracy": metrics["mean_balanced_accuracy"],
        "val/overall_accuracy": metrics["overall"]["accuracy"],
    }
    for target in ctx["data"].targets:
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "majority_baseline"):
            row[f"val/{target}/{key}"] = metrics[target][key]
    ctx["metrics_log"].log(row, step=state.global_step)
    name = settings.train.best_metric
    value = metrics[name]
    better = state.best_value is None or (
        value < state.best_value if name == "loss" else value > state.best_value
    )
    if better:
        state.best_value, state.best_step, state.bad_evals = value, state.global_step, 0
        if accelerator.is_main_process:
            save_best(ctx, metrics, state)
    else:
        state.bad_evals += 1
        if settings.train.patience and state.bad_evals >= settings.train.patience:
            state.early_stopped = True
    accelerator.wait_for_everyone()


def save_best(ctx: dict, metrics: dict, state: RunState) -> None:
    run_dir, data = ctx["run_dir"], ctx["data"]
    tmp, best = run_dir / ".tmp-best", run_dir / "best"
    shutil.rmtree(tmp, ignore_errors=True)
    ctx["classifier"].save_pretrained(tmp)
    for name in ("edges.npy", "train_norm.npy"):  # what predict.py needs to tokenize new files
        shutil.copy(data.path / name, tmp / name)
    (tmp / "val_metrics.json").write_text(
        json.dumps({"step": state.global_step, **metrics}, indent=1)
    )
    old = run_dir / ".old-best"
    if best.exists():
        os.replace(best, old)
    os.replace(tmp, best)
    shutil.rmtree(old, ignore_errors=True)


def save(ctx: dict, state: RunState) -> None:
    checkpoint.save_checkpoint(
        ctx["accelerator"],
        ctx["run_dir"],
        state.global_step,
        {"run": asdict(state)},
        ctx["settings"].train.keep_checkpoints,
    )


def write_status(
    accelerator: Accelerator, run_dir: Path, status: str, state: RunState, message: str = ""
) -> None:
    if accelerator.is_main_process:
        (run_dir / "status.json").write_text(
            json.dumps(
                {
                    "status": status,
                    "global_step": state.global_step,
                    "epoch": state.epoch,
                    "message": message,
                }
            )
        )


def finish(ctx: dict, state: RunState, val_loader: DataLoader, test_loader: DataLoader) -> None:
    """Load the best model, evaluate it on val and test, write results, tables and plots."""
    accelerator, run_dir, data = ctx["accelerator"], ctx["run_dir"], ctx["data"]
    accelerator.wait_for_everyone()
    ctx["classifier"].load_trained(run_dir / "best")
    results = {}
    for part, loader in (("val", val_loader), ("test", test_loader)):
        pred = predict(ctx, loader)
        results[part] = full_report(
            pred["probs"],
            pred["labels"],
            pred["rows"],
            data.targets,
            int(data.meta["num_classes"]),
            ctx["majority"],
            ctx["settings"].seed,
            ctx["subject_majority"],
        )
        results[part]["loss"] = pred["loss"]
        if accelerator.is_main_process:  # for reports: every window's probabilities
            np.savez(
                run_dir / f"predictions_{part}.npz",
                **{k: v for k, v in pred.items() if k != "loss"},
            )
    results.update(
        {
            "best": {
                "metric": ctx["settings"].train.best_metric,
                "value": state.best_value,
                "step": state.best_step,
            },
        }
    )
    row = {
        "test/mean_balanced_accuracy": results["test"]["mean_balanced_accuracy"],
        "test/overall_accuracy": results["test"]["overall"]["accuracy"],
    }
    for target in data.targets:
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "majority_baseline"):
            row[f"test/{target}/{key}"] = results["test"][target][key]
    ctx["metrics_log"].log(row, step=state.global_step)
    if not accelerator.is_main_process:
        return
    (run_dir / "results.json").write_text(json.dumps(results, indent=1))
    table = format_table(
        results["test"], data.targets, f"test (best model from step {state.best_step})"
    )
    (run_dir / "test_results.txt").write_text(table + "\n")
    images = plots.training_curves(ctx["metrics_log"].rows(), data.targets, run_dir / "plots")
    images.update(
        plots.confusion_matrices(
            results["test"], data.targets, data.meta["class_names"], "test", run_dir / "plots"
        )
    )
    ctx["metrics_log"].images(images, step=state.global_step)
    print(table)
    file_log.info("\n%s", table)
