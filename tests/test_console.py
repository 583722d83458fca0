"""The installed `eeg-emotion` command and `python -m eeg_emotion`, run outside the checkout
(`python -m eeg_emotion plan` on the reference model: tests/test_plan.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from eeg_emotion.cli import COMMANDS
from tests.helpers.paths import ROOT
from tests.test_cli import imported_modules

CONSOLE = Path(sys.executable).parent / "eeg-emotion"


def run(cwd: Path, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(cmd),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


@pytest.fixture
def console() -> str:
    assert CONSOLE.exists(), f"{CONSOLE} missing: pip install -e {ROOT} installs it"
    return str(CONSOLE)


def test_help_lists_every_command_with_its_summary(console, tmp_path):
    out = run(tmp_path, console, "--help")
    assert out.returncode == 0, out.stderr
    listing = out.stdout.split("commands:\n", 1)[1].splitlines()
    assert [line.split()[0] for line in listing] == list(COMMANDS)
    assert any(line.split()[1:4] == ["Train", "a", "classifier"] for line in listing)
    # Listing the commands imports each command's module: none may load torch.
    timed = run(tmp_path, sys.executable, "-X", "importtime", "-m", "eeg_emotion", "--help")
    assert timed.returncode == 0 and timed.stdout == out.stdout
    assert "torch" not in imported_modules(timed.stderr)
    # A command's own help names it as it was typed.
    sub = run(tmp_path, sys.executable, "-m", "eeg_emotion", "synthesize", "--help")
    assert sub.returncode == 0 and sub.stdout.startswith("usage: eeg-emotion synthesize ")
    assert "--subjects SUBJECTS" in sub.stdout


def test_synthesize_then_preprocess_from_another_folder(console, tmp_path):
    out = run(
        tmp_path,
        *(console, "synthesize", "--out", "deap", "--subjects", "2", "--trials", "6"),
        *("--samples", "1664", "--seed", "5"),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("wrote 2 files to deap in ")
    assert sorted(p.name for p in (tmp_path / "deap").iterdir()) == ["s01.dat", "s02.dat"]
    config = str(ROOT / "configs" / "tiny.yaml")
    cmd = (console, "preprocess", "--config", config, "data.root=deap", "data.cache_dir=cache")
    out = run(tmp_path, *cmd)
    assert out.returncode == 0, out.stderr
    assert "subjects 2 (1..2), 60 windows" in out.stdout
    assert any((tmp_path / "cache").iterdir())  # the tokenized dataset, relative to the cwd


def test_bad_settings_exit_2_with_one_line(console, tmp_path):
    config = str(ROOT / "configs" / "tiny.yaml")
    out = run(tmp_path, console, "train", "--config", config, "train.epoks=1")
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.splitlines() == [
        f"error: {config} + overrides: unknown key 'train.epoks' (did you mean 'train.epochs'?)"
    ]
    assert not (tmp_path / "runs").exists()
