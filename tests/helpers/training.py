"""Running launch/train.py as users do, for the training and resume tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file

from tests.helpers.paths import ROOT

PY = sys.executable
ACCELERATE = [PY, "-m", "accelerate.commands.launch"]


def command(
    root: Path, cache: Path, run: Path, *overrides: str, launcher: list[str] | None = None
) -> list[str]:
    base = [
        f"data.root={root}",
        f"data.cache_dir={cache}",
        f"output_dir={run}",
    ]
    prefix = launcher if launcher is not None else [PY]
    return [
        *prefix,
        str(ROOT / "launch" / "train.py"),
        "--config",
        str(ROOT / "configs" / "tiny.yaml"),
        *base,
        *overrides,
    ]


def run(cmd: list[str], env: dict | None = None, expect: int = 0) -> subprocess.CompletedProcess:
    out = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    assert out.returncode == expect, (
        f"exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}"
    )
    return out


def head_weights(run_dir: Path) -> dict[str, np.ndarray]:
    return load_file(str(run_dir / "best" / "head.safetensors"))


def assert_same_model(a: Path, b: Path, atol: float = 0.0) -> None:
    wa, wb = head_weights(a), head_weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], atol=atol, rtol=0, err_msg=k)


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def accelerate(port: int, *how: str) -> list[str]:
    return [
        *ACCELERATE,
        *how,
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port),
    ]


def ddp(port: int) -> list[str]:
    return accelerate(port, "--multi_gpu", "--num_processes", "2")


def deepspeed(config: Path, port: int, precision: str = "bf16") -> list[str]:
    return [
        *ACCELERATE,
        "--use_deepspeed",
        "--num_processes",
        "1",
        "--num_machines",
        "1",
        "--deepspeed_config_file",
        str(config),
        "--mixed_precision",
        precision,
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(port),
    ]


def stop_when(run_dir: Path, step: int, how: str, proc: subprocess.Popen) -> None:
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and any(
            json.loads(line).get("step", 0) >= step
            for line in metrics.read_text().splitlines()
            if line.strip()
        ):
            if how == "file":
                (run_dir / "STOP").write_text("")
            else:
                sig = {
                    "sigusr1": signal.SIGUSR1,
                    "sigterm": signal.SIGTERM,
                    "sigint": signal.SIGINT,
                    "kill9": signal.SIGKILL,
                }
                proc.send_signal(sig[how])
            return
        time.sleep(0.01)


def status(run_dir: Path) -> str:
    try:
        return json.loads((run_dir / "status.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return "none"
