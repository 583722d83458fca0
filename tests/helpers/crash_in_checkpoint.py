"""Run launch/train.py, but die like a SIGKILL between writing checkpoint step-N and publishing
it (N from EEG_TEST_CRASH_STEP, default 6). Under SLURM only the first attempt crashes."""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import eeg_emotion.fileio as fileio

STEP = os.environ.get("EEG_TEST_CRASH_STEP", "6")
FIRST_ATTEMPT = os.environ.get("SLURM_RESTART_COUNT", "0") in ("", "0")


class OsWithCrash:
    def __getattr__(self, name: str):
        return getattr(os, name)

    def replace(self, src, dst) -> None:
        if FIRST_ATTEMPT and Path(dst).name == f"step-{STEP}":
            os._exit(137)  # no cleanup, no exception handlers: as if killed
        os.replace(src, dst)


fileio.os = OsWithCrash()  # checkpoints are published through fileio.swap_in
script = Path(__file__).resolve().parents[2] / "launch" / "train.py"
sys.argv = [str(script), *sys.argv[1:]]
runpy.run_path(str(script), run_name="__main__")
