"""Training checkpoints: adapter + head + optimizer + scheduler + RNG + data position.

A checkpoint is written into `checkpoints/.tmp-step-N` and renamed to `checkpoints/step-N` once
every rank has finished and `trainer_state.json` is in it, so a crash mid-save leaves the
previous checkpoint usable. `accelerator.save_state` would store the whole (4-bit) base model;
the hooks below replace that with the adapter and head only.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerate import Accelerator
from accelerate.utils import DistributedType

from eeg_emotion import fileio
from eeg_emotion.errors import ConfigError


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


STATE_FILE = "trainer_state.json"
MANIFEST = "manifest.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Published checkpoint folders of a run, oldest first (complete or not: see `verify`)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    dirs = checkpoint_dirs(run_dir)
    return dirs[-1] if dirs else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: Path) -> None:
    """Size and SHA-256 of every file, written last: its presence says the rest is complete."""
    files = {
        str(p.relative_to(folder)): [p.stat().st_size, _sha256(p)]
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }
    (folder / MANIFEST).write_text(json.dumps(files, indent=0))


def verify(folder: Path) -> str | None:
    """Why the checkpoint cannot be trusted, or None when every file is as it was written."""
    try:
        files = fileio.load_json(folder / MANIFEST)
    except FileNotFoundError:
        return "no manifest (incomplete)"
    except (OSError, ValueError) as exc:
        return f"unreadable manifest ({exc})"
    for name, (size, digest) in files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} were written"
        if _sha256(path) != digest:
            return f"{name} does not match its checksum"
    return None


def latest_verified(run_dir: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint that verifies, and the newer ones skipped with the reason."""
    skipped: list[tuple[Path, str]] = []
    for folder in reversed(checkpoint_dirs(run_dir)):
        reason = verify(folder)
        if reason is None:
            return folder, skipped
        skipped.append((folder, reason))
    return None, skipped


def remove_leftovers(run_dir: Path) -> list[Path]:
    """What a run that crashed mid-save left half-written (checkpoints, best model, metrics
    rewrite) or half-replaced (`.old-*`, see `fileio.swap_in`)."""
    checkpoints = run_dir / "checkpoints"
    found = [
        *checkpoints.glob(".tmp-step-*"),
        *checkpoints.glob(".old-step-*"),
        *run_dir.glob(".best-*"),  # fileio.publish_dir's temporary folder for RUN/best
        run_dir / ".old-best",
        run_dir / ".tmp-best",  # the name earlier releases wrote RUN/best through
        *run_dir.glob(".metrics.jsonl.*.tmp"),  # fileio.publish_file's for metrics.jsonl
    ]
    found = [p for p in found if p.exists()]
    for path in found:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found


def read_state(checkpoint: Path) -> dict[str, Any]:
    return fileio.read_json(checkpoint / STATE_FILE)


def install_hooks(accelerator: Accelerator, classifier: Any) -> None:
    """Save/load only the trainable weights (adapter, head, EEG embedding) in checkpoints.

    Without DeepSpeed they replace the model weights accelerate would write. Under DeepSpeed the
    engine writes its own (trainable parameters only, see `save_checkpoint`) and hands the hooks
    no models; the classifier's files are written and checked all the same."""

    def save_hook(models: list, weights: list, output_dir: str) -> None:
        if accelerator.is_main_process:
            classifier.save_pretrained(Path(output_dir) / "model_0")
        weights.clear()  # nothing else for accelerate to write

    def load_hook(models: list, input_dir: str) -> None:
        classifier.load_trained(Path(input_dir) / "model_0")  # strict key and shape checks
        models.clear()  # loaded: accelerate must not load anything else into them

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def deepspeed_kwargs(accelerator: Accelerator, saving: bool) -> dict[str, Any]:
    """The DeepSpeed engine saves the full module by default - the 4-bit base and its quant-state
    keys included - and loads strictly, which those keys fail. Save the trainable parameters
    only (as the Hugging Face Trainer does) and load them non-strictly; `load_trained` checks
    the keys that matter."""
    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        return {}
    return {"exclude_frozen_parameters": True} if saving else {"load_module_strict": False}


def save_checkpoint(
    accelerator: Accelerator, run_dir: Path, step: int, state: dict[str, Any], keep: int
) -> Path:
    """Collective: every rank calls it. Returns the final checkpoint folder."""
    root = run_dir / "checkpoints"
    name = f"step-{step}"
    tmp, final = root / f".tmp-{name}", root / name
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)  # left over from a crash
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    try:
        accelerator.save_state(str(tmp), **deepspeed_kwargs(accelerator, saving=True))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
            write_manifest(tmp)
    except BaseException:
        # Give back the space of the half-written folder (a full disk is the usual cause);
        # the checkpoints published before are untouched.
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if accelerator.is_main_process:
        fileio.swap_in(tmp, final)  # replaces the same step saved before (a stop after a resume)
        for old in checkpoint_dirs(run_dir)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def resolve_resume(resume: str, run_dir: Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The checkpoint to resume from (`train.resume`: auto, never or a folder) and the
    checkpoints skipped on the way with the reason."""
    if resume == "never":
        return None, []
    if resume == "auto":  # the newest checkpoint whose files all verify
        return latest_verified(run_dir)
    path = Path(resume)
    if not path.is_dir():  # else verify calls it a checkpoint without a manifest
        what = "is a file, not a checkpoint folder" if path.exists() else "does not exist"
        raise ConfigError(f"train.resume={path}: {path.absolute()} {what}")
    reason = verify(path)
    if reason is not None:
        raise ConfigError(f"train.resume={path}: not a usable checkpoint: {reason}")
    return path, []


def save_best(run_dir: Path, classifier: Any, preprocessor: Any, val_metrics: dict) -> None:
    """RUN/best/: the classifier (adapter, head, settings) and the preprocessor that turns new
    recordings into its inputs, swapped in whole (a crash leaves the previous best)."""
    with fileio.publish_dir(run_dir / "best", replace=True) as tmp:
        classifier.save_pretrained(tmp)
        preprocessor.save(tmp)
        (tmp / "val_metrics.json").write_text(json.dumps(val_metrics, indent=1))
