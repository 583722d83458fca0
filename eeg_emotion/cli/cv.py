"""Cross-validation on this machine in one command: every fold in turn, then one table.

    python launch/cv.py --config CONFIG
        --protocol subject_kfold|kfold|loso|cross_trial|cross_session
        [--folds N] --out DIR [--baseline band_power_lr|eegnet|connectivity] [overrides]

Each fold is an ordinary run folder DIR/fold-<i> (W&B group = basename of DIR); a fold that
already finished is not trained again (its run resumes at the end). subject_kfold: folds over
the subjects (a fold's subjects are test, some of the others val: no subject in two parts);
kfold: folds over each subject's trials; cross_trial: folds over videos (the same for every
subject); loso: one subject per fold, --folds defaults to the number of subjects found;
cross_session: one session per fold (every subject's session i is fold i's test), --folds
defaults to the number of sessions.
--baseline fits that baseline on the same folds instead of the LLM. The table (mean ± sd over
folds and pooled over all test windows and trials) goes to DIR/cv_results.md and .json - the
same as the SLURM array (slurm/cv.sh); `python launch/report.py DIR` adds report.md and plots.
On W&B the folds share the group (job type "fold", or "baseline" with --baseline) and the
aggregate is a run of its own in it (job type "cv", named <basename of DIR>-cv).
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TextIO

from eeg_emotion.cli import handle_errors, number, parser
from eeg_emotion.config import Settings
from eeg_emotion.errors import ConfigError

PROTOCOLS = ["subject_kfold", "kfold", "loso", "cross_trial", "cross_session"]
BASELINES = ["band_power_lr", "eegnet", "connectivity"]
# Set by this command for each fold: an override of them would be silently replaced.
OWN_KEYS = (
    "data.split.protocol",
    "data.split.num_folds",
    "data.split.fold",
    "output_dir",
    "train.tracker.group",
    "train.tracker.name",
    "baseline.name",
)


def refuse_conflicting_overrides(overrides: list[str]) -> None:
    from eeg_emotion.config import overridden

    clash = overridden(overrides, OWN_KEYS)
    if clash:
        raise ConfigError(
            f"{', '.join(clash)}: set by cv itself for every fold (use --protocol, --folds, "
            "--out and --baseline instead); leave them out of the overrides"
        )


def check_folds_against_trials(settings: Settings, protocol: str, folds: int) -> None:
    """The fold count against every subject's trials (kfold), the videos (cross_trial) or the
    subjects (subject_kfold), from the recordings themselves: refused here, before any fold runs
    or is submitted. subject_kfold's parts need only the subjects, so every fold's split is made
    here too: a fold left without training or val subjects is refused now, not after the folds
    before it have run."""
    from eeg_emotion.data import splits
    from eeg_emotion.data.pipeline import find_recordings

    reader, refs = find_recordings(settings.data)
    trials: dict[int, list[int]] = {}
    for ref in refs:
        rec = reader.read(ref)
        trials.setdefault(rec.subject, []).extend(
            (rec.session - 1) * 1000 + n - 1 for n in rec.trial_numbers
        )
    split = settings.data.split.model_copy(
        update={"protocol": protocol, "num_folds": folds, "fold": 0}
    )
    splits._check_folds(split, trials)
    if protocol == "subject_kfold":
        pairs = [(s, t) for s in trials for t in trials[s]]
        for fold in range(folds):
            splits.make_split(
                split.model_copy(update={"fold": fold}),
                trials,
                dict.fromkeys(pairs, 1),
                dict.fromkeys(pairs, 0),
            )


def count_folds(settings: Settings, protocol: str, folds: int | None) -> int:
    """loso's folds are the subjects found, cross_session's the sessions: all of them unless
    --folds asks for fewer; more is refused."""
    from eeg_emotion.data.pipeline import find_recordings

    refs = find_recordings(settings.data)[1]
    if protocol == "loso":
        units, unit = sorted({r.subject for r in refs}), "subject"
    else:
        units, unit = sorted({r.session for r in refs}), "session"
    if len(units) < 2:
        raise ConfigError(
            f"--protocol {protocol} needs recordings of at least 2 {unit}s; these are all of "
            f"{unit} {units[0] if units else '?'} (data.root={settings.data.root})"
        )
    folds = len(units) if folds is None else folds
    if folds > len(units):
        raise ConfigError(
            f"--folds {folds} but {protocol} has only {len(units)} folds, one per {unit} "
            f"({units}); use at most --folds {len(units)}"
        )
    return folds


@handle_errors
def main(argv: list[str] | None = None, *, prog: str | None = None) -> int:
    p = parser(__doc__, prog)
    p.add_argument("--config", required=True)
    p.add_argument("--protocol", choices=PROTOCOLS, required=True)
    p.add_argument(
        "--folds",
        type=number(2, 10_000),
        help="subject_kfold, kfold, cross_trial: number of folds (default 5); loso: subjects; "
        "cross_session: sessions (default: all)",
    )
    p.add_argument("--out", required=True)
    p.add_argument("--baseline", choices=BASELINES, help="instead of the LLM")
    p.add_argument(
        "--prepare-only",
        action="store_true",
        help="check the settings and record the CV group, run no fold (slurm/cv.sh uses it)",
    )
    p.add_argument("overrides", nargs="*")
    args = p.parse_intermixed_args(argv)  # overrides before or after the options
    from eeg_emotion.config import load_settings
    from eeg_emotion.evaluation.cv import write_cv_results, write_group

    refuse_conflicting_overrides(args.overrides)
    settings = load_settings(args.config, args.overrides)
    folds = args.folds
    if args.protocol in ("loso", "cross_session"):
        folds = count_folds(settings, args.protocol, folds)
    folds = 5 if folds is None else folds
    if folds < 2:
        raise ConfigError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if args.protocol in ("subject_kfold", "kfold", "cross_trial"):
        check_folds_against_trials(settings, args.protocol, folds)
    out = Path(args.out)
    # Recorded before the first fold: aggregate and report pool exactly these folds, and a rerun
    # with other folds or settings into the same folder is refused here.
    write_group(out, args.protocol, folds, settings.model_dump(mode="json"), baseline=args.baseline)
    # One process per fold (see run_fold), started through the installed package rather than
    # a script path, so that this works from any folder.
    if args.prepare_only:
        print(f"{out}: CV group of {folds} {args.protocol} folds recorded")
        return 0
    command = "eeg_emotion.cli.baseline" if args.baseline else "eeg_emotion.cli.train"
    fork = can_fork()
    if fork and args.baseline == "eegnet":  # torch, imported once for every fold
        importlib.import_module("eeg_emotion.baselines.eegnet")
    for fold in range(folds):
        fold_args = [
            "--config",
            args.config,
            *args.overrides,
            *([f"baseline.name={args.baseline}"] if args.baseline else []),
            f"data.split.protocol={args.protocol}",
            f"data.split.num_folds={max(folds, 2)}",
            f"data.split.fold={fold}",
            f"output_dir={out / f'fold-{fold}'}",
            f"train.tracker.group={out.name}",
            f"train.tracker.name={out.name}-fold-{fold}",
        ]
        how = "forked" if fork else "new process"
        print(f"fold {fold + 1}/{folds}: {out / f'fold-{fold}'} ({how})", flush=True)
        code = run_fold(command, fold_args, fork)
        if code != 0:
            log = out / f"fold-{fold}" / "train.log"
            where = f"; see {log}" if log.exists() else " (its message is above)"
            print(f"error: fold {fold} ended with exit code {code}{where}", file=sys.stderr)
            return code if code in (2, 3) else 1  # settings/data, or stopped: as the fold said
    print(write_cv_results(out))
    return 0


def run_fold(command: str, argv: list[str], fork: bool, output: TextIO | None = None) -> int:
    """`python -m command argv` in a process of its own, whose exit code is returned, its
    stdout and stderr into `output` where given. With `fork` (see can_fork) the process is
    forked from this one once `command` is imported here: every fold starts with clean process
    state (Accelerate, logging, signal handlers, memory) without paying the ~10 s of importing
    torch, transformers and peft again."""
    if not fork:
        err = None if output is None else subprocess.STDOUT
        return subprocess.run(
            [sys.executable, "-m", command, *argv], stdout=output, stderr=err
        ).returncode
    module = importlib.import_module(command)
    module.preload()  # imports only: no thread or device starts
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the fold: never returns to the loop above

        def fold() -> int:
            if output is not None:
                os.dup2(output.fileno(), 1)
                os.dup2(output.fileno(), 2)
                # Streams of its own: another thread of the parent may have held the old ones'
                # locks at the fork.
                sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
                sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            return int(module.main(argv, prog=f"python -m {command}") or 0)

        exit_forked(fold)
    # A ctrl-c reaches the fold too, which stops with a checkpoint: wait for its exit code
    # (only the main thread handles signals; another one, a benchmark's, just waits).
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
    try:
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)


def preload() -> None:
    """What folds run, training's and the baselines' code, imported ahead: a benchmark that
    forks whole CV groups (run_fold on this module) imports it once."""
    from eeg_emotion.cli import baseline, train

    train.preload()
    baseline.preload()


def exit_forked(target: Callable[[], int]) -> NoReturn:
    """The body of a forked child: `target()` with Ctrl-C as KeyboardInterrupt, then exit with
    its code as a process of its own would (an argparse exit keeps its code, an uncaught
    exception prints its traceback and is 1), without running the parent's exit handlers."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        code = target()
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except BaseException:
        traceback.print_exc()
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or 0)


def can_fork() -> bool:
    """Linux (fork is unsafe once macOS frameworks load), with this process's output on file
    descriptors, which a forked fold's output reaches (a stream in memory would keep it in the
    fold's copy)."""
    return sys.platform == "linux" and has_fd(sys.stdout) and has_fd(sys.stderr)


def has_fd(stream: object) -> bool:
    """Whether `stream` writes to a file descriptor."""
    try:
        stream.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
