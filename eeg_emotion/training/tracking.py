"""Experiment tracking: W&B / TensorBoard through Accelerate's trackers, plus metrics.jsonl.

W&B runs offline automatically when no API key is configured (nothing leaves the machine, the
run still lands in `RUN/wandb/`), and keeps a stable run id in the run folder so a restarted
(requeued) job resumes the same W&B run. A W&B that cannot be reached within
`train.tracker.timeout_s` (a compute node without internet) makes the run log offline, with one
warning naming the `wandb sync` command; a tracker that fails mid-run is warned about once and
training goes on (metrics.jsonl keeps every row).
"""

from __future__ import annotations

import json
import logging
import netrc
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from accelerate import Accelerator

from eeg_emotion import fileio
from eeg_emotion.config import Settings, flatten
from eeg_emotion.evaluation import scoring
from eeg_emotion.evaluation.scoring import Predictions
from eeg_emotion.model.plan import flops_per_token

log = logging.getLogger(__name__)
# Split protocols whose runs are one fold of a cross-validation (W&B job type "fold").
FOLD_PROTOCOLS = ("kfold", "subject_kfold", "loso", "cross_trial", "cross_session")

# Peak dense bf16 FLOP/s by GPU name, for the MFU estimate: the first fragment the device name
# contains wins, so the PCIe and NVL parts come before the SXM default of their family.
PEAK_BF16 = {
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,  # SXM ("NVIDIA H100 80GB HBM3")
    "H200": 989e12,
    "GH200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10": 125e12,
}


def peak_bf16_flops(name: str | None = None) -> float | None:
    """Dense bf16 peak of this (or the named) GPU; None when unknown or without CUDA."""
    if name is None:
        if not torch.cuda.is_available():
            return None
        name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def wandb_key_configured() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def tracker_names(settings: Settings) -> list[str]:
    kind = settings.train.tracker.kind
    if kind == "wandb" and not wandb_key_configured() and "WANDB_MODE" not in os.environ:
        os.environ["WANDB_MODE"] = "offline"
    if kind == "wandb":
        # W&B reports on its own SDK to the W&B server, on its own schedule, each request
        # waiting up to 10 s: a server that never answers would hold the process for tens of
        # seconds, at the fallback and again at exit. WANDB_ERROR_REPORTING=true sends them.
        os.environ.setdefault("WANDB_ERROR_REPORTING", "false")
    return [] if kind == "none" else [kind]


def start(accelerator: Accelerator, settings: Settings, run_dir: Path) -> None:
    tracker = settings.train.tracker
    if tracker.kind == "none":
        return
    config = settings.model_dump(mode="json")
    if tracker.kind == "tensorboard":  # hparams take scalars only: dotted keys, lists as text
        config = {
            k: v if isinstance(v, int | float | str | bool) else str(v)
            for k, v in flatten(config).items()
        }
        accelerator.init_trackers(tracker.project, config=config)
        return
    if accelerator.is_main_process:
        run_id(run_dir)  # made once, before every process reads it
    accelerator.wait_for_everyone()

    def begin(init: dict[str, Any]) -> Any:
        accelerator.trackers = []  # nothing of a start that failed
        accelerator.init_trackers(tracker.project, config=config, init_kwargs={"wandb": init})
        return wandb_run(accelerator)

    run = wandb_start(settings, run_dir, begin, job_type=wandb_job_type(settings))
    if run is not None:
        define_val_metrics(run, settings.data.labels.targets)


def warn_offline(run: Any, began: float, exc: BaseException) -> None:
    folder = run.settings.sync_dir
    log.warning(
        "W&B unreachable after %.0f s (%s): logging offline to %s; upload it later with: "
        "wandb sync %s",
        time.perf_counter() - began,
        short_reason(exc),
        folder,
        folder,
    )


def wandb_run(accelerator: Accelerator) -> Any | None:
    """The W&B run of this process (the main one only), or None."""
    for tracker in accelerator.trackers:
        if tracker.name == "wandb":
            return tracker.tracker
    return None


def define_val_metrics(run: Any, targets: list[str]) -> None:
    """The runs table shows each val metric at its best (the loss at its lowest) rather than
    its last value; `val/best_step` (see `MetricsLog.summary`) is the step of the best model."""
    run.define_metric("val/loss", summary="min")
    run.define_metric("val/trial_loss", summary="min")
    best = ["val/mean_balanced_accuracy", "val/overall_accuracy"]
    best += [f"val/{t}/{m}" for t in targets for m in ("accuracy", "balanced_accuracy", "macro_f1")]
    for name in best:
        run.define_metric(name, summary="max")


