"""Running launch/train.py as users do, for the training and resume tests."""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import safetensors.torch
from safetensors.numpy import load_file

from tests.helpers.paths import ROOT

PY = sys.executable
# One thread per run unless set (as under pytest-xdist, see conftest.py): what `accelerate launch`
# gives its CPU workers, so that runs compare exactly however they were started.
os.environ.setdefault("OMP_NUM_THREADS", "1")
ACCELERATE = [PY, "-m", "accelerate.commands.launch"]
# What every finished run folder holds, however it was started.
RUN_FILES = (
    "config.yaml",
    "splits.json",
    "metrics.jsonl",
    "results.json",
    "test_results.txt",
    "best/classifier.json",
    "plots/loss.png",
)


def command(
    root: Path,
    cache: Path,
    run: Path,
    *overrides: str,
    launcher: list[str] | None = None,
    config: str = "tiny.yaml",
) -> list[str]:
    """launch/train.py on configs/`config` with the data in `root`, into the run folder `run`."""
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
        str(ROOT / "configs" / config),
        *base,
        *overrides,
    ]


def run(
    cmd: list[str], env: dict | None = None, expect: int = 0, *, fresh: bool = False
) -> subprocess.CompletedProcess:
    """`cmd` to its end; its exit code must be `expect`. A launch script run by this Python
    alone runs in this process (the same `main` the script calls, without paying ~10 s of
    imports per run); `fresh`, a launcher, or any other command gets a process of its own."""
    script = launch_script(cmd)
    if script is not None and not fresh and all(read_on_use(key) for key in env or {}):
        out = run_in_process(script, cmd, env)
    else:
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


def read_on_use(key: str) -> bool:
    """Whether the environment variable `key` is read when used, not when a library is imported
    (HF_HUB_OFFLINE, OMP_NUM_THREADS and the like are fixed at import: a process of its own)."""
    return key in ("HOME", "EEG_EMOTION_HOME") or key.startswith("WANDB_")


def launch_script(cmd: list[str]) -> str | None:
    """The name of the launch/ script that `cmd` runs with this interpreter alone, else None."""
    if len(cmd) < 2 or cmd[0] != PY:
        return None
    path = Path(cmd[1]) if Path(cmd[1]).is_absolute() else ROOT / cmd[1]
    return path.stem if path.parent == ROOT / "launch" and path.suffix == ".py" else None


@contextlib.contextmanager
def process_state(env: dict | None) -> Iterator[None]:
    """What a command changes in its process, put back after it: environment, working folder,
    logging, warnings filters, signal handlers and Accelerate's process-wide state."""
    import torch
    from accelerate.state import AcceleratorState, GradientState

    from eeg_emotion.training import distributed

    saved_env, cwd = dict(os.environ), os.getcwd()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in ("accelerate", "transformers")}
    signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    teardown_wandb()  # W&B's settings are fixed at its first setup in a process: set up anew
    os.environ.update(env or {})
    os.chdir(ROOT)
    # One thread, as OMP_NUM_THREADS=1 gives a run of its own: runs compare exactly however
    # they were started.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            yield
    finally:
        teardown_wandb()
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        for handler in set(root.handlers + distributed.file_log.handlers) - set(handlers):
            handler.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        for name, was in levels.items():
            logging.getLogger(name).setLevel(was)
        distributed.file_log.handlers.clear()
        distributed.file_log.propagate = True
        for sig, handler in signals.items():
            signal.signal(sig, handler)
        torch.set_num_threads(threads)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        gc.collect()


def teardown_wandb() -> None:
    """W&B's process-wide setup (its settings, read from the environment once, and its service)
    ended, where W&B was imported."""
    if "wandb" in sys.modules:
        sys.modules["wandb"].teardown()


def run_in_process(script: str, cmd: list[str], env: dict | None) -> subprocess.CompletedProcess:
    """launch/`script`.py's `main` on `cmd`'s arguments in this process: its exit code and what
    it wrote to stdout and stderr, as `subprocess.run` would give them. An exception that
    escapes `main` is exit 1 with its traceback, as in a process of its own."""
    main = importlib.import_module(f"eeg_emotion.cli.{script}").main
    stdout, stderr = io.StringIO(), io.StringIO()
    with process_state(env), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            code = main(cmd[2:], prog=f"{script}.py")
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            if exit_.code is not None and not isinstance(exit_.code, int):
                print(exit_.code, file=sys.stderr)
        except Exception:  # what an uncaught exception does to a process
            traceback.print_exc()
            code = 1
    return subprocess.CompletedProcess(cmd, code or 0, stdout.getvalue(), stderr.getvalue())


def head_weights(run_dir: Path) -> dict[str, np.ndarray]:
    """The best model's head and EEG embedding."""
    return load_file(str(run_dir / "best" / "head.safetensors"))


def adapter_weights(run_dir: Path) -> dict[str, np.ndarray]:
    """The best model's LoRA adapter, as fp32 (it is saved in the training dtype: bf16 under
    DeepSpeed, which numpy cannot read)."""
    path = run_dir / "best" / "adapter" / "adapter_model.safetensors"
    if not path.exists() and model_source(run_dir) == "none":  # the no-LLM model has none
        return {}
    return {k: v.float().numpy() for k, v in safetensors.torch.load_file(str(path)).items()}


