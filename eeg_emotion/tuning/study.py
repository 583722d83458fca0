"""A study folder: its record, Optuna's journal, and which process runs which trial.

    STUDY/study.json        what the study searches (settings, space, budget): every worker's
                            command must match it
    STUDY/journal.log       Optuna's journal (JournalStorage on a JournalFileBackend): several
                            processes on several nodes share it through the file system
    STUDY/trial-N/          trial N's run folder

Workers claim trials under a lock of their own (`claim`): the budget is counted and the next
trial asked for in one step, so that however many processes pull from the study, it ends with
exactly the budget's trials. A claimed trial stays RUNNING in the journal with its owner (host,
PID, SLURM job) until it is told COMPLETE, PRUNED or FAIL. A worker that is stopped (preempted,
out of time, Ctrl-C) marks its trial released: the next claim, by any worker, adopts it, and its
run folder resumes from its newest checkpoint. So does a trial whose owner is gone (its process
dead on this host, an earlier run of the same SLURM job, a SLURM job no longer queued).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

from eeg_emotion import fileio
from eeg_emotion.config import Settings
from eeg_emotion.errors import ConfigError
from eeg_emotion.training.run_folder import owner_gone
from eeg_emotion.tuning.space import Space

RECORD = "study.json"
JOURNAL = "journal.log"
CLAIMS = "claims"  # JournalFileOpenLock adds .lock: created exclusively, works over NFS
LOWER_IS_BETTER = ("loss", "trial_loss")  # as the trainer selects its best model
# A trial's user attributes: its owner while RUNNING, every worker that ran it (a trial
# released or orphaned is run on by another), and why it was released.
OWNER, WORKERS, RELEASED = "owner", "workers", "released"
# SLURM states of a job that may still run its trials (a requeued one comes back).
QUEUED = {
    "PENDING",
    "RUNNING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "CONFIGURING",
    "COMPLETING",
    "SUSPENDED",
}


def trial_dir(study_dir: Path, number: int) -> Path:
    return study_dir / f"trial-{number}"


@dataclass(frozen=True)
class Record:
    """What a study searches; every worker, the final job included, must bring the same."""

    config: str  # the file's absolute path (each trial reads it with the overrides)
    overrides: list[str]
    settings: dict[str, Any]  # config + overrides, resolved: a changed file is noticed
    space: dict[str, Any]
    trials: int

    @classmethod
    def of(
        cls, config: str, overrides: list[str], settings: Settings, space: Space, trials: int
    ) -> Record:
        resolved = settings.model_dump(mode="json")
        # The file as an absolute path: a worker started from another folder reads the same.
        return cls(str(Path(config).resolve()), list(overrides), resolved, space.as_dict(), trials)

    def direction(self) -> Literal["minimize", "maximize"]:
        metric = self.settings["train"]["best_metric"]
        return "minimize" if metric in LOWER_IS_BETTER else "maximize"

    def metric(self) -> str:
        return str(self.settings["train"]["best_metric"])


def write_or_check_record(study_dir: Path, record: Record) -> None:
    """Record the study on its first command; later ones (other workers, a rerun, the final
    job) must search the same settings, space and budget: refused otherwise, naming what
    differs, before anything is written."""
    path = study_dir / RECORD
    fresh = {k: v for k, v in record.__dict__.items() if k not in ("config", "overrides")}
    if path.exists():
        saved = fileio.read_json(path)
        changed = [k for k in fresh if saved.get(k) != fresh[k]]
        if changed:
            what = {
                "settings": "settings (config + overrides)",
                "space": "search space",
                "trials": f"budget (--trials {saved.get('trials')}, not {fresh['trials']})",
            }
            names = " and ".join(what[k] for k in changed)
            raise ConfigError(
                f"{study_dir} is a study of other {names}: a study searches one space on one "
                "set of settings; use a new --study folder"
            )
        return
    if study_dir.exists() and not study_dir.is_dir():
        raise ConfigError(f"--study {study_dir} is a file, not a folder")
    # Hidden names: another worker's record half-written (published by rename).
    if study_dir.is_dir() and any(not p.name.startswith(".") for p in study_dir.iterdir()):
        raise ConfigError(f"--study {study_dir} holds files but no {RECORD}: not a study folder")
    study_dir.mkdir(parents=True, exist_ok=True)
    with fileio.publish_file(path) as tmp:
        tmp.write_text(json.dumps(record.__dict__, indent=1) + "\n")


def read_record(study_dir: Path) -> Record:
    path = study_dir / RECORD
    if not path.is_file():
        raise ConfigError(f"{study_dir}: no {RECORD} (not a study folder; tune makes one)")
    return Record(**fileio.read_json(path))


def open_study(study_dir: Path, record: Record) -> optuna.Study:
    """The study in STUDY/journal.log (created on first use), its sampler and pruner as the
    space names them."""
    pruner_spec = record.space["pruner"]
    pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
    if pruner_spec["kind"] == "median":
        pruner = optuna.pruners.MedianPruner(
            n_startup_trials=pruner_spec.get("startup_trials", 5),
            n_warmup_steps=pruner_spec.get("warmup_steps", 0),
        )
    path = str(study_dir / JOURNAL)
    storage = JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # each trial's lines are tune's own
    return optuna.create_study(
        storage=storage,
        study_name=study_dir.resolve().name,
        direction=record.direction(),
        sampler=sampler_for(record.space["sampler"], 0),
        pruner=pruner,
        load_if_exists=True,
    )


def sampler_for(spec: dict[str, Any], number: int) -> optuna.samplers.BaseSampler:
    """The sampler that draws trial `number`, seeded with the space's seed + `number`: workers
    that each seeded one sampler alike would draw the same settings for their first trials,
    and one worker alone still draws the same study every time."""
    seed = spec.get("seed", 0) + number
    if spec["kind"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=spec.get("startup_trials", 10))


def me() -> dict[str, Any]:
    """This worker, as a trial's owner. An array task has a job id of its own, and is also
    named <array job>_<task> (the array job's id alone names every task of the array)."""
    task = os.environ.get("SLURM_ARRAY_TASK_ID")
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job": os.environ.get("SLURM_JOB_ID"),
        "slurm_task": f"{os.environ.get('SLURM_ARRAY_JOB_ID')}_{task}" if task else None,
        "since": time.time(),
    }