def wandb_job_type(
    settings: Settings, *, kind: Literal["model", "baseline", "cv"] = "model"
) -> str:
    """The W&B job type: `WANDB_JOB_TYPE` when set, else baseline, cv (a CV group's aggregate),
    fold (a model trained on one fold of a cross-validation split) or train."""
    if os.environ.get("WANDB_JOB_TYPE"):
        return os.environ["WANDB_JOB_TYPE"]
    if kind != "model":
        return kind
    return "fold" if settings.data.split.protocol in FOLD_PROTOCOLS else "train"


def run_id(run_dir: Path) -> str:
    """The folder's W&B run id, made on first use: a relaunch resumes the same run."""
    id_file = run_dir / "wandb_run_id"
    if not id_file.exists():
        id_file.write_text(uuid.uuid4().hex[:8])  # W&B run ids: short, lowercase, alphanumeric
    return id_file.read_text().strip()


def open_run(
    settings: Settings, run_dir: Path, *, job_type: str, name: str | None = None
) -> Any | None:
    """A W&B run of its own for work outside the training loop (a baseline, a CV group's
    aggregate), with the training run's fallback: offline when W&B cannot be reached. None
    unless the tracker is W&B."""
    if settings.train.tracker.kind != "wandb":
        return None
    import wandb

    tracker_names(settings)  # offline without a key, no error reports
    run_dir.mkdir(parents=True, exist_ok=True)
    project, config = settings.train.tracker.project, settings.model_dump(mode="json")
    return wandb_start(
        settings,
        run_dir,
        lambda init: wandb.init(project=project, config=config, **init),
        job_type=job_type,
        name=name,
    )


def wandb_start(
    settings: Settings,
    run_dir: Path,
    begin: Callable[[dict[str, Any]], Any],
    *,
    job_type: str,
    name: str | None = None,
) -> Any:
    """Start the run folder's W&B run: `begin` hands wandb.init (itself, or through Accelerate)
    these arguments and returns the run. The run id is kept in the folder, so a relaunch
    resumes the same run, and the start is bounded: a W&B not reached within
    `train.tracker.timeout_s` gets the run started again offline, under the same id (`wandb
    sync` uploads it to the same run later), with one warning."""
    import wandb

    tracker = settings.train.tracker
    init: dict[str, Any] = {
        "id": run_id(run_dir),
        "resume": "allow",
        "dir": str(run_dir),
        "group": tracker.group,
        "name": name or tracker.name or run_dir.name,
        "job_type": job_type,
        # quiet: W&B's "logged in as" line asks the server who the key belongs to, twice, each
        # with its own timeout, before init_timeout starts counting; the run's URL still shows.
        "settings": wandb.Settings(init_timeout=tracker.timeout_s, quiet=True),
    }
    began = time.perf_counter()
    try:
        return begin(init)
    except Exception as exc:  # any failure to reach W&B: log offline rather than not at all
        wandb.teardown()  # else the offline run is refused: "run ID ... is in use"
        run = begin({**init, "mode": "offline"})
        warn_offline(run, began, exc)
        return run


def short_reason(exc: BaseException) -> str:
    """The gist of a tracker error: W&B ends a long message with the cause ("connection
    refused", "context deadline exceeded")."""
    lines = str(exc).strip().splitlines()
    gist = lines[-1].rsplit(": ", 1)[-1].strip() if lines else ""
    return f"{type(exc).__name__}: {gist[:200]}" if gist else type(exc).__name__


def end(accelerator: Accelerator) -> None:
    """Finish the trackers and the process group. A tracker that fails to finish (W&B cannot
    upload) is warned about; the run ends as it would have."""
    try:
        accelerator.end_training()
    except Exception as exc:
        log.warning(
            "the tracker failed to finish (%s); metrics.jsonl has every row", short_reason(exc)
        )
        accelerator.trackers = []
        accelerator.end_training()  # the process group, without the tracker


@dataclass
class Dashboard:
    """What a finished run shows on W&B: its results as results.json holds them, its test
    predictions, and the model folder kept as a W&B artifact (None: no model to keep)."""

    results: dict[str, Any]
    predictions: Predictions  # the test split's
    class_names: list[str]
    model_dir: Path | None = None
    model_aliases: list[str] = field(default_factory=list)


