"""launch/*.py as a user runs them, and the exit codes every command shares."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest

from eeg_emotion.cli import handle_errors
from eeg_emotion.errors import ConfigError, DataError, EEGEmotionError, StorageError, TrainingError
from tests.helpers.paths import ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_synthesize_then_preprocess_then_cache(tmp_path):
    out = run(
        "launch/synthesize.py",
        "--out",
        str(tmp_path / "deap"),
        "--subjects",
        "2",
        "--trials",
        "6",
        "--samples",
        "1664",
        "--seed",
        "5",
    )
    assert out.returncode == 0, out.stderr
    assert "wrote 2 files" in out.stdout
    args = [
        "launch/preprocess.py",
        "--config",
        "configs/tiny.yaml",
        f"data.root={tmp_path / 'deap'}",
        f"data.cache_dir={tmp_path / 'cache'}",
    ]
    first = run(*args)
    assert first.returncode == 0, first.stderr
    assert "subjects 2 (1..2), 60 windows" in first.stdout and "train" in first.stdout
    second = run(*args)
    assert second.returncode == 0 and "loading cached dataset" in second.stderr
    assert second.stdout.splitlines()[:-1] == first.stdout.splitlines()[:-1]


def test_preprocess_bad_input_exits_nonzero_with_one_clear_line(tmp_path):
    (tmp_path / "s01.dat").write_bytes(b"\x80\x02}q\x00(U\x04data")
    cases = {
        "data.root=" + str(tmp_path): f"error: {tmp_path / 's01.dat'}: file is truncated",
        "data.widnow=2": "unknown key 'data.widnow'",
        "data.root=" + str(tmp_path / "nowhere"): "DEAP folder not found",
    }
    for override, message in cases.items():
        res = run(
            "launch/preprocess.py",
            "--config",
            "configs/tiny.yaml",
            override,
            f"data.cache_dir={tmp_path / 'cache'}",
        )
        assert res.returncode == 2
        assert message in res.stderr
        assert "Traceback" not in res.stderr


def test_synthesize_rejects_bad_arguments(tmp_path):
    res = run("launch/synthesize.py", "--out", str(tmp_path), "--subjects", "0")
    assert res.returncode == 2 and "--subjects" in res.stderr
    res = run("launch/synthesize.py", "--out", str(tmp_path), "--samples", "300")
    assert res.returncode == 2 and "baseline" in res.stderr


NOISE = ("gemm_4bit_forward", "is_gradient_checkpointing", "is deprecated", "Setting accelerator")


def imported_modules(stderr: str) -> set[str]:
    """Module names from `python -X importtime` output."""
    return {
        line.rsplit("|", 1)[-1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:")
    }


def test_every_command_answers_help_and_bad_settings_without_loading_torch():
    # What makes --help and a typo cost seconds is importing torch, transformers, peft and
    # bitsandbytes before looking at the arguments: none of them may be imported here.
    for script in sorted((ROOT / "launch").glob("*.py")):
        out = run("-X", "importtime", str(script.relative_to(ROOT)), "--help")
        assert out.returncode == 0 and out.stdout.strip(), (script.name, out.stderr[-2000:])
        assert "torch" not in imported_modules(out.stderr), script.name
        noise = [line for line in out.stderr.splitlines() if not line.startswith("import time")]
        assert not noise, (script.name, noise[:5])
    for script in ("launch/train.py", "launch/plan.py", "launch/baseline.py"):
        out = run("-X", "importtime", script, "--config", "configs/tiny.yaml", "train.epoks=1")
        assert out.returncode == 2 and "did you mean 'train.epochs'" in out.stderr, script
        assert "torch" not in imported_modules(out.stderr), script


def test_the_band_power_baseline_runs_without_torch(tiny_root, tmp_path):
    # torch (EEGNet's) is seconds of start-up that logistic regression never uses.
    out = run(
        "-X",
        "importtime",
        "launch/baseline.py",
        "--config",
        "configs/tiny.yaml",
        f"data.root={tiny_root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"output_dir={tmp_path / 'lr'}",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert (tmp_path / "lr" / "results.json").is_file()
    assert "torch" not in imported_modules(out.stderr)


def raising(exc: Exception) -> Callable[[list[str] | None], int]:
    @handle_errors
    def main(argv: list[str] | None = None) -> int:
        raise exc

    return main


def test_project_errors_become_one_line_and_their_exit_code(capsys):
    cases = [
        (ConfigError("x.yaml: unknown key 'train.epoks'"), 2),
        (DataError("s01.dat", "file is truncated"), 2),
        (StorageError("runs/x: no space left on device"), 2),
        (EEGEmotionError("anything else the project refuses"), 2),
        (TrainingError("non-finite loss at step 7"), 1),
    ]
    for exc, code in cases:
        assert raising(exc)([]) == code
        assert capsys.readouterr().err == f"error: {exc}\n"
    assert capsys.readouterr().err == ""
    with pytest.raises(KeyError):  # a bug keeps its traceback
        raising(KeyError("x"))([])


@pytest.mark.parametrize("fmt", ["dreamer", "seed", "seed_iv", "edf", "fif"])
def test_synthesize_every_format_writes_what_its_reader_reads(tmp_path, fmt, capsys):
    from eeg_emotion.cli.synthesize import main
    from eeg_emotion.data.readers import read_all

    out = tmp_path / fmt
    argv = ["--format", fmt, "--out", str(out), "--subjects", "2", "--trials", "2"]
    argv += ["--sessions", "1", "--seconds", "10", "12"]
    assert main(argv) == 0
    assert f"to {out}" in capsys.readouterr().out
    recordings = list(read_all(fmt if fmt not in ("edf", "fif") else "mne", out))
    assert sorted({r.subject for r in recordings}) == [1, 2]
    for r in recordings:
        assert len(r.trials) == 2
        lengths = [t.shape[1] / r.sampling_rate for t in r.trials]
        assert all(10 <= s <= 12 + 1 / r.sampling_rate for s in lengths), lengths
    before = sorted(p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file())
    assert main(argv) == 2  # refused without --overwrite, nothing rewritten
    assert "--overwrite" in capsys.readouterr().err
    assert sorted(p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()) == before
