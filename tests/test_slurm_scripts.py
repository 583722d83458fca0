"""The SLURM scripts refuse what they cannot do before touching anything (no cluster needed)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

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
