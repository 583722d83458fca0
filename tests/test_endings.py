"""Every way a training run ends is recorded, and an unreachable W&B never ends one.

W&B is pointed at addresses on this machine that refuse connections or never answer; the
injected faults run in-process through the command's own `main`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from eeg_emotion.cli import train as train_cli
from eeg_emotion.config import load_settings
from eeg_emotion.data import pipeline
from eeg_emotion.model.classifier import EEGEmotionClassifier, InputSpec
from eeg_emotion.training import tracking
from eeg_emotion.training.trainer import Trainer
from tests.helpers.paths import ROOT
from tests.helpers.training import command, run

pytestmark = pytest.mark.slow

TINY_YAML = ROOT / "configs" / "tiny.yaml"
SHORT = ("train.epochs=1",)  # the first phase only: 15 optimizer steps, then val and test
TIMEOUT_S = 5
FAKE_KEY = "0123456789abcdef" * 2 + "01234567"  # 40 hex characters, like a real key
WARNING = re.compile(r"W&B unreachable .*: logging offline to (\S+); upload it later with: (.*)$")


def overrides(root: Path, cache: Path, run_dir: Path, *extra: str) -> list[str]:
    return [f"data.root={root}", f"data.cache_dir={cache}", f"output_dir={run_dir}", *extra]


def read_status(run_dir: Path) -> dict:
    return json.loads((run_dir / "status.json").read_text())


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def warm(tiny_root: Path, cache: Path) -> None:
    """The dataset cache and the tiny backbone built once: the timed setups only load them."""
    settings = load_settings(TINY_YAML, overrides(tiny_root, cache, cache / "unused"))
    data = pipeline.build(settings.data, progress=False)
    EEGEmotionClassifier(settings.model, InputSpec.from_data(data), device="cpu")


@pytest.fixture
def online_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A W&B key and nothing that would make W&B offline on its own."""
    for name in list(os.environ):
        if name.startswith("WANDB_"):
            monkeypatch.delenv(name)
    return {"HOME": str(tmp_path / "home"), "WANDB_API_KEY": FAKE_KEY}


