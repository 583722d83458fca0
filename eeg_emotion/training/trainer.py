"""The training recipe: config -> data -> model -> fit -> best model on test -> run folder.

    accelerate launch launch/train.py --config configs/tiny.yaml [key.sub=value ...]

Read it top to bottom: `main` guards the run folder and starts the launcher (`Ending` records
how a run that holds the folder ended with an error), `Trainer.setup` builds the data, model and
optimizer, `fit` is the loop, `validate` keeps the best model on val, `finish` evaluates it on
val and test and hands the predictions to `scoring.write_run`. One process or many (DDP on GPUs,
gloo on CPUs), with or without DeepSpeed; on a machine without a GPU the same command runs on
CPU processes.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm import tqdm
from transformers import get_cosine_schedule_with_warmup

from eeg_emotion.config import Settings, TrainSettings
from eeg_emotion.data import pipeline
from eeg_emotion.data.dataset import loaders, micro_batch_seed, model_inputs, training_crop
from eeg_emotion.data.pipeline import TokenData
from eeg_emotion.errors import ConfigError, EEGEmotionError, StorageError, TrainingError
from eeg_emotion.evaluation import model_card, scoring
from eeg_emotion.evaluation.metrics import split_metrics, trial_loss
from eeg_emotion.evaluation.scoring import Majorities, Predictions
from eeg_emotion.model import backbone
from eeg_emotion.model.classifier import (
    UNBALANCED,
    EEGEmotionClassifier,
    InputSpec,
    make_optimizer,
)
from eeg_emotion.training import checkpoint, distributed, run_folder, tracking
from eeg_emotion.training.checkpoint import RunState
from eeg_emotion.training.probe import FirstStepProbe
from eeg_emotion.training.stopping import StopRequest, storage_problem

log = logging.getLogger("eeg_emotion.training.trainer")
LOWER_IS_BETTER = ("loss", "trial_loss")  # val metrics that select the model at their lowest
file_log = distributed.file_log  # train.log only: the table and the error that ends a run


class Outcome(str, Enum):
    """How a run ended without an error; launch/train.py maps it to an exit code."""

    FINISHED = "finished"
    STOPPED = "stopped"  # on request, checkpoint saved: the same command resumes


def main(settings: Settings, trial: Callable[[int, float], bool] | None = None) -> Outcome:
    """Train, select the best checkpoint on val, evaluate it on test (a tune trial's: `trial`)."""
    run_dir = Path(settings.output_dir)
    # Nothing in the folder is touched before these: a relaunch with other settings or on
    # changed data files is refused (see run_folder.py), and so is a folder in use.
    fingerprint = run_folder.check_relaunch(settings, run_dir)
    accelerator = distributed.make_accelerator(settings, run_dir)
    distributed.check_launch(settings, accelerator)
    distributed.setup_logging(accelerator)
    # The data are read and every check that needs them made before the folder is claimed: a
    # refused run leaves no folder behind, and the corrected rerun is not bound to its settings.
    log.info(distributed.describe(accelerator, settings.train.batch_size))
    with accelerator.main_process_first():  # the main process builds the data cache first
        data = pipeline.build(settings.data, progress=accelerator.is_main_process)
    check_schedule(settings.train, data)
    if settings.model.num_layers is not None:  # deeper than the backbone: its config says
        backbone.backbone_config(settings.model, offline=settings.model.init == "random")
    lock = run_folder.RunLock(run_dir)
    if accelerator.is_main_process:
        lock.acquire()  # creates the folder
    accelerator.wait_for_everyone()
    ending = Ending(run_dir, lock)  # the folder is ours: however the run ends, it is recorded
    try:
        distributed.log_to_file(accelerator, run_dir)
        if lock.took_over:
            log.warning("taking over the run folder's lock: %s", lock.took_over)
        trainer = Trainer.setup(settings, accelerator, run_dir, lock, fingerprint, data)
        ending.state, trainer.trial = trainer.state, trial
        return trainer.run()
    except BaseException as exc:
        raise ending.record(exc) from None
    finally:
        try:
            tracking.end(accelerator)
        finally:
            lock.release()


def optimizer_steps_per_epoch(t: TrainSettings, data: TokenData) -> int:
    """Full micro-batches of the training windows (the train loader drops a partial one),
    one optimizer step per `grad_accum` of them."""
    return math.ceil(len(data.indices("train")) // t.batch_size / t.grad_accum)


def check_schedule(t: TrainSettings, data: TokenData) -> None:
    """What the number of steps must allow; the loaders' own checks (an empty val split, a
    batch larger than the training windows, a crop the windows cannot give) run here too, all
    before any work."""
    loaders(data, t.batch_size, 0, 0, training_crop(t.crop, data, 0))
    total_steps = optimizer_steps_per_epoch(t, data) * t.epochs
    if t.eval_every > total_steps:  # no evaluation would ever pick a best model
        raise ConfigError(
            f"train.eval_every={t.eval_every} exceeds the run's {total_steps} optimizer "
            "steps: no evaluation would pick a best model (use a smaller value, or 0 to "
            "evaluate at each epoch's end)"
        )
    last_eval = total_steps - total_steps % t.eval_every if t.eval_every else total_steps
    if t.select_after > last_eval:
        raise ConfigError(
            f"train.select_after={t.select_after} is past the run's last evaluation (step "
            f"{last_eval} of {total_steps}): no evaluation could pick a best model"
        )


@dataclass
class Ending:
    """How a run that holds its folder ended with an error: status.json (main process, lock
    held), train.log, and the project error that gives the exit code."""

    run_dir: Path
    lock: run_folder.RunLock
    state: RunState | None = None  # None until setup has loaded it

    def record(self, exc: BaseException) -> BaseException:
        """The exception to raise for `exc`, once recorded: a project error as it is (exit 2,
        or 1 for a training failure), a full disk as a StorageError (2), anything unexpected as
        a TrainingError (1) whose traceback is in train.log."""
        if isinstance(exc, EEGEmotionError):
            self.status("failed", str(exc))
            file_log.error("error: %s", exc)
            return exc
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C twice, or once before the loop
            message = "interrupted (Ctrl-C) without a checkpoint for this stop: the same "
            message += "command resumes from the last one saved"
            self.status("stopped", message)
            file_log.error("%s", message)
            return exc
        reason = storage_problem(exc)
        if reason is not None:
            message = (
                f"cannot write to {self.run_dir} ({reason}); the checkpoints saved before are "
                "intact: free space (or fix the folder) and run the same command to resume"
            )
            self.status("failed", message)
            file_log.error("error: %s", message)
            return StorageError(message)
        if not isinstance(exc, Exception):  # SystemExit and the like: as they are
            return exc
        message = f"{type(exc).__name__}: {exc}"
        self.status("failed", message)
        if not self.lock.held:  # another rank: it has no train.log, the console gets it all
            log.error("error: %s", message, exc_info=exc)
            return TrainingError(f"{message} (unexpected: the traceback is above)")
        file_log.error("error: %s", message, exc_info=exc)
        log_file = self.run_dir / "train.log"
        return TrainingError(f"{message} (unexpected: the traceback is in {log_file})")

    def status(self, status: str, message: str) -> None:
        """Written into a folder this process holds, by the main process only (the lock is
        held there); the progress is the run's, or the last recorded one before setup."""
        if not self.lock.held:
            return
        try:
            if self.state is not None:
                step, epoch = self.state.global_step, self.state.epoch
            else:
                step, epoch = run_folder.read_progress(self.run_dir)
            run_folder.write_status(self.run_dir, status, step, epoch, message)
        except OSError as exc:  # e.g. the full disk that ended the run
            log.error("cannot write %s: %s", self.run_dir / "status.json", exc)


def resume_state(accelerator: Accelerator, resume: str, run_dir: Path) -> RunState | None:
    """Load the checkpoint that `train.resume` names into the prepared objects; its RunState,
    or None for a fresh start."""
    folder, skipped = checkpoint.resolve_resume(resume, run_dir)
    for skip, reason in skipped:
        log.warning("skipping checkpoint %s: %s", skip.name, reason)
    if folder is None:
        return None
    accelerator.load_state(str(folder), **checkpoint.deepspeed_kwargs(accelerator, False))
    state = RunState(**checkpoint.read_state(folder)["run"])
    log.info("resumed from %s", folder)
    return state


def seed_dropout(seed: int) -> None:
    """What torch.manual_seed does for the CPU and CUDA generators, which dropout draws from.
    torch.manual_seed itself, on a machine without CUDA, also queues a lazy CUDA seeding that
    formats the caller's stack trace: a cost on every micro-batch of a CPU run."""
    torch.random.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


@dataclass
class Trainer:
    settings: Settings
    accelerator: Accelerator
    run_dir: Path
    lock: run_folder.RunLock
    data: pipeline.TokenData
    model: torch.nn.Module  # as prepared by Accelerate (DDP / DeepSpeed wrapped)
    classifier: EEGEmotionClassifier  # the same model, unwrapped
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_loader: DataLoader
    val_loader: DataLoader
    test_loader: DataLoader
    metrics_log: tracking.MetricsLog
    majorities: Majorities
    state: RunState
    steps_per_epoch: int
    # The loop's own, set by `fit` (not checkpointed).
    stop: StopRequest = field(init=False)
    throughput: tracking.Throughput = field(init=False)  # since the last train row
    nonfinite: torch.Tensor = field(init=False)  # non-finite losses since the last optimizer step
    # The parts whose first micro-batch was probed (a line in train.log per phase).
    probed: list[str] | None = field(default=None, init=False)
    probe_due: bool = field(default=False, init=False)
    trial: Callable[[int, float], bool] | None = None  # tune: (step, val) -> pruned?; no test

    @classmethod
    def setup(
        cls,
        settings: Settings,
        accelerator: Accelerator,
        run_dir: Path,
        lock: run_folder.RunLock,
        fingerprint: dict[str, list[float]],
        data: TokenData,
    ) -> Trainer:
        set_seed(settings.seed)
        t = settings.train
        if accelerator.is_main_process:
            run_folder.prepare(settings, run_dir, data.split, fingerprint)  # we hold the lock
        # Model (the main process first: it creates cached backbone folders that the other
        # ranks then only read), optimizer with a learning rate per part, schedule in steps.
        device = accelerator.local_process_index if torch.cuda.is_available() else "cpu"
        with accelerator.main_process_first():
            model = EEGEmotionClassifier(settings.model, InputSpec.from_data(data), device=device)
        log.info(model.kernels)
        weighted = model.set_class_weights(torch.from_numpy(data.train_labels()))
        if settings.model.loss.class_weights == "auto":
            log.info(
                "class weights (model.loss.class_weights=auto: balanced where the rarest "
                "training class is under %g x the commonest): %s",
                UNBALANCED,
                ", ".join(f"{t} {'balanced' if w else 'none'}" for t, w in weighted.items()),
            )
        parts = settings.model.trained_parts
        optimizer = make_optimizer(model, t, parts)
        crop = training_crop(t.crop, data, settings.seed)
        train_loader, val_loader, test_loader = loaders(
            data, t.batch_size, settings.seed, t.num_workers, crop
        )
        if crop is not None:
            log.info(
                "training crops: %d of %d patches (%d samples) per window, at a random sample "
                "offset each epoch; val and test read every full window",
                crop.patches,
                crop.window_patches,
                crop.samples,
            )
        steps_per_epoch = optimizer_steps_per_epoch(t, data)
        total_steps = steps_per_epoch * t.epochs
        # Not prepared: it is stepped once per optimizer step, whatever the number of processes.
        scheduler = get_cosine_schedule_with_warmup(
            optimizer, round(t.warmup_ratio * total_steps), total_steps
        )
        model.train()
        # Wrapped with every part that any phase trains switched on (see make_accelerator).
        model.set_phase(parts)
        wrapped, optimizer, train_loader, val_loader, test_loader = accelerator.prepare(
            model, optimizer, train_loader, val_loader, test_loader
        )
        classifier = accelerator.unwrap_model(wrapped)  # unwrapping walks every module: once
        accelerator.register_for_checkpointing(scheduler)
        checkpoint.install_hooks(accelerator, classifier)
        resumed = resume_state(accelerator, t.resume, run_dir)
        tracking.start(accelerator, settings, run_dir)
        metrics_log = tracking.MetricsLog(accelerator, run_dir)
        if resumed is not None:  # rows a killed run logged after its last checkpoint come again
            metrics_log.drop_after(resumed.global_step)
        trainer = cls(
            settings=settings,
            accelerator=accelerator,
            run_dir=run_dir,
            lock=lock,
            data=data,
            model=wrapped,
            classifier=classifier,
            optimizer=optimizer,
            scheduler=scheduler,
            train_loader=train_loader,
            val_loader=val_loader,
            test_loader=test_loader,
            metrics_log=metrics_log,
            majorities=Majorities.of(data),
            state=resumed or RunState(),
            steps_per_epoch=steps_per_epoch,
        )
        trainer.status("running")
        return trainer

    def run(self) -> Outcome:
        """The loop and the final evaluation; how an error ends the run is `Ending`'s."""
        outcome = self.fit()
        if outcome is Outcome.FINISHED and self.trial is None:  # a search trial leaves test unread
            self.finish()
        self.status(outcome.value)
        return outcome

    def fit(self) -> Outcome:
        """The loop; returns after the last epoch, early stopping, or a stop request."""
        accelerator, state, t = self.accelerator, self.state, self.settings.train
        if state.early_stopped:  # relaunched (e.g. requeued) after early stopping: nothing to do
            return Outcome.FINISHED
        self.stop = StopRequest(self.run_dir)
        self.throughput = tracking.Throughput()
        self.nonfinite = torch.zeros((), device=accelerator.device)
        bar = tqdm(
            total=self.steps_per_epoch * t.epochs,
            initial=state.global_step,
            desc="train",
            disable=not accelerator.is_main_process,
        )
        with bar:  # closed however the loop ends: an error's line starts a line of its own
            for epoch in range(state.epoch, t.epochs):
                phase = self.settings.model.phase_for_epoch(epoch)
                for batch in self.epoch_batches(epoch, phase.train):
                    grad_norm = self.train_micro_batch(batch, epoch)
                    if not accelerator.sync_gradients:
                        continue  # gradients accumulate: no optimizer step yet
                    state.global_step += 1
                    bar.update(1)
                    if self.after_optimizer_step(grad_norm, phase.train):
                        return Outcome.STOPPED
                    if state.early_stopped:
                        break  # at the very evaluation that ran out of patience
                if not state.early_stopped:
                    state.epoch, state.batches_done = epoch + 1, 0
                    if not t.eval_every:
                        self.validate()
                self.save()
                if state.early_stopped:  # out of patience, or pruned by a search's `trial`
                    why = f"no improvement in {t.patience} evaluations" if t.patience else "pruned"
                    log.info("early stopping: %s", why)
                    break
        return Outcome.FINISHED

    def epoch_batches(self, epoch: int, parts: list[str]) -> Iterable[dict[str, torch.Tensor]]:
        """The train loader of `epoch` with the phase's `parts` switched on, past the
        micro-batches that a resumed run already trained on."""
        self.classifier.set_phase(parts)
        self.probe_due, self.probed = parts != self.probed, parts
        self.train_loader.set_epoch(epoch)
        done = self.state.batches_done
        loader = (
            self.accelerator.skip_first_batches(self.train_loader, done)
            if done
            else self.train_loader
        )
        self.model.train()
        return loader

    def train_micro_batch(self, batch: dict[str, torch.Tensor], epoch: int) -> Any:
        """Forward and backward of one micro-batch, and the optimizer step on the last one of an
        accumulation; returns the gradient norm when it was clipped there."""
        accelerator, state, t = self.accelerator, self.state, self.settings.train
        # Dropout masks from (seed, epoch, micro-batch, rank) alone: a resumed run draws exactly
        # what an uninterrupted one draws, whatever consumed random numbers before (a new
        # DataLoader iterator, an evaluation, a restart).
        rank = accelerator.process_index
        seed_dropout(micro_batch_seed(self.settings.seed, epoch, state.batches_done, rank))
        grad_norm = None
        probe = FirstStepProbe(self.classifier.backbone) if self.probe_due else None
        with accelerator.accumulate(self.model), probe or contextlib.nullcontext():
            loss = self.model(**model_inputs(batch))["loss"]
            self.check_finite(loss, epoch)
            accelerator.backward(loss)
            if accelerator.sync_gradients and t.max_grad_norm:
                trainable = [
                    p for g in self.optimizer.param_groups for p in g["params"] if p.requires_grad
                ]
                grad_norm = accelerator.clip_grad_norm_(trainable, t.max_grad_norm)
            self.optimizer.step()
            if accelerator.sync_gradients:
                self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
        state.batches_done += 1
        if probe is not None:
            self.probe_due = False
            log.info(
                "%s: %s",
                "+".join(self.probed or []),
                probe.describe(*batch["attention_mask"].shape[:2]),
            )
        self.throughput.add(loss, batch["attention_mask"])
        return grad_norm

    def check_finite(self, loss: torch.Tensor, epoch: int) -> None:
        """Counted on the device (no sync per micro-batch), checked in one collective per
        optimizer step before the backward that syncs and steps (under DeepSpeed `backward`
        also steps): every rank stops together, before a bad step."""
        self.nonfinite += (~torch.isfinite(loss.detach())).float()
        if not self.accelerator.sync_gradients:
            return
        if self.accelerator.reduce(self.nonfinite, "sum").item() > 0:
            state = self.state
            raise TrainingError(
                f"non-finite loss at epoch {epoch}, in optimizer step {state.global_step + 1} "
                f"(micro-batch {state.batches_done}): stopped without saving; last good "
                f"checkpoint: {checkpoint.latest_checkpoint(self.run_dir)}"
            )
        self.nonfinite.zero_()

    def after_optimizer_step(self, grad_norm: Any, phase: list[str]) -> bool:
        """Log, evaluate, checkpoint and poll for a stop request, each on its own step count;
        True when a stop was requested (its checkpoint is saved)."""
        step, t = self.state.global_step, self.settings.train
        if step % t.log_every == 0:
            self.log_train(grad_norm, phase)
            self.throughput = tracking.Throughput()
        paused = time.perf_counter()  # evaluation and saving are not throughput
        if t.eval_every and step % t.eval_every == 0:
            self.validate()
            self.model.train()
        if t.checkpoint_every and step % t.checkpoint_every == 0:
            self.save()
        self.throughput.start += time.perf_counter() - paused
        # Polled every stop_check_every steps: a collective and a file stat per step otherwise.
        return step % t.stop_check_every == 0 and self.stop_requested()

    def stop_requested(self) -> bool:
        """Collective: whether any rank was asked to stop; if so, a checkpoint is saved."""
        self.lock.refresh()  # tells a later launch that this run is alive
        if self.stop.requested():
            self.accelerator.set_trigger()
        if not self.accelerator.check_trigger():
            return False
        self.save()
        log.info(
            "stop requested (%s): checkpoint saved at step %d",
            self.stop.reason(),
            self.state.global_step,
        )
        return True

    def log_train(self, grad_norm: Any, phase: list[str]) -> None:
        state = self.state
        row = self.throughput.row(self.accelerator, self.classifier)
        row["train/epoch"] = state.epoch + state.batches_done / len(self.train_loader)
        row["train/phase_lora"] = float("lora" in phase)
        for group in self.optimizer.param_groups:
            row[f"train/lr_{group['name']}"] = group["lr"]
        if grad_norm is not None:
            row["train/grad_norm"] = float(grad_norm)
        # How far LoRA has moved the backbone (0 until a phase trains it): a LoRA that barely
        # trains leaves the backbone a fixed random mixer.
        row["train/lora_delta"] = self.classifier.lora_delta()
        self.metrics_log.log(row, step=state.global_step)

    def predict(self, loader: DataLoader) -> tuple[Predictions, float]:
        """Every example of `loader`, gathered from all ranks, and the mean loss."""
        self.model.eval()
        probs, labels, rows, losses = [], [], [], []
        with torch.no_grad():
            for batch in loader:
                out = self.model(**model_inputs(batch))
                p = EEGEmotionClassifier.probabilities(out["logits"])
                row = torch.stack([batch["subject"], batch["trial"], batch["window"]], 1)
                n = torch.full((len(p),), 1.0, device=p.device) * out["loss"].detach()
                g = self.accelerator.gather_for_metrics((p, batch["labels"], row, n))
                for store, value in zip((probs, labels, rows, losses), g, strict=True):
                    store.append(value.cpu())
        pred = Predictions(*(torch.cat(x).numpy() for x in (probs, labels, rows)))
        return pred, float(torch.cat(losses).mean())

    def validate(self) -> None:
        """Evaluate on val; keep the best model (RUN/best/); count evaluations without progress."""
        state, data, t = self.state, self.data, self.settings.train
        pred, loss = self.predict(self.val_loader)
        metrics = split_metrics(
            pred.labels,
            pred.probs.argmax(-1),
            data.targets,
            data.num_classes,
            self.majorities.overall,
        )
        metrics["loss"] = loss
        # Logged whatever selects the model, so that it can be compared with the others.
        metrics["trial_loss"] = trial_loss(pred.probs, pred.labels, pred.rows)
        row = {
            "val/loss": loss,
            "val/trial_loss": metrics["trial_loss"],
            **scoring.tracker_row(metrics, "val", data.targets),
        }
        self.metrics_log.log(row, step=state.global_step)
        if state.global_step < t.select_after:  # too early to keep: no best, no patience
            log.info(
                "step %d: evaluated, not a candidate for the best model (train.select_after=%d)",
                state.global_step,
                t.select_after,
            )
            return
        value = metrics[t.best_metric]
        if self.trial is not None and self.trial(state.global_step, value):
            state.early_stopped = True  # pruned by the search
        better = state.best_value is None or (
            value < state.best_value
            if t.best_metric in LOWER_IS_BETTER
            else value > state.best_value
        )
        if better:
            state.best_value, state.best_step, state.bad_evals = value, state.global_step, 0
            self.metrics_log.summary(
                {"val/best_step": state.best_step, f"val/best/{t.best_metric}": value}
            )
            if self.accelerator.is_main_process:
                checkpoint.save_best(
                    self.run_dir,
                    self.classifier,
                    data.preprocessor,
                    {"step": state.global_step, **metrics},
                )
        else:
            state.bad_evals += 1
            if t.patience and state.bad_evals >= t.patience:
                state.early_stopped = True
        self.accelerator.wait_for_everyone()

    def save(self) -> None:
        checkpoint.save_checkpoint(
            self.accelerator,
            self.run_dir,
            self.state.global_step,
            {"run": asdict(self.state)},
            self.settings.train.keep_checkpoints,
        )

    def status(self, status: str, message: str = "") -> None:
        if self.accelerator.is_main_process:
            step, epoch = self.state.global_step, self.state.epoch
            run_folder.write_status(self.run_dir, status, step, epoch, message)

    def finish(self) -> None:
        """The best model on val and test, written up by `scoring.write_run`."""
        state, data, t = self.state, self.data, self.settings.train
        self.accelerator.wait_for_everyone()
        self.classifier.load_trained(self.run_dir / "best")
        predictions = {"val": self.predict(self.val_loader), "test": self.predict(self.test_loader)}
        if not self.accelerator.is_main_process:
            return
        results: dict[str, Any] = {}
        for part, (pred, loss) in predictions.items():
            results[part] = scoring.score(
                pred, data.targets, data.num_classes, self.majorities, self.settings.seed
            )
            results[part]["loss"] = loss
            results[part]["trial_loss"] = trial_loss(pred.probs, pred.labels, pred.rows)
        results["best"] = dict(metric=t.best_metric, value=state.best_value, step=state.best_step)
        row = scoring.tracker_row(results["test"], "test", data.targets)
        self.metrics_log.log(row, step=state.global_step)
        table, images = scoring.write_run(
            self.run_dir,
            results,
            {part: pred for part, (pred, _) in predictions.items()},
            data.targets,
            data.class_names,
            f"test (best model from step {state.best_step})",
        )
        # The Hub's model card of best/, from the folder's records (README.md beside the model).
        model_card.write_card(self.run_dir)
        self.metrics_log.images(images, step=state.global_step)
        print(table)
        file_log.info("\n%s", table)
        dashboard = tracking.Dashboard(
            results,
            predictions["test"][0],
            data.class_names,
            model_dir=self.run_dir / "best",
            model_aliases=["best", f"step-{state.global_step}"],
        )
        self.metrics_log.dashboard(dashboard, step=state.global_step)