def log_dashboard(run: Any, report: Dashboard, step: int) -> None:
    """Into W&B run `run`: the full test report in the summary (flat keys, runs-table columns),
    per-subject results and test predictions as tables, W&B confusion-matrix charts and the
    model artifact. Every figure comes from `report.results` (`scoring.summary_row` and the
    tables' typed view of it)."""
    import wandb

    from eeg_emotion.evaluation import tables

    test = report.results["test"]
    split = tables.SplitResults.of(test)
    summary: dict[str, Any] = dict(scoring.summary_row(test, "test"))
    best = report.results.get("best") or {}
    summary.update({f"best/{k}": v for k, v in best.items() if v is not None})
    for loss in ("loss", "trial_loss"):
        if loss in test:
            summary[f"test/{loss}"] = test[loss]
    run.summary.update(summary)
    media: dict[str, Any] = {
        "test/per_subject": wandb.Table(
            columns=list[Any](scoring.PER_SUBJECT_COLUMNS), data=scoring.per_subject_rows(split)
        )
    }
    for unit in ("window", "trial"):
        columns, rows = scoring.prediction_rows(
            report.predictions, split.targets, report.class_names, trials=unit == "trial"
        )
        media[f"test/predictions/{unit}s"] = wandb.Table(columns=list[Any](columns), data=rows)
    for unit, level in (("window", split.windows), ("trial", split.trials)):
        for target, metrics in (level.targets if level else {}).items():
            truth, predicted = scoring.confusion_pairs(metrics.confusion_matrix)
            media[f"test/{unit}/{target}/confusion_matrix"] = wandb.plot.confusion_matrix(
                y_true=truth,
                preds=predicted,
                class_names=report.class_names,
                title=f"test {unit}s: {target}",
            )
    run.log(media, step=step)
    if report.model_dir is not None:
        model = wandb.Artifact(f"model-{run.id}", type="model", metadata=summary)
        model.add_dir(str(report.model_dir))
        run.log_artifact(model, aliases=report.model_aliases)


def log_run(
    settings: Settings,
    run_dir: Path,
    *,
    job_type: str,
    name: str | None = None,
    rows: list[dict[str, Any]] | None = None,
    report: Dashboard | None = None,
    summary: dict[str, Any] | None = None,
    tables: dict[str, tuple[list[str], list[list[Any]]]] | None = None,
) -> None:
    """A finished piece of work as a W&B run of its own (a baseline, a CV group's aggregate),
    when the tracker is W&B: its metrics.jsonl `rows` as history, its `report` (see
    `log_dashboard`), extra `summary` values and `tables` (key -> columns, rows). A W&B that
    fails is warned about; the files on disk are the results either way."""
    try:
        run = open_run(settings, run_dir, job_type=job_type, name=name)
    except Exception as exc:  # not even offline (e.g. a full disk): the files are the results
        log.warning(
            "the tracker failed to start (%s); %s keeps the results", short_reason(exc), run_dir
        )
        return
    if run is None:
        return
    import wandb

    try:
        step = 0
        for row in rows or []:
            step = int(row["step"])
            run.log({k: v for k, v in row.items() if k not in ("step", "time")}, step=step)
        if report is not None:
            log_dashboard(run, report, step)
        run.summary.update(summary or {})
        for key, (columns, data) in (tables or {}).items():
            run.log({key: wandb.Table(columns=list[Any](columns), data=data)}, step=step)
    except Exception as exc:
        log.warning(
            "the tracker failed to log (%s); %s keeps the results", short_reason(exc), run_dir
        )
    finally:
        try:
            run.finish()
        except Exception as exc:
            log.warning("the tracker failed to finish (%s)", short_reason(exc))


