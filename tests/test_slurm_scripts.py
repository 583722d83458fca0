"""The SLURM scripts refuse what they cannot do before touching anything, and slurm/train.sh
hands srun the launch that the nodes ask for (no cluster needed)."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from tests.helpers.slurm import run_in_checkout


def checksums(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_train_sh_outside_a_job_says_so_and_touches_nothing(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "status.json").write_text('{"status": "finished", "step": 30}')
    before = checksums(run)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    out = run_in_checkout(
        env, "bash", "slurm/train.sh", "configs/tiny.yaml", f"output_dir={run}", timeout=60
    )
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "runs inside a SLURM job" in lines[0] and "sbatch" in lines[0]
    assert checksums(run) == before and sorted(p.name for p in run.iterdir()) == ["status.json"]


def test_cv_sh_checks_everything_before_submitting(tmp_path, tiny_root):
    # An sbatch first on PATH that only records that it was called: nothing may reach it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "sbatch-calls"
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\necho "$@" >> {calls}\necho 1\n')
    (bin_dir / "sbatch").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    data = [f"data.root={tiny_root}", f"data.cache_dir={tmp_path / 'cache'}"]
    cases = [
        (["configs/tiny.yaml", "kfold", "1"], "argument --folds: must be a whole number in [2,"),
        (["configs/tiny.yaml", "loso", "5"], "--folds 5 but loso has only 3 folds"),
        (["configs/tiny.yaml", "kfold", "13"], "subject 1 has only 12 trials"),
        (["configs/tiny.yaml", "kfold", "3", "train.epoks=1"], "unknown key 'train.epoks'"),
        (["configs/missing.yaml", "kfold", "3"], "cannot read config"),
    ]
    for i, (args, message) in enumerate(cases):
        out = tmp_path / f"cv-{i}"
        res = run_in_checkout(env, "bash", "slurm/cv.sh", *args[:3], str(out), *args[3:], *data)
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr and "nothing submitted" in res.stderr, res.stderr
        assert not out.exists()
    assert not calls.exists()
    # A good group is recorded, then submitted: the array and the aggregate job.
    out = tmp_path / "cv-ok"
    res = run_in_checkout(
        env, "bash", "slurm/cv.sh", "configs/tiny.yaml", "kfold", "3", str(out), *data
    )
    assert res.returncode == 0, res.stderr
    assert (out / "cv_group.json").exists()
    submitted = calls.read_text().splitlines()
    assert len(submitted) == 2 and "--array=0-2" in submitted[0]
    assert "eeg_emotion.cli.aggregate" in submitted[1]


def srun_arguments(tmp_path: Path, **environment: str) -> list[str]:
    """What slurm/train.sh runs through srun in a job with `environment`, to fake srun and
    scontrol that only record their arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "srun-calls"
    calls.unlink(missing_ok=True)
    (bin_dir / "srun").write_text(f"#!/bin/sh\nprintf '%s\\0' \"$@\" > {calls}\n")
    (bin_dir / "scontrol").write_text('#!/bin/sh\n[ "$2" = hostnames ] && printf "n1\\nn2\\n"\n')
    for fake in ("srun", "scontrol"):
        (bin_dir / fake).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "EEG_"))}
    env.update(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        EEG_EMOTION_VENV=str(Path(sys.executable).parents[1]),
        EEG_MAX_RESTARTS="0",
        SLURM_JOB_ID="7",
        SLURM_CPUS_PER_TASK="1",
    )
    run = tmp_path / "run"
    out = run_in_checkout(
        {**env, **environment}, "bash", "slurm/train.sh", "configs/tiny.yaml", f"output_dir={run}"
    )
    # The fake srun trains nothing: no status.json, and no restarts left to requeue it.
    assert out.returncode == 1, out.stderr
    assert "giving up" in next((run / "logs").glob("slurm-7.log")).read_text()
    return calls.read_text().split("\0")[:-1]


def test_train_sh_launches_deepspeed_over_cpu_nodes_and_processes(tmp_path):
    deepspeed = {"EEG_DEEPSPEED_CONFIG": "ds_configs/zero2.json"}
    # Two CPU-only nodes, one process each: one launcher per node, started by srun itself.
    args = srun_arguments(tmp_path, SLURM_JOB_NUM_NODES="2", **deepspeed)
    assert args[:4] == ["--ntasks-per-node=1", "--cpus-per-task=1", "--kill-on-bad-exit=1", "bash"]
    launch = args[args.index("_") + 1 :]
    assert launch[: launch.index("launch/train.py")] == [
        *("--num_machines", "2", "--num_processes", "2", "--main_process_ip", "n1"),
        *("--main_process_port", "29507", "--dynamo_backend", "no"),
        *("--use_deepspeed", "--deepspeed_config_file", "ds_configs/zero2.json"),
        *("--deepspeed_multinode_launcher", "standard", "--rdzv_backend", "c10d"),
    ]
    # One node, two processes: DeepSpeed as well, launched on that node alone.
    args = srun_arguments(tmp_path, EEG_CPU_PROCESSES="2", **deepspeed)
    launch = args[args.index("_") + 1 :]
    assert launch[: launch.index("launch/train.py")] == [
        *("--num_machines", "1", "--num_processes", "2", "--main_process_ip", "n1"),
        *("--main_process_port", "29507", "--dynamo_backend", "no"),
        *("--use_deepspeed", "--deepspeed_config_file", "ds_configs/zero2.json"),
    ]
