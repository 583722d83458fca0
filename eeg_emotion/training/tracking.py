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
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from eeg_emotion import fileio
from eeg_emotion.config import Settings, flatten
from eeg_emotion.model.plan import flops_per_token

log = logging.getLogger(__name__)

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
    init = wandb_init(accelerator, settings, run_dir)
    began = time.perf_counter()
    try:
        accelerator.init_trackers(tracker.project, config=config, init_kwargs={"wandb": init})
    except Exception as exc:  # any failure to reach W&B: log offline rather than not train
        import wandb

        wandb.teardown()  # else the offline run is refused: "run ID ... is in use"
        accelerator.trackers = []
        offline = {**init, "mode": "offline"}  # the same id: `wandb sync` resumes the same run
        accelerator.init_trackers(tracker.project, config=config, init_kwargs={"wandb": offline})
        folder = accelerator.get_tracker("wandb", unwrap=True).settings.sync_dir
        log.warning(
            "W&B unreachable after %.0f s (%s): logging offline to %s; upload it later with: "
            "wandb sync %s",
            time.perf_counter() - began,
            short_reason(exc),
            folder,
            folder,
        )


def wandb_init(accelerator: Accelerator, settings: Settings, run_dir: Path) -> dict[str, Any]:
    """wandb.init's arguments: the run id kept in the run folder, a bounded start."""
    import wandb

    tracker = settings.train.tracker
    id_file = run_dir / "wandb_run_id"
    if accelerator.is_main_process and not id_file.exists():
        id_file.write_text(uuid.uuid4().hex[:8])  # W&B run ids: short, lowercase, alphanumeric
    accelerator.wait_for_everyone()
    return {
        "id": id_file.read_text().strip(),
        "resume": "allow",
        "dir": str(run_dir),
        "group": tracker.group,
        "name": tracker.name or run_dir.name,
        # quiet: W&B's "logged in as" line asks the server who the key belongs to, twice, each
        # with its own timeout, before init_timeout starts counting; the run's URL still shows.
        "settings": wandb.Settings(init_timeout=tracker.timeout_s, quiet=True),
    }


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
    tokens_per_s: float, config: Any, seq_len: int, num_processes: int, backward: bool = True
) -> float | None:
    """Model FLOPs utilization on GPU (None elsewhere), from `plan.flops_per_token`."""
    peak = peak_bf16_flops()
    if peak is None:
        return None
    return tokens_per_s * flops_per_token(config, seq_len, backward) / (peak * num_processes)


class Throughput:
    """Training figures since the last logged row, summed on the device (no sync per step)."""

    def __init__(self) -> None:
        self.loss: Any = 0.0
        self.micro = self.samples = 0
        self.tokens: Any = 0
        self.start = time.perf_counter()

    def add(self, loss: torch.Tensor, samples: int, attention_mask: torch.Tensor) -> None:
        self.loss += loss.detach().float()
        self.micro += 1
        self.samples += samples
        self.tokens += attention_mask.sum()  # this rank's tokens

    def row(self, accelerator: Accelerator, classifier: Any) -> dict[str, float]:
        """Loss (mean over ranks), samples and tokens per second, memory and MFU."""
        elapsed = time.perf_counter() - self.start
        loss = torch.as_tensor(self.loss, device=accelerator.device) / max(self.micro, 1)
        row = {
            "train/loss": accelerator.reduce(loss, "mean").item(),
            "train/samples_per_s": self.samples / elapsed,
            "train/tokens_per_s": float(accelerator.reduce(self.tokens, "sum")) / elapsed,
            "train/peak_memory_mb": peak_memory_mb(),
        }
        seq = row["train/tokens_per_s"] / max(row["train/samples_per_s"], 1e-9)
        util = mfu(
            row["train/tokens_per_s"],
            classifier.config,
            int(seq),
            accelerator.num_processes,
            backward=classifier.backbone_grad,
        )
        if util is not None:
            row["train/mfu"] = util
        return row