def gone(owner: dict[str, Any], *, ask_slurm: bool = False) -> str | None:
    """Why a RUNNING trial's owner cannot finish it, or None while it may. `ask_slurm`: also
    ask SLURM whether the owner's job is still queued (the final job; squeue on every claim
    would load the controller)."""
    reason = owner_gone(owner, me())
    if reason is not None:
        return reason
    job = owner.get("slurm_job")
    if job and ask_slurm and shutil.which("squeue"):
        name = owner.get("slurm_task") or job
        out = subprocess.run(
            ["squeue", "-h", "-j", str(name), "-o", "%T"], capture_output=True, text=True
        )
        if out.returncode == 0 and not set(out.stdout.split()) & QUEUED:
            return f"SLURM job {job} is no longer queued"
    return None


def adoptable(trial: FrozenTrial, *, ask_slurm: bool = False) -> str | None:
    """Why another worker may take over this RUNNING trial, or None."""
    if trial.user_attrs.get(RELEASED):
        return f"released: {trial.user_attrs[RELEASED]}"
    owner = trial.user_attrs.get(OWNER)
    return None if owner is None else gone(owner, ask_slurm=ask_slurm)


class Claims:
    """The lock under which workers count the budget and take a trial."""

    def __init__(self, study_dir: Path) -> None:
        self.lock = JournalFileOpenLock(str(study_dir / CLAIMS), grace_period=30)

    def __enter__(self) -> Claims:
        self.lock.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def claim(
    study: optuna.Study, study_dir: Path, space: Space, budget: int, *, ask_slurm: bool = False
) -> tuple[int, str | None] | None:
    """The next trial for this worker: a RUNNING one to adopt (released by a stopped worker, or
    whose owner is gone: the reason is returned with it), else a new one while the budget
    allows, its settings drawn by the sampler. None when the budget is spent and nothing is
    left to adopt."""
    with Claims(study_dir):
        trials = study.get_trials(deepcopy=False)
        for trial in trials:
            if trial.state != TrialState.RUNNING:
                continue
            why = adoptable(trial, ask_slurm=ask_slurm)
            if why is not None:
                workers = [*trial.user_attrs.get(WORKERS, []), me()]
                set_attrs(study, trial.number, {OWNER: me(), WORKERS: workers, RELEASED: None})
                return trial.number, why
        if len(trials) >= budget:
            return None
        study.sampler = sampler_for(space.sampler, len(trials))
        new = study.ask()
        space.suggest(new)
        new.set_user_attr(OWNER, me())
        new.set_user_attr(WORKERS, [me()])
        return new.number, None


def _trial_id(study: optuna.Study, number: int) -> int:
    # Optuna hands out a live trial only from ask(); a trial asked by another process (or
    # adopted) is reached through the storage's own lookup by number.
    storage = study._storage
    return storage.get_trial_id_from_study_id_trial_number(study._study_id, number)


def set_attrs(study: optuna.Study, number: int, attrs: dict[str, Any]) -> None:
    """User attributes of trial `number`."""
    trial_id = _trial_id(study, number)
    for key, value in attrs.items():
        study._storage.set_trial_user_attr(trial_id, key, value)


def trial_of(study: optuna.Study, number: int) -> optuna.Trial:
    """A live handle on trial `number` (reporting, pruning) in a process that did not ask it."""
    return optuna.Trial(study, _trial_id(study, number))


def state_of(study: optuna.Study, number: int) -> TrialState:
    return study.get_trials(deepcopy=False)[number].state


def running(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]


def describe_owner(trial: FrozenTrial) -> str:
    owner = trial.user_attrs.get(OWNER) or {}
    name = owner.get("slurm_task") or owner.get("slurm_job")
    job = f", SLURM job {name}" if name else ""
    return f"trial {trial.number} (host {owner.get('host')}, PID {owner.get('pid')}{job})"
