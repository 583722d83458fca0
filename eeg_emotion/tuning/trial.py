"""One trial of a study: an ordinary training run in STUDY/trial-N whose settings are the
study's plus the values the sampler drew, trained by the training command's own machinery
(run-folder guards, resume, status.json, W&B in the study's group with job type `tune`).

Each val evaluation (the run's `train.best_metric` at that step) is reported to Optuna, whose
pruner may stop the run there. The trial's score is its best model's val score; its test split
is never evaluated: the study chooses on val alone, and the final run of the best settings is
the one model that reads test.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from eeg_emotion import fileio
from eeg_emotion.config import Settings, load_settings
from eeg_emotion.errors import EEGEmotionError
from eeg_emotion.training.stopping import defer_stop_signals
from eeg_emotion.tuning.space import overrides_of
from eeg_emotion.tuning.study import (
    Record,
    open_study,
    read_record,
    set_attrs,
    trial_dir,
    trial_of,
)

STOPPED = 3  # the training command's exit code for a stop with a checkpoint


def study_keys(study_dir: Path, run_dir: Path, name: str) -> list[str]:
    """What tune sets for each of its runs: the folder, and the W&B group (the study)."""
    group = study_dir.resolve().name
    return [
        f"output_dir={run_dir}",
        f"train.tracker.group={group}",
        f"train.tracker.name={group}-{name}",
    ]


def trial_settings(study_dir: Path, record: Record, number: int, params: dict) -> Settings:
    run_dir = trial_dir(study_dir, number)
    own = study_keys(study_dir, run_dir, run_dir.name)
    return load_settings(record.config, [*record.overrides, *overrides_of(params), *own])


def run_trial(study_dir: Path, number: int) -> int:
    """Train trial `number` (resuming its run folder where it has one) and tell Optuna how it
    ended; 0, or STOPPED when a stop request ended it with a checkpoint (the trial stays
    RUNNING for the worker to release)."""
    from eeg_emotion.training import trainer
    from eeg_emotion.training.launch_checks import check_launcher_environment

    defer_stop_signals()
    record = read_record(study_dir)
    study = open_study(study_dir, record)
    params = study.get_trials(deepcopy=False)[number].params
    settings = trial_settings(study_dir, record, number, params)
    os.environ["WANDB_JOB_TYPE"] = "tune"  # each trial a W&B run of job type tune
    trial = trial_of(study, number)
    pruned_at: list[int] = []

    def report(step: int, value: float) -> bool:
        """The trainer's hook, at each val evaluation: True stops the run (pruned)."""
        if step not in trial.study.get_trials(deepcopy=False)[number].intermediate_values:
            trial.report(value, step)  # a resumed run evaluates its last steps again
        if trial.should_prune():
            pruned_at.append(step)
            return True
        return False

    try:
        check_launcher_environment(settings)
        outcome = trainer.main(settings, trial=report)
    except EEGEmotionError as exc:  # its message is the trial's record; the exit code stays
        set_attrs(study, number, {"error": str(exc)})
        study.tell(number, state=TrialState.FAIL)
        raise
    if outcome is trainer.Outcome.STOPPED:
        return STOPPED
    run_dir = Path(settings.output_dir)
    best = fileio.read_json(run_dir / "best" / "val_metrics.json")
    value = float(best[record.metric()])
    attrs: dict[str, Any] = {"val_score": value, "best_step": best["step"]}
    if pruned_at:
        attrs["pruned_at_step"] = pruned_at[-1]
    set_attrs(study, number, attrs)
    if pruned_at:  # Optuna keeps the last reported value as a pruned trial's
        study.tell(number, state=TrialState.PRUNED)
    else:
        study.tell(number, value)
    return 0
