"""Hyperparameter search chosen on val only: Optuna trials, each an ordinary run folder.

    eeg-emotion tune --config CONFIG --space SPACE --study DIR --trials N [--finish]
        [key.sub=value ...]

SPACE (YAML, e.g. configs/tune_space.yaml) names settings keys with ranges or choices, the
sampler and the pruner; every key and value is checked against the settings first. Each trial
trains CONFIG + overrides + the values Optuna's sampler drew into DIR/trial-<n>, through the
training command's own machinery (a W&B run of job type "tune" in the group <basename of DIR>).
Each val evaluation is reported to Optuna, whose pruner may stop the trial there; no trial
evaluates the test split. The study is Optuna's journal file DIR/journal.log: several processes
(and SLURM tasks: slurm/tune.sh) may pull trials from it at once, until N trials have run. A
process stopped by SIGTERM, SIGUSR1 or Ctrl-C leaves its trial with a checkpoint, which the next
process to pull from the study resumes.

--finish: once every trial has ended (this process runs what is left and waits up to --wait
seconds for the others), train the best settings once more into DIR/final (an ordinary training
run: the one model that reads the test split), fit the band-power LR baseline on the same split
into DIR/baseline-band_power_lr, and write DIR/study.md (every trial's settings and val score,
the test result next to the baselines, Optuna's parameter importances and history in
DIR/plots/) and its W&B run (job type "tune"). Run again, it reuses the final run's test result.
Exit codes: 0 done, 2 bad settings, space or study folder (nothing written), 1 the final
training failed, 3 stopped on request (run the same command again to go on).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eeg_emotion.cli import handle_errors, number, parser
from eeg_emotion.errors import ConfigError

# Set by tune for each of its runs: an override of them would be silently replaced.
OWN_KEYS = ("output_dir", "train.tracker.group", "train.tracker.name")
STOPPED = 3
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    p = parser(__doc__, prog)
    p.add_argument("--config", required=True)
    p.add_argument("--space", required=True, help="search space YAML")
    p.add_argument("--study", required=True, help="the study's folder")
    p.add_argument("--trials", required=True, type=number(1, 100_000), help="the budget")
    p.add_argument("--finish", action="store_true", help="then retrain the best and report")
    p.add_argument(
        "--wait",
        type=number(0, 10**7),
        default=3600,
        help="--finish: seconds to wait for trials other processes run (default 3600)",
    )
    p.add_argument(
        "--prepare-only",
        action="store_true",
        help="check everything and record the study, run no trial (slurm/tune.sh uses it)",
    )
    p.add_argument("--run-trial", type=number(0, 10**6), help=argparse.SUPPRESS)
    p.add_argument("overrides", nargs="*")
    args = p.parse_intermixed_args(argv)  # overrides before or after the options
    from eeg_emotion.config import load_settings, overridden
    from eeg_emotion.tuning.space import load_space
    from eeg_emotion.tuning.study import Record, write_or_check_record

    clash = overridden(args.overrides, OWN_KEYS)
    if clash:
        raise ConfigError(
            f"{', '.join(clash)}: set by tune itself for each run (trials go to --study "
            "DIR/trial-<n>, in the W&B group named after DIR); leave them out of the overrides"
        )
    settings = load_settings(args.config, args.overrides)
    space = load_space(args.space, args.config, args.overrides)
    record = Record.of(args.config, args.overrides, settings, space, args.trials)
    study_dir = Path(args.study)
    if args.run_trial is not None:  # one trial in a process of its own (see run_one)
        from eeg_emotion.cli import train
        from eeg_emotion.tuning.trial import run_trial

        train.preload()
        return run_trial(study_dir, args.run_trial)
    write_or_check_record(study_dir, record)
    if args.prepare_only:
        print(f"{study_dir}: study of {args.trials} trials recorded")
        return 0
    argv = list(sys.argv[1:] if argv is None else argv)
    code = work(study_dir, record, space, argv, ask_slurm=args.finish)
    if code != 0 or not args.finish:
        print(f"{study_dir}: this process is done; {progress(study_dir, record)}")
        return code
    return finish(study_dir, record, space, argv, args.wait)


def progress(study_dir: Path, record: Any) -> str:
    """How many of the budget's trials have ended, and how."""
    from collections import Counter

    from eeg_emotion.tuning.study import open_study

    trials = open_study(study_dir, record).get_trials(deepcopy=False)
    states = Counter(t.state.name.lower() for t in trials)
    shown = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    return f"{len(trials)} of {record.trials} trials claimed ({shown or 'none'})"


