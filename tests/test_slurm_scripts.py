"""The SLURM scripts refuse what they cannot do before touching anything (no cluster needed)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
import torch

from tests.helpers.paths import ROOT


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
    out = subprocess.run(
        ["bash", "slurm/train.sh", "configs/tiny.yaml", f"output_dir={run}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
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
        (["configs/tiny.yaml", "kfold", "1"], "--folds 1: cross-validation needs at least 2"),
        (["configs/tiny.yaml", "loso", "5"], "--folds 5 but loso has only 3 folds"),
        (["configs/tiny.yaml", "kfold", "13"], "subject 1 has only 12 trials"),
        (["configs/tiny.yaml", "kfold", "3", "train.epoks=1"], "unknown key 'train.epoks'"),
        (["configs/missing.yaml", "kfold", "3"], "cannot read config"),
    ]
    for i, (args, message) in enumerate(cases):
        out = tmp_path / f"cv-{i}"
        res = subprocess.run(
            ["bash", "slurm/cv.sh", *args[:3], str(out), *args[3:], *data],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr and "nothing submitted" in res.stderr, res.stderr
        assert not out.exists()
    assert not calls.exists()
    # A good group is recorded, then submitted: the array and the aggregate job.
    out = tmp_path / "cv-ok"
    res = subprocess.run(
        ["bash", "slurm/cv.sh", "configs/tiny.yaml", "kfold", "3", str(out), *data],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert (out / "cv_group.json").exists()
    submitted = calls.read_text().splitlines()
    assert len(submitted) == 2 and "--array=0-2" in submitted[0]
    assert "eeg_emotion.cli.aggregate" in submitted[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for CPU-only nodes")
def test_train_sh_refuses_deepspeed_over_several_cpu_processes_before_any_work(tmp_path):
    # An srun first on PATH that only records that it was called: nothing may reach it.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "srun-calls"
    (bin_dir / "srun").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "srun").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(
        PATH=f"{bin_dir}:{os.environ['PATH']}",
        SLURM_JOB_ID="7",
        EEG_DEEPSPEED_CONFIG="ds_configs/zero2.json",
    )
    cases = [  # two nodes of one process, one node of two
        ({"SLURM_JOB_NUM_NODES": "2"}, "DeepSpeed with 2 processes (2 node(s) x 1) needs GPUs"),
        ({"EEG_CPU_PROCESSES": "2"}, "DeepSpeed with 2 processes (1 node(s) x 2) needs GPUs"),
    ]
    for extra, message in cases:
        run = tmp_path / "run"
        out = subprocess.run(
            ["bash", "slurm/train.sh", "configs/tiny.yaml", f"output_dir={run}"],
            cwd=ROOT,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 2, out.stderr
        assert message in out.stderr and "Unset EEG_DEEPSPEED_CONFIG" in out.stderr, out.stderr
        assert not run.exists() and not calls.exists()
