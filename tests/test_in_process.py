"""The test helper that runs launch scripts in the test's process gives what a process of its own
gives (exit code, stdout, stderr) and puts back what a command changes in its process."""

from __future__ import annotations

import logging
import os
import signal
import sys

from accelerate.state import AcceleratorState, GradientState

from eeg_emotion.cli import train as train_cli
from tests.helpers.training import PY, command, launch_script, run


def test_a_run_gives_its_exit_code_and_output_and_leaves_no_trace(tiny_root, tmp_path):
    import sklearn  # imported by the command; its first import sets KMP_INIT_AT_FORK, once

    assert sklearn
    root = logging.getLogger()
    before = (root.handlers[:], root.level, dict(os.environ), os.getcwd())
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    cmd = command(tiny_root, tmp_path / "cache", tmp_path / "run", "train.epochs=1")
    out = run(cmd, env={"WANDB_MODE": "offline"})
    assert "test (best model" in out.stdout and " INFO 1 process(es) on cpu" in out.stderr
    assert (tmp_path / "run" / "results.json").exists()
    # What the run set up in this process (logging, its stop handlers, Accelerate) is undone.
    assert (root.handlers, root.level, dict(os.environ), os.getcwd()) == before
    assert {s: signal.getsignal(s) for s in handlers} == handlers
    assert not AcceleratorState._shared_state and not GradientState._shared_state


def test_a_refusal_is_its_exit_code_and_one_line():
    cmd = [PY, "launch/train.py", "--config", "configs/tiny.yaml", "train.epoks=1"]
    out = run(cmd, expect=2)
    assert out.stderr.startswith("error: ") and "unknown key 'train.epoks'" in out.stderr


def test_an_exception_that_escapes_main_is_exit_1_with_its_traceback(monkeypatch):
    def broken(*args: object, **kwargs: object) -> int:
        raise RuntimeError("escaped")

    monkeypatch.setattr(train_cli, "main", broken)
    out = run([PY, "launch/train.py", "--help"], expect=1)
    assert "Traceback" in out.stderr and "RuntimeError: escaped" in out.stderr


def test_only_launch_scripts_of_this_python_run_in_process():
    assert launch_script([PY, "launch/train.py"]) == "train"
    assert launch_script([PY, "/elsewhere/launch/train.py"]) is None
    assert launch_script([PY, "-m", "accelerate.commands.launch", "launch/train.py"]) is None
    assert launch_script(["python3", "launch/train.py"]) is None or sys.executable == "python3"
    assert launch_script([PY, "tests/helpers/crash_in_checkpoint.py"]) is None