def refusing_port() -> int:
    """A port on 127.0.0.1 that nothing listens on: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []

    def hold() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed at teardown
                return
            held.append(conn)

    threading.Thread(target=hold, daemon=True).start()
    yield server.getsockname()[1]
    server.close()
    for conn in held:
        conn.close()


def logged_at(line: str) -> datetime:
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")


def assert_trains_offline(
    port: int, env: dict[str, str], tiny_root: Path, cache: Path, run_dir: Path
) -> None:
    """W&B at `port` cannot be reached: the run finishes into an offline W&B run; setup (data
    from the cache, the tiny model, the tracker) took at most the timeout and a margin for a
    loaded machine (W&B's default timeout is 90 s), and the process ends promptly."""
    wandb = ["train.tracker.kind=wandb", f"train.tracker.timeout_s={TIMEOUT_S}"]
    env = {**env, "WANDB_BASE_URL": f"http://127.0.0.1:{port}"}
    out = run(command(tiny_root, cache, run_dir, *SHORT, *wandb), env=env)
    exited = time.time()
    assert read_status(run_dir)["status"] == "finished"
    # Nothing of W&B's holds the process once the run is over (status.json: its last write).
    assert exited - (run_dir / "status.json").stat().st_mtime < 15

    lines = (run_dir / "train.log").read_text().splitlines()
    [line] = [x for x in lines if "W&B unreachable" in x]
    assert line in out.stderr  # the same line on the console
    setup_s = (logged_at(line) - logged_at(lines[0])).total_seconds()  # from setup's first line
    assert "process(es) on" in lines[0] and setup_s < TIMEOUT_S + 25, setup_s
    folder, sync = WARNING.search(line).groups()
    assert sync == f"wandb sync {folder}"
    run_id = (run_dir / "wandb_run_id").read_text().strip()
    offline = Path(folder)
    assert offline.parent == run_dir / "wandb" and offline.name.startswith("offline-run-")
    assert offline.name.endswith(f"-{run_id}")  # the same id: a sync resumes the same run
    history = (offline / f"run-{run_id}.wandb").read_bytes()
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    last_loss = [r for r in rows if "train/loss" in r][-1]["train/loss"]
    assert json.dumps(last_loss).encode() in history and b"test/arousal/accuracy" in history


def test_wandb_refusing_connections_falls_back_to_offline(
    tiny_root, cache, tmp_path, warm, online_env
):
    assert_trains_offline(refusing_port(), online_env, tiny_root, cache, tmp_path / "run")


def test_wandb_that_never_answers_falls_back_to_offline_within_the_timeout(
    tiny_root, cache, tmp_path, warm, online_env, silent_port
):
    assert_trains_offline(silent_port, online_env, tiny_root, cache, tmp_path / "run")


def train(args: list[str]) -> int:
    return train_cli.main(["--config", str(TINY_YAML), *args])


def test_a_tracker_failing_mid_run_is_warned_about_once_and_training_goes_on(
    tiny_root, cache, tmp_path, warm, in_process, monkeypatch, capsys
):
    """Every W&B call failing once training runs (rows, plots, the final upload): the run
    finishes and metrics.jsonl keeps every row."""
    import wandb
    from accelerate.tracking import WandBTracker

    def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionError("network is unreachable")

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")  # what training sets: undone after
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(WandBTracker, "log", broken)
    monkeypatch.setattr(WandBTracker, "finish", broken)
    run_dir = tmp_path / "run"
    try:
        assert (
            train([*overrides(tiny_root, cache, run_dir, *SHORT), "train.tracker.kind=wandb"]) == 0
        )
    finally:
        wandb.teardown()
    assert read_status(run_dir)["status"] == "finished"
    log = (run_dir / "train.log").read_text()
    assert log.count("the tracker failed to log (ConnectionError: network is unreachable)") == 1
    assert "the tracker failed to finish (ConnectionError: network is unreachable)" in log
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/loss" in r] == list(range(2, 15, 2))
    assert any("test/valence/accuracy" in r for r in rows)  # after the failing plots too
    assert (run_dir / "results.json").exists()
    assert "the tracker failed to log" in capsys.readouterr().err


def assert_failed_unexpectedly(run_dir: Path, rc: int, err: str, message: str) -> dict:
    """Exit 1, status failed with the message, the traceback in train.log, one short console
    line that points there."""
    assert rc == 1
    status = read_status(run_dir)
    assert status["status"] == "failed" and status["message"] == message
    log = (run_dir / "train.log").read_text()
    assert "Traceback (most recent call last)" in log and f"error: {message}" in log
    assert f"{message}\n" in log  # the traceback's last line
    line = f"error: {message} (unexpected: the traceback is in {run_dir / 'train.log'})"
    assert line in err.splitlines() and "Traceback" not in err
    return status


def test_an_unexpected_error_in_setup_is_recorded(
    tiny_root, cache, tmp_path, warm, in_process, monkeypatch, capsys
):
    def start(*args: object) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(tracking, "start", start)
    run_dir = tmp_path / "run"
    rc = train(overrides(tiny_root, cache, run_dir, *SHORT))
    status = assert_failed_unexpectedly(
        run_dir, rc, capsys.readouterr().err, "RuntimeError: injected"
    )
    assert status["global_step"] == 0
    assert not (run_dir / ".lock").exists()


def test_an_unexpected_error_in_the_loop_is_recorded(
    tiny_root, cache, tmp_path, warm, in_process, monkeypatch, capsys
):
    after_step = Trainer.after_optimizer_step

    def failing(self: Trainer, grad_norm: object, phase: list[str]) -> bool:
        if self.state.global_step == 3:
            raise RuntimeError("injected at step 3")
        return after_step(self, grad_norm, phase)

    monkeypatch.setattr(Trainer, "after_optimizer_step", failing)
    run_dir = tmp_path / "run"
    rc = train(overrides(tiny_root, cache, run_dir, *SHORT))
    err = capsys.readouterr().err
    status = assert_failed_unexpectedly(run_dir, rc, err, "RuntimeError: injected at step 3")
    assert status["global_step"] == 3 and status["epoch"] == 0
    assert "in failing" in (run_dir / "train.log").read_text()  # the frame that raised
    assert not (run_dir / ".lock").exists()


def test_a_data_error_is_refused_before_the_run_folder_is_made(
    tiny_root, cache, tmp_path, warm, in_process, capsys
):
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    bad = root / "s02.dat"
    with bad.open("wb") as f:  # readable, but no 'labels': found when the data is built
        pickle.dump({"data": np.zeros((1, 1, 1), np.float32)}, f)
    run_dir = tmp_path / "run"
    rc = train(overrides(root, cache, run_dir, *SHORT))
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert rc == 2
    assert len(errors) == 1 and errors[0].startswith(f"error: {bad}")
    assert "missing key 'labels'" in errors[0]
    assert not run_dir.exists()  # the corrected rerun is not bound to anything


def test_bad_settings_found_in_setup_are_recorded_and_refusals_touch_nothing(
    tiny_root, cache, tmp_path, warm, in_process, capsys
):
    run_dir = tmp_path / "run"
    big = "train.batch_size=100000"  # known once the data is read: before the folder is made
    assert train(overrides(tiny_root, cache, run_dir, *SHORT, big)) == 2
    assert f"{big} exceeds the" in capsys.readouterr().err
    assert not run_dir.exists()
    (tmp_path / "not-a-model").mkdir()  # known once the backbone loads, in the claimed folder
    big = f"model.source={tmp_path / 'not-a-model'}"
    assert train(overrides(tiny_root, cache, run_dir, *SHORT, big)) == 2
    status = read_status(run_dir)
    assert status["status"] == "failed" and "folder has no config.json" in status["message"]
    assert f"error: {status['message']}" in (run_dir / "train.log").read_text()
    assert f"error: {status['message']}" in capsys.readouterr().err.splitlines()

    # Refused before the folder is taken: other settings, or a folder in use. Nothing changes.
    before = checksums(run_dir)
    assert {"status.json", "config.yaml", "train.log"} <= before.keys()
    rc = train(overrides(tiny_root, cache, run_dir, *SHORT, big, "train.lr_head=0.01"))
    assert rc == 2 and "was trained with other settings" in capsys.readouterr().err
    assert checksums(run_dir) == before
    lock = {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": None, "since": "now"}
    (run_dir / ".lock").write_text(json.dumps(lock))  # this live process holds it
    before = checksums(run_dir)
    rc = train(overrides(tiny_root, cache, run_dir, *SHORT, big))
    assert rc == 2 and "is in use by a run on host" in capsys.readouterr().err
    assert checksums(run_dir) == before
