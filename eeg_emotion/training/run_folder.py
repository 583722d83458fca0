"""A run folder belongs to one set of settings, one dataset and one running job.

- Relaunching a folder with settings that change the data, split, model or training would
  score an old model on a new split (trials it trained on): refused, naming the changed keys,
  before anything in the folder is touched. HARMLESS keys may change (e.g. more epochs).
- The data files are fingerprinted (path, size, modification time) when the run starts; a
  relaunch on changed files is refused the same way.
- A lock (`RUN/.lock`: host, PID, SLURM job) keeps a second job out while one runs. A lock left
  by a dead process on this host, by an earlier run of the same SLURM job (a requeue, possibly on
  another node), or not refreshed for LOCK_STALE_S seconds is taken over.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from eeg_emotion import fileio
from eeg_emotion.config import Settings, flatten
from eeg_emotion.errors import ConfigError

log = logging.getLogger(__name__)
# Keys that may differ between launches of one run: where things are, how often to log, save or
# poll, how long to train on, where to report. Everything else is part of the experiment.
HARMLESS = (
    "output_dir",
    "data.root",  # the files themselves are fingerprinted
    "data.cache_dir",
    "train.epochs",
    "train.patience",
    "train.log_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.stop_check_every",
    "train.num_workers",
    "train.resume",
    "train.tracker",
    "baseline",
)
LOCK_NAME = ".lock"
LOCK_STALE_S = 900.0  # a lock nobody refreshed for 15 minutes belongs to a dead job


def _harmless(key: str) -> bool:
    return any(key == h or key.startswith(h + ".") for h in HARMLESS)


def check_creatable(run_dir: Path) -> None:
    """Refuse, without creating anything, an output_dir that cannot be made or written: a
    file in its place or above it, or a folder without write permission."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"output_dir={run_dir} is a file, not a folder")
    existing = next(p for p in (run_dir, *run_dir.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"output_dir={run_dir}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"output_dir={run_dir}: {existing} is not writable (permission denied)")


def saved_settings(run_dir: Path) -> dict | None:
    """The settings a run folder was made with (its config.yaml), None for a new folder."""
    saved_file = run_dir / "config.yaml"
    if not saved_file.exists():
        return None
    try:
        saved = yaml.safe_load(saved_file.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{saved_file}: cannot read the run's settings ({exc})") from None
    return saved if isinstance(saved, dict) else {}


def check_settings(settings: Settings, run_dir: Path) -> None:
    """Refuse a relaunch whose settings differ from the run's saved ones (exit 2 upstream)."""
    check_creatable(run_dir)
    saved = saved_settings(run_dir)
    if saved is None:
        return
    old, new = flatten(saved), flatten(settings.model_dump(mode="json"))
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    changed = [k for k in changed if not _harmless(k)]
    if changed:
        shown = ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in changed[:8])
        more = f" and {len(changed) - 8} more" if len(changed) > 8 else ""
        raise ConfigError(
            f"{run_dir} was trained with other settings: {shown}{more}. A run folder belongs "
            "to one experiment: use a new output_dir (or the run's own settings)"
        )


def data_fingerprint(files: list[Path]) -> dict[str, list[float]]:
    """[size, modification time] per file, keyed by its path under the folder holding them all
    (DEAP's: sNN.dat; SEED-IV's: 1/<subject>_<date>.mat): files of one name in different
    sub-folders stay apart, and the keys do not depend on which level `data.root` names."""
    from eeg_emotion.data.pipeline import file_label

    base = Path(os.path.commonpath(files)) if files else Path()
    return {file_label(base, p): [p.stat().st_size, round(p.stat().st_mtime, 3)] for p in files}


def check_data(run_dir: Path, fingerprint: dict[str, list[float]]) -> None:
    """Refuse a relaunch on data files that changed since the run started."""
    saved = fileio.read_json(run_dir / "data_files.json", default=None)
    if saved is None:
        return
    changed = sorted(
        k for k in saved.keys() | fingerprint.keys() if saved.get(k) != fingerprint.get(k)
    )
    if changed:
        raise ConfigError(
            f"{run_dir} was trained on other data: {', '.join(changed[:8])} changed (size, "
            "modification time, added or removed) since the run started. Restore the files or "
            "use a new output_dir"
        )


def save_data_fingerprint(run_dir: Path, fingerprint: dict[str, list[float]]) -> None:
    (run_dir / "data_files.json").write_text(json.dumps(fingerprint, indent=1))


def owner_gone(owner: dict[str, Any], me: dict[str, Any]) -> str | None:
    """Why the process that `owner` records (host, pid, SLURM job) cannot still be at work, as
    seen by `me`, or None while it may be: an earlier run of this same SLURM job, or a process
    gone from this host."""
    job = owner.get("slurm_job")
    if job and job == me["slurm_job"]:
        return f"left by an earlier run of SLURM job {job}"
    if owner.get("host") == me["host"]:  # SLURM's tasks on one node share its PIDs
        try:
            os.kill(int(owner.get("pid", -1)), 0)
        except ProcessLookupError:
            return f"process {owner.get('pid')} on {owner.get('host')} is gone"
        except (PermissionError, ValueError, OverflowError):
            pass
    return None


class RunLock:
    """`RUN/.lock`, created exclusively by the main process; refreshed while training runs."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_NAME
        self.held = False
        self.took_over: str | None = None  # why an earlier holder's lock was stale

    def _me(self) -> dict[str, Any]:
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "slurm_job": os.environ.get("SLURM_JOB_ID"),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }

    def _stale(self, holder: dict[str, Any]) -> str | None:
        """Why the holder is gone, or None if it may be alive."""
        gone = owner_gone(holder, self._me())
        if gone is not None:
            return gone
        age = time.time() - self.path.stat().st_mtime
        if age > LOCK_STALE_S:
            return f"not refreshed for {age / 60:.0f} minutes"
        return None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                try:
                    holder = fileio.load_json(self.path)
                except (OSError, ValueError):
                    holder = {}
                reason = self._stale(holder) if self.path.exists() else "released"
                if reason is None:
                    raise ConfigError(
                        f"{self.path.parent} is in use by a run on host {holder.get('host')}, "
                        f"PID {holder.get('pid')} (since {holder.get('since')}): wait for it to "
                        "finish or use another output_dir"
                    ) from None
                self.took_over = reason
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self._me(), f)
            self.held = True
            return
        raise ConfigError(f"{self.path}: could not take the run folder's lock")

    def refresh(self) -> None:
        if self.held:
            os.utime(self.path)

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def write_status(run_dir: Path, status: str, step: int, epoch: int, message: str = "") -> None:
    """RUN/status.json: running, stopped, finished or failed (with why)."""
    (run_dir / "status.json").write_text(
        json.dumps({"status": status, "global_step": step, "epoch": epoch, "message": message})
    )


def read_progress(run_dir: Path) -> tuple[int, int]:
    """The step and epoch that status.json last recorded; (0, 0) without a readable one."""
    try:
        saved = fileio.load_json(run_dir / "status.json")
        return int(saved["global_step"]), int(saved["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0, 0


def check_relaunch(settings: Settings, run_dir: Path) -> dict[str, list[float]]:
    """Settings and data files must be the run's own; returns the data files' fingerprint."""
    from eeg_emotion.data.pipeline import data_files

    check_settings(settings, run_dir)
    fingerprint = data_fingerprint(data_files(settings.data))  # the files the source reads
    check_data(run_dir, fingerprint)
    return fingerprint


def prepare(
    settings: Settings, run_dir: Path, split: dict, fingerprint: dict[str, list[float]]
) -> None:
    """What a run folder records before training (settings, split, data files), and what an
    earlier job left half-done is cleared (main process, holding the lock)."""
    from eeg_emotion.config import dump_settings
    from eeg_emotion.data.splits import save_split
    from eeg_emotion.training.checkpoint import remove_leftovers

    dump_settings(settings, run_dir / "config.yaml")
    save_split(split, run_dir / "splits.json")
    if not (run_dir / "data_files.json").exists():
        save_data_fingerprint(run_dir, fingerprint)
    if (run_dir / "STOP").exists():
        (run_dir / "STOP").unlink()  # a new launch means: go on
        log.info("removed a stop file left by the previous job")
    for path in remove_leftovers(run_dir):
        log.info("removed %s, left half-written by an earlier job", path.name)