class MetricsLog:
    """Every logged row goes to the trackers and, on the main process, to metrics.jsonl."""

    def __init__(self, accelerator: Accelerator, run_dir: Path) -> None:
        self.accelerator = accelerator
        self.path = run_dir / "metrics.jsonl"
        self.tracker_failed = False  # warned once; later calls are still tried

    def to_trackers(self, send: Callable[[], Any]) -> None:
        """A tracker call; one that fails (e.g. the network went away) does not stop training."""
        try:
            send()
        except Exception as exc:
            if not self.tracker_failed:
                log.warning(
                    "the tracker failed to log (%s); training goes on and %s keeps every row",
                    short_reason(exc),
                    self.path,
                )
            self.tracker_failed = True

    def log(self, row: dict[str, float], step: int) -> None:
        self.to_trackers(lambda: self.accelerator.log(row, step=step))
        if self.accelerator.is_main_process:
            with self.path.open("a") as f:
                f.write(json.dumps({"step": step, "time": round(time.time(), 3), **row}) + "\n")

    def drop_after(self, step: int) -> None:
        """Forget rows past `step` (logged by a run that died before its next checkpoint)."""
        if not self.accelerator.is_main_process or not self.path.exists():
            return
        lines = self.path.read_text().splitlines()

        def kept(line: str) -> bool:
            try:
                return json.loads(line)["step"] <= step
            except (ValueError, KeyError):  # a line cut short by the kill
                return False

        keep = [line for line in lines if kept(line)]
        if len(keep) != len(lines):
            with fileio.publish_file(self.path) as tmp:
                tmp.write_text("".join(line + "\n" for line in keep))

    def summary(self, values: dict[str, Any]) -> None:
        """Values for W&B's run summary (the runs table's columns), not for the history."""
        run = wandb_run(self.accelerator)
        if run is not None:
            self.to_trackers(lambda: run.summary.update(values))

    def dashboard(self, report: Dashboard, step: int) -> None:
        """The finished run's summary, tables, confusion-matrix charts and model (W&B only)."""
        run = wandb_run(self.accelerator)
        if run is not None:
            self.to_trackers(lambda: log_dashboard(run, report, step))

    def images(self, images: dict[str, Path], step: int) -> None:
        """PNG plots as W&B media (other trackers get the files in RUN/plots/)."""
        if not self.accelerator.is_main_process:
            return
        for tracker in self.accelerator.trackers:
            if tracker.name == "wandb":
                import wandb

                media = {k: wandb.Image(str(v)) for k, v in images.items()}
                self.to_trackers(lambda t=tracker, m=media: t.log(m, step=step))


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def mfu(
    tokens_per_s: float,
    config: Any,
    seq_len: float,
    num_processes: int,
    backward: bool = True,
    *,
    peak: float | None = None,
) -> float | None:
    """Model FLOPs utilization of `num_processes` GPUs (None without a known peak) from the
    tokens all of them processed per second and the mean sequence length (tokens per sample),
    through `plan.flops_per_token`; `peak`: per GPU, default this GPU's."""
    peak = peak_bf16_flops() if peak is None else peak
    if peak is None:
        return None
    flops = flops_per_token(config, round(seq_len), backward)
    return tokens_per_s * flops / (peak * num_processes)


def throughput_figures(counts: Any, rank: int, elapsed: float) -> dict[str, float]:
    """Samples and tokens per second of this rank and of all ranks together, and the mean
    sequence length, from every rank's (samples, tokens) since the last row: counts (ranks, 2).
    The sequence length divides global tokens by global samples: a rank's samples against
    every rank's tokens would make it the number of processes times too long."""
    counts = torch.as_tensor(counts, dtype=torch.float64).reshape(-1, 2)
    samples, tokens = counts.sum(0).tolist()
    return {
        "train/samples_per_s": samples / elapsed,
        "train/tokens_per_s": tokens / elapsed,
        "train/samples_per_s_per_rank": float(counts[rank, 0]) / elapsed,
        "train/tokens_per_s_per_rank": float(counts[rank, 1]) / elapsed,
        "train/seq_len": tokens / max(samples, 1.0),
    }


class Throughput:
    """Training figures since the last logged row, summed on the device (no sync per step)."""

    def __init__(self) -> None:
        self.loss: Any = 0.0
        self.micro = 0
        self.samples: Any = 0
        self.tokens: Any = 0
        self.start = time.perf_counter()

    def add(self, loss: torch.Tensor, attention_mask: torch.Tensor) -> None:
        """One micro-batch of this rank: its loss, samples (rows) and real tokens."""
        self.loss += loss.detach().float()
        self.micro += 1
        self.samples += attention_mask.shape[0]
        self.tokens += attention_mask.sum()

    def row(self, accelerator: Accelerator, classifier: Any) -> dict[str, float]:
        """Loss (mean over ranks), samples and tokens per second (this rank's, and all ranks'
        together), the mean sequence length, memory and MFU."""
        elapsed = time.perf_counter() - self.start
        loss = torch.as_tensor(self.loss, device=accelerator.device) / max(self.micro, 1)
        device = accelerator.device
        mine = torch.stack(
            [torch.as_tensor(x, device=device).long() for x in (self.samples, self.tokens)]
        )
        counts = accelerator.gather(mine)  # (ranks * 2,): every rank's samples and tokens
        row = {
            "train/loss": accelerator.reduce(loss, "mean").item(),
            **throughput_figures(counts.cpu(), accelerator.process_index, elapsed),
            "train/peak_memory_mb": peak_memory_mb(),
        }
        util = mfu(
            row["train/tokens_per_s"],
            classifier.config,
            row["train/seq_len"],
            accelerator.num_processes,
            backward=classifier.backbone_grad,
        )
        if util is not None:
            row["train/mfu"] = util
        return row