class Stop:
    """Stop requests to this worker. SIGTERM and SIGUSR1 (preemption, a time limit) are passed
    on to the running trial, which stops with a checkpoint; Ctrl-C reaches it from the terminal
    itself. No trial starts after one."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.child: int | None = None
        self.saved: dict[int, Any] = {}

    def __enter__(self) -> Stop:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, *STOP_SIGNALS):
                self.saved[sig] = signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)

    def handle(self, signum: int, _frame: Any) -> None:
        self.signal = signum
        self.forward()

    def forward(self) -> None:
        if self.child is not None and self.signal in STOP_SIGNALS:
            with contextlib.suppress(ProcessLookupError):  # it has just ended
                os.kill(self.child, signal.SIGUSR1)


def work(
    study_dir: Path, record: Any, space: Any, argv: list[str], *, ask_slurm: bool = False
) -> int:
    """Pull trials from the study and run each in a process of its own until the budget is
    spent (0) or a stop request ends this worker (3: its trial is released, with its
    checkpoint, to the next worker)."""
    from optuna.trial import TrialState

    from eeg_emotion.cli.cv import can_fork
    from eeg_emotion.tuning import study as studies

    study = studies.open_study(study_dir, record)
    fork = can_fork()
    with Stop() as stop:
        while stop.signal is None:
            claimed = studies.claim(study, study_dir, space, record.trials, ask_slurm=ask_slurm)
            if claimed is None:
                return 0
            n, adopted = claimed
            run_dir = studies.trial_dir(study_dir, n)
            how = "forked" if fork else "new process"
            again = f"; resumed: {adopted}" if adopted else ""
            print(f"trial {n}: {run_dir} ({how}{again})", flush=True)
            code = STOPPED if stop.signal else run_one(study_dir, record, n, stop, fork, argv)
            if studies.state_of(study, n) == TrialState.RUNNING:  # the trial told Optuna nothing
                if code == STOPPED or stop.signal is not None:
                    why = f"stopped on {os.uname().nodename}, PID {os.getpid()}, {time.ctime()}"
                    studies.set_attrs(study, n, {studies.RELEASED: why})
                    print(f"trial {n}: stopped with a checkpoint; the next worker resumes it")
                    return STOPPED
                log = run_dir / "train.log"
                error = f"exit code {code}" + (f" (see {log})" if log.exists() else "")
                studies.set_attrs(study, n, {"error": error})
                study.tell(n, state=TrialState.FAIL)
            print(describe(study.get_trials(deepcopy=False)[n]), flush=True)
    return STOPPED


def describe(trial: Any) -> str:
    score = trial.user_attrs.get("val_score")
    shown = "" if score is None else f", val {score:.4f}"
    error = trial.user_attrs.get("error")
    return f"trial {trial.number}: {trial.state.name.lower()}{shown}" + (
        f" ({error})" if error else ""
    )


def run_one(study_dir: Path, record: Any, n: int, stop: Stop, fork: bool, argv: list[str]) -> int:
    """Trial `n` in a process of its own, its exit code."""
    from eeg_emotion.tuning import trial

    command = ["eeg_emotion.cli.tune", *argv, "--run-trial", str(n)]
    if fork:
        preload(record.settings["train"]["tracker"]["kind"] == "wandb")
    return run_forked(command, lambda: handle_errors(trial.run_trial)(study_dir, n), stop, fork)


def run_forked(command: list[str], target: Callable[[], int], stop: Stop, fork: bool) -> int:
    """`target()` in a process forked from this one, its exit code; `python -m command` where
    fork is not available (see cv.can_fork). Forked, as cv forks its folds, once what it runs
    is imported here: each starts with clean process state without paying the ~10 s of
    importing torch, transformers and peft again. A stop request to this process reaches it."""
    from eeg_emotion.cli.cv import exit_forked
    from eeg_emotion.training.stopping import defer_stop_signals

    if stop.signal is not None:  # asked to stop while importing: nothing has started
        return STOPPED
    if not fork:
        proc = subprocess.Popen([sys.executable, "-m", *command])
        stop.child = proc.pid
        try:
            return proc.wait()
        finally:
            stop.child = None
    sys.stdout.flush()
    sys.stderr.flush()
    # A stop signal waits until the child is known here, and there until the handlers that
    # keep it for training are in place: none is lost between the two.
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    pid = os.fork()
    if pid == 0:  # the child: never returns to the caller

        def child() -> int:
            defer_stop_signals()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
            return target()

        exit_forked(child)
    stop.child = pid
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    if stop.signal is not None:  # asked just before the fork: the child has not heard it
        os.kill(pid, signal.SIGUSR1)
    try:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    finally:
        stop.child = None


def preload(wandb: bool) -> None:
    """What every trial imports, imported here once before the first fork: training's code (as
    cv's folds), DeepSpeed (Accelerate imports it to unwrap any model: ~0.7 s a trial) and, where
    trials log to it, W&B."""
    from accelerate.utils import is_deepspeed_available

    from eeg_emotion.cli import train

    train.preload()
    if is_deepspeed_available():
        importlib.import_module("deepspeed")
    if wandb:
        importlib.import_module("wandb")


def finish(study_dir: Path, record: Any, space: Any, argv: list[str], wait_s: float) -> int:
    """The end of the study: wait for the trials others run, retrain the best settings (the
    test split's one reading), fit the band-power LR baseline, write the report."""
    from eeg_emotion.cli import baseline, train
    from eeg_emotion.cli.cv import can_fork
    from eeg_emotion.tuning import study as studies
    from eeg_emotion.tuning.report import write_study_report
    from eeg_emotion.tuning.space import overrides_of
    from eeg_emotion.tuning.trial import study_keys

    study = studies.open_study(study_dir, record)
    deadline, waiting = time.time() + wait_s, ""
    while left := studies.running(study):
        if any(studies.adoptable(t, ask_slurm=True) for t in left):
            code = work(study_dir, record, space, argv, ask_slurm=True)  # run them here
            if code:
                return code
            continue
        names = ", ".join(studies.describe_owner(t) for t in left)
        if time.time() > deadline:
            print(f"warning: still running after {wait_s:g} s, left out: {names}", flush=True)
            break
        if names != waiting:
            print(f"waiting for {names}", flush=True)
            waiting = names
        time.sleep(5)
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise ConfigError(
            f"{study_dir}: no trial completed; nothing to retrain ({progress(study_dir, record)})"
        )
    best = study.best_trial
    base = ["--config", record.config, *record.overrides, *overrides_of(best.params)]
    fork = can_fork()
    final = study_dir / "final"
    lr = study_dir / "baseline-band_power_lr"
    runs = [(train, final, []), (baseline, lr, ["baseline.name=band_power_lr"])]
    with Stop() as stop:
        for command, run_dir, extra in runs:
            if (run_dir / "results.json").exists():  # its test split was read once already
                print(f"{run_dir}: done before; its results are reused", flush=True)
                continue
            print(f"{run_dir}: the best settings (trial {best.number})", flush=True)
            args = [*base, *extra, *study_keys(study_dir, run_dir, run_dir.name)]
            if fork:
                command.preload()
            name = command.__name__
            target = functools.partial(command.main, args, prog=f"python -m {name}")
            code = run_forked([name, *args], target, stop, fork)
            if code != 0 or stop.signal is not None:
                return code if code in (2, 3) else 1 if code else STOPPED
    print(write_study_report(study_dir, study, record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
