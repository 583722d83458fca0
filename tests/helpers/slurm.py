"""A local SLURM on loopback (slurm/local-cluster.sh) for the cluster tests, and reading its jobs.

`make test` (--dist loadfile) runs a file in one pytest-xdist worker, so each test file starts
one cluster of its own; two files' clusters run side by side, each with its own state folder
(a temp folder of its worker), controller and node ports, and job ids (slurm/train.sh derives
the rendezvous port of a job from its id).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers.paths import ROOT

# Job states that end a job for good: anything else (REQUEUED included, which squeue's default
# state filter hides while a requeued job moves back to PENDING) is still on its way.
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}


@contextmanager
def local_cluster(
    state: Path, *, port: int, nodes: int = 1, first_job_id: int = 1
) -> Iterator[dict[str, str]]:
    """Start a cluster with state in `state`; yield the environment that submits to it."""
    env = {
        **os.environ,
        "EEG_SLURM_DIR": str(state),
        "EEG_SLURM_PORT": str(port),
        "EEG_SLURM_NODES": str(nodes),
        "EEG_SLURM_FIRST_JOB_ID": str(first_job_id),
    }
    out = run_in_checkout(env, "bash", "slurm/local-cluster.sh", "start", timeout=300)
    assert out.returncode == 0, out.stderr
    conf = next(
        line.split("=", 1)[1] for line in out.stdout.splitlines() if line.startswith("SLURM_CONF=")
    )
    env.update(SLURM_CONF=conf, EEG_EMOTION_VENV=str(Path(sys.executable).parents[1]))
    try:
        yield env
    finally:
        subprocess.run(["bash", "slurm/local-cluster.sh", "stop"], cwd=ROOT, env=env, timeout=120)


def run_in_checkout(env: dict, *cmd: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `cmd` in the checkout with the environment `env`, its output captured as text."""
    return subprocess.run(
        list(cmd), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def sh(env: dict, *cmd: str) -> str:
    out = run_in_checkout(env, *cmd)
    assert out.returncode == 0, f"{cmd}: {out.stderr}"
    return out.stdout.strip()


def submit_training(
    env: dict, run_dir: Path, root: Path, cache: Path, *overrides: str, sbatch: tuple[str, ...] = ()
) -> str:
    """sbatch slurm/train.sh on configs/tiny.yaml with the data in `root`, into `run_dir` (the
    sbatch output beside it), a metrics row every step; the job id."""
    return sh(
        env,
        "sbatch",
        "--parsable",
        f"--output={run_dir.parent}/sbatch-%j.out",
        *sbatch,
        "slurm/train.sh",
        "configs/tiny.yaml",
        f"data.root={root}",
        f"data.cache_dir={cache}",
        f"output_dir={run_dir}",
        "train.log_every=1",
        *overrides,
    )


def preempt(
    env: dict, job: str, run_dir: Path, *, after: int, timeout: float = 300, restarts: int = 1
) -> tuple[dict[str, str], str]:
    """Signal the job's batch script, as --signal=B:USR1@... would, once the run has logged
    `after` steps; check that it stopped with a checkpoint, was requeued (its `restarts`-th
    time), resumed from a checkpoint at `after` or later and finished. SLURM's record of the
    job and its log."""
    wait_for_steps(env, job, run_dir, after, timeout)
    sh(env, "scancel", "--signal=USR1", "--batch", job)
    wait_gone(env, job)
    record = job_record(env, job)  # SLURM's own account: requeued, then done
    assert (record["JobState"], record["Restarts"]) == ("COMPLETED", str(restarts)), record
    log = job_log(run_dir)
    assert "got a stop signal" in log and "stopped with a checkpoint: requeueing" in log
    assert f"(restart {restarts})" in log and log.rstrip().endswith("finished")
    resumed = re.findall(r"resumed from \S+/step-(\d+)", (run_dir / "train.log").read_text())
    assert len(resumed) == restarts and int(resumed[-1]) >= after, resumed
    return record, log


def earlier_run_left(job: str) -> bool:
    """Whether a step of an earlier run of the job still runs on the nodes (all on this machine):
    SLURM kills a requeued job that starts before then ("Job credential revoked")."""
    title = f"slurmstepd: [{job}.".encode()
    for proc in Path("/proc").iterdir():
        try:
            if (proc / "cmdline").read_bytes().startswith(title):
                return True
        except OSError:
            continue  # not a process, or gone
    return False


def wait_gone(env: dict, *jobs: str, timeout: float = 600) -> None:
    """Wait until the jobs have ended for good, each requeued one released early (release)."""
    deadline = time.time() + timeout
    clear: dict[str, int] = {}
    while time.time() < deadline:
        if not release(env, jobs, clear):
            return
        time.sleep(1)
    raise AssertionError(f"jobs {jobs} still queued after {timeout} s")


def release(env: dict, jobs: tuple[str, ...], clear: dict[str, int]) -> bool:
    """Whether any of the jobs is still on its way. A requeued job waits ~2 min (SLURM's fixed
    requeue delay) before it is eligible again; to keep the tests short, make it eligible as
    soon as its previous run has left the nodes, seen on two polls in a row (`clear` counts
    them, per job, from poll to poll)."""
    # A job the controller has already forgotten is an error here: gone too.
    out = run_in_checkout(env, "squeue", "-h", "-t", "all", "-o", "%i %T %r", "-j", ",".join(jobs))
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
    live = [row for row in rows if row[1] not in FINAL]
    for job, state, *reason in live:
        if state != "PENDING" or reason != ["BeginTime"]:
            continue
        clear[job] = 0 if earlier_run_left(job) else clear.get(job, 0) + 1
        if clear[job] >= 2:
            sh(env, "scontrol", "update", f"JobId={job}", "StartTime=now")
    return bool(live)


def job_record(env: dict, job: str) -> dict[str, str]:
    """SLURM's own record of a job (`scontrol show job -o`; the local cluster keeps no
    accounting, so no sacct): JobState, Restarts, ExitCode, NumNodes, NodeList, ..."""
    line = sh(env, "scontrol", "show", "job", "-o", job)
    record: dict[str, str] = {}
    # Its own fields come first; later ones (Command=, with the job's arguments) never win.
    for key, value in re.findall(r"(?:^|\s)([A-Za-z]+)=(\S*)", line):
        record.setdefault(key, value)
    return record


def wait_for_steps(env: dict, job: str, run_dir: Path, steps: int, timeout: float = 300) -> None:
    """Wait until the job has logged `steps` optimizer steps to the run's metrics (a requeued
    run released early, as in wait_gone)."""
    deadline = time.time() + timeout
    clear: dict[str, int] = {}
    while time.time() < deadline:
        if (run_dir / "metrics.jsonl").exists() and len(train_steps(run_dir)) >= steps:
            return
        if not release(env, (job,), clear):
            raise AssertionError(f"job {job} ended before step {steps}")
        time.sleep(0.5)
    raise AssertionError(f"job {job} did not reach step {steps} in {timeout} s")


def train_steps(run_dir: Path) -> list[int]:
    """The step of every train row of the run's metrics, in file order."""
    steps = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:  # the last line, half written while training runs
            continue
        if "train/loss" in row:
            steps.append(row["step"])
    return steps


def job_log(run_dir: Path) -> str:
    """The job's own log, RUN/logs/slurm-JOBID.log."""
    [log] = list((run_dir / "logs").glob("slurm-*.log"))
    return log.read_text()