def model_source(run_dir: Path) -> str:
    return json.loads((run_dir / "best" / "classifier.json").read_text())["model"]["source"]


def assert_same_model(a: Path, b: Path, atol: float = 0.0) -> None:
    """The best models of two runs: head, EEG embedding and LoRA adapter."""
    for weights in (head_weights, adapter_weights):
        wa, wb = weights(a), weights(b)
        assert wa.keys() == wb.keys()
        for k in wa:
            np.testing.assert_allclose(wa[k], wb[k], atol=atol, rtol=0, err_msg=k)


def lora_trained(run_dir: Path) -> bool:
    """Whether the best model's adapter moved off its start (lora_B starts at zero)."""
    return any(np.any(v) for k, v in adapter_weights(run_dir).items() if "lora_B" in k)


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


LOSSES = ("train/loss", "val/loss")


def loss_rows(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """(step, value) of every train and val loss row of metrics.jsonl, in file order."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {key: [(r["step"], r[key]) for r in rows if key in r] for key in LOSSES}


def assert_same_run(run_dir: Path, reference: Path) -> None:
    """Exactly the reference's model, loss rows and results."""
    assert_same_model(run_dir, reference)
    assert loss_rows(run_dir) == loss_rows(reference)
    assert results(run_dir) == results(reference)


def assert_resumed_exactly(run_dir: Path, reference: Path, steps: int = 30) -> None:
    """A stopped and resumed run: exactly the uninterrupted `reference` (whose LoRA adapter
    trained, else a stop in the LoRA phase proves nothing), each of its `steps` logged once."""
    assert lora_trained(reference)
    assert_same_run(run_dir, reference)  # adapter, head, loss rows, results
    logged = [step for step, _ in loss_rows(run_dir)["train/loss"]]
    assert logged == list(range(1, steps + 1)), "a completed step was lost or repeated"


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


def start(cmd: list[str], env: dict | None = None) -> subprocess.Popen:
    """`cmd` in the background; `finish` waits for it."""
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def children(pid: int) -> dict[int, list[bytes]]:
    """The processes whose parent is `pid`, with their environment."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found[int(proc.name)] = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue  # not a process, or gone
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and everything under it (DDP workers run in sessions of their own)."""
    pending, tree = [pid], []
    while pending:
        tree.append(pending.pop())
        pending.extend(children(tree[-1]))
    for each in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(each, signal.SIGKILL)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    """Wait for a run started by `start`; its stderr. A run that hangs (e.g. ranks that
    disagree on a stop, one waiting in a collective) is killed with all its processes."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        proc.communicate(timeout=60)
        raise AssertionError(f"{proc.args} still running after {timeout} s") from None
    return err


def worker_pid(launcher: subprocess.Popen, rank: int, timeout: float = 120) -> int:
    """The PID of the worker of global rank `rank` that `accelerate launch` started."""
    deadline = time.time() + timeout
    while time.time() < deadline and launcher.poll() is None:
        for pid, env in children(launcher.pid).items():
            if f"RANK={rank}".encode() in env:
                return pid
        time.sleep(0.1)
    raise AssertionError(f"no worker of rank {rank} under {launcher.args}")


def logged(run_dir: Path, step: int) -> bool:
    """Whether the run's metrics hold a row of `step` or later."""
    metrics = run_dir / "metrics.jsonl"
    return metrics.exists() and any(
        json.loads(line).get("step", 0) >= step
        for line in metrics.read_text().splitlines()
        if line.strip()
    )


def run_until_stop_file(cmd: list[str], run_dir: Path, step: int) -> subprocess.CompletedProcess:
    """`cmd` run as `run` runs it (in this process: a STOP file needs no signal), a STOP file
    written into the run folder once `step` is logged; it must exit 3, stopped."""
    done = threading.Event()

    def ask() -> None:
        while not done.is_set():
            if logged(run_dir, step):
                (run_dir / "STOP").write_text("")
                return
            time.sleep(0.01)

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    try:
        return run(cmd, expect=3)
    finally:
        done.set()
        asker.join()


def stop_when(
    run_dir: Path, step: int, how: str, proc: subprocess.Popen, pid: int | None = None
) -> None:
    """Ask for a stop (or kill) once `step` is logged: a stop file, or a signal to `proc`
    (or to the process `pid`, e.g. one rank's worker)."""
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if logged(run_dir, step):
            if how == "file":
                (run_dir / "STOP").write_text("")
            else:
                sig = {
                    "sigusr1": signal.SIGUSR1,
                    "sigterm": signal.SIGTERM,
                    "sigint": signal.SIGINT,
                    "kill9": signal.SIGKILL,
                }
                if pid is None:
                    proc.send_signal(sig[how])
                else:
                    os.kill(pid, sig[how])
            return
        time.sleep(0.01)


def status(run_dir: Path) -> str:
    try:
        return json.loads((run_dir / "status.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return "none"


def baseline(
    root: Path, out: Path, *overrides: str, expect: int = 0
) -> subprocess.CompletedProcess:
    """launch/baseline.py on configs/tiny.yaml with the data in `root`, into `out`."""
    cmd = [PY, "launch/baseline.py", "--config", "configs/tiny.yaml", f"data.root={root}"]
    cmd += [f"data.cache_dir={out.parent / 'cache'}", f"output_dir={out}", *overrides]
    return run(cmd, expect=expect)
