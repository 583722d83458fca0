"""A run folder belongs to one experiment and one running job (launch/train.py as users run it)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eeg_emotion.data.synthetic import SyntheticSpec, synthesize
from eeg_emotion.errors import ConfigError
from eeg_emotion.training.run_folder import (
    LOCK_NAME,
    LOCK_STALE_S,
    RunLock,
    check_data,
    data_fingerprint,
    save_data_fingerprint,
)
from tests.helpers.paths import ROOT
from tests.helpers.training import command, run

PY = sys.executable
pytestmark = pytest.mark.slow


def train(root: Path, cache: Path, run: Path, *overrides: str) -> list[str]:
    return command(root, cache, run, "train.epochs=1", *overrides)


def snapshot(folder: Path) -> dict[str, tuple[float, str]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(tiny_root, tmp_path_factory) -> tuple[Path, Path]:
    """A finished 1-epoch run and its cache."""
    base = tmp_path_factory.mktemp("run-folder")
    run(train(tiny_root, base / "cache", base / "run"))
    return base / "run", base / "cache"


def test_a_relaunch_with_other_settings_is_refused_and_touches_nothing(tiny_root, finished):
    run_dir, cache = finished
    before = snapshot(run_dir)
    # The leak this prevents: the old model scored on a new split of trials it trained on.
    out = run(
        train(tiny_root, cache, run_dir, "data.labels.threshold=7", "data.split.seed=5"),
        expect=2,
    )
    assert "data.labels.threshold (5.0 -> 7.0)" in out.stderr
    assert "data.split.seed (0 -> 5)" in out.stderr
    out = run(train(tiny_root, cache, run_dir, "model.lora.r=8"), expect=2)
    assert "model.lora.r (16 -> 8)" in out.stderr
    assert snapshot(run_dir) == before  # config.yaml, results, logs: all untouched


def test_harmless_keys_may_change_more_epochs_extend_the_run(tiny_root, finished, tmp_path):
    run_dir, cache = finished
    extended = tmp_path / "extended"
    shutil.copytree(run_dir, extended)
    out = run(train(tiny_root, cache, extended, "train.epochs=2", "train.log_every=5"))
    assert "resumed from" in (extended / "train.log").read_text(), out.stderr
    assert json.loads((extended / "status.json").read_text())["epoch"] == 2


def test_changed_data_files_are_refused(tmp_path):
    data = tmp_path / "deap"
    synthesize(data, SyntheticSpec(subjects=3, trials=12, samples=1664, seed=0))
    first = tmp_path / "run"
    run(train(data, tmp_path / "cache", first))
    synthesize(
        data, SyntheticSpec(subjects=3, trials=12, samples=1664, seed=1), overwrite=True
    )  # new content
    before = snapshot(first)
    out = run(train(data, tmp_path / "cache", first), expect=2)
    assert "trained on other data: s01.dat" in out.stderr
    assert snapshot(first) == before


def test_same_named_files_in_two_folders_are_fingerprinted_apart(tmp_path):
    # SEED-IV style: one file name in two session folders; only the second one changes.
    root = tmp_path / "eeg_raw_data"
    files = [root / s / "1_20131001.mat" for s in ("1", "2")]
    for f in files:
        f.parent.mkdir(parents=True)
        f.write_bytes(b"x" * 10)
    saved = data_fingerprint(files)
    assert list(saved) == ["1/1_20131001.mat", "2/1_20131001.mat"]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    save_data_fingerprint(run_dir, saved)
    files[1].write_bytes(b"y" * 20)
    with pytest.raises(ConfigError, match=r"other data: 2/1_20131001\.mat changed"):
        check_data(run_dir, data_fingerprint(files))
    # DEAP's flat folder keeps its keys (file names), as older run folders recorded them.
    flat = [tmp_path / f"s0{i}.dat" for i in (1, 2)]
    for f in flat:
        f.write_bytes(b"z")
    assert list(data_fingerprint(flat)) == ["s01.dat", "s02.dat"]
    assert list(data_fingerprint(flat[:1])) == ["s01.dat"]  # one file: its name


def test_a_folder_in_use_is_refused_and_a_dead_owners_lock_taken_over(tiny_root, tmp_path):
    cache, run_dir = tmp_path / "cache", tmp_path / "run"
    # 450 steps: the first run cannot end while the second launcher starts up; stopped below.
    first = subprocess.Popen(
        train(tiny_root, cache, run_dir, "train.epochs=30"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock, metrics = run_dir / ".lock", run_dir / "metrics.jsonl"
    deadline = time.time() + 120
    while not (metrics.exists() and metrics.read_text().strip()) and time.time() < deadline:
        time.sleep(0.05)  # training: the lock is held
    assert first.poll() is None and lock.exists()
    second = run(train(tiny_root, cache, run_dir, "train.epochs=30"), expect=2)
    assert f"in use by a run on host {socket.gethostname()}, PID {first.pid}" in second.stderr
    (run_dir / "STOP").write_text("")
    _, err = first.communicate(timeout=600)
    assert first.returncode == 3, err[-3000:]  # stopped on request, after the refusal
    assert not lock.exists()  # released at the end
    steps = [json.loads(line)["step"] for line in metrics.open()]
    assert steps == sorted(steps)  # one writer

    # A lock left by a process that died (kill -9 leaves one) is taken over.
    dead = subprocess.Popen([PY, "-c", "pass"])
    dead.wait()
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid}))
    run(train(tiny_root, cache, run_dir, "train.epochs=2"))  # 2 epochs: little or nothing left
    assert "taking over the run folder's lock: process" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"


def held_lock(run_dir: Path, holder: dict, age_s: float = 0.0) -> Path:
    """RUN/.lock as `holder` wrote it, last refreshed `age_s` seconds ago."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK_NAME
    lock.write_text(json.dumps(holder))
    then = time.time() - age_s
    os.utime(lock, (then, then))
    return lock


def test_a_lock_not_refreshed_for_too_long_is_taken_over(tmp_path):
    # A holder that looks alive (this very process), so only the lock's age can free it.
    me = {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": None}
    held_lock(tmp_path / "fresh", me, age_s=LOCK_STALE_S - 60)
    with pytest.raises(ConfigError, match="is in use by a run on host"):
        RunLock(tmp_path / "fresh").acquire()

    lock_path = held_lock(tmp_path / "old", me, age_s=LOCK_STALE_S + 60)
    lock = RunLock(tmp_path / "old")
    lock.acquire()
    assert lock.took_over == f"not refreshed for {(LOCK_STALE_S + 60) / 60:.0f} minutes"
    assert lock.held and time.time() - lock_path.stat().st_mtime < 60  # now ours, fresh
    lock.release()
    assert not lock_path.exists()


def test_a_requeued_slurm_job_takes_over_its_own_lock(tmp_path, monkeypatch):
    # Held, freshly, on another node (its process cannot be checked from here) by job 4242.
    other = {"host": "another-node", "pid": 1, "slurm_job": "4242"}
    monkeypatch.setenv("SLURM_JOB_ID", "4243")  # another job: refused
    held_lock(tmp_path / "run", other)
    with pytest.raises(ConfigError, match="is in use by a run on host another-node"):
        RunLock(tmp_path / "run").acquire()
    monkeypatch.setenv("SLURM_JOB_ID", "4242")  # the same job, requeued: its own lock
    lock = RunLock(tmp_path / "run")
    lock.acquire()
    assert lock.took_over == "left by an earlier run of SLURM job 4242"
    assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["slurm_job"] == "4242"
    assert json.loads((tmp_path / "run" / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()


def test_output_dir_that_is_a_file_is_a_clear_error(tiny_root, tmp_path):
    target = tmp_path / "notadir"
    target.write_text("keep me")
    out = run(train(tiny_root, tmp_path / "cache", target), expect=2)
    assert f"output_dir={target} is a file" in out.stderr
    assert target.read_text() == "keep me"


def test_predict_never_destroys_or_half_writes_its_output(tiny_root, finished, tmp_path):
    run_dir, _ = finished
    out_csv = tmp_path / "pred.csv"

    def predict(inputs: Path, out: Path, expect: int = 0) -> subprocess.CompletedProcess:
        cmd = [PY, "launch/predict.py", str(run_dir), "--input", str(inputs), "--out", str(out)]
        return run(cmd, expect=expect)

    predict(tiny_root / "s01.dat", out_csv)
    good = out_csv.read_bytes()
    assert good.count(b"\n") == 1 + 12 * 5 + 12  # header, windows, trials
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(tiny_root / "s01.dat", mixed / "s01.dat")
    (mixed / "s02.dat").write_bytes(b"not a pickle at all")
    err = predict(mixed, out_csv, expect=2).stderr
    assert "s02.dat" in err and out_csv.read_bytes() == good  # the earlier file is intact
    assert not list(tmp_path.glob(".pred.csv.*"))  # no temporary left behind
    (mixed / "s02.dat").unlink()
    (mixed / "s02.dat").mkdir()  # a folder with a DEAP file's name
    assert "is a folder, not a DEAP file" in predict(mixed, out_csv, expect=2).stderr
    assert "--out is a folder" in predict(tiny_root / "s01.dat", tmp_path, expect=2).stderr
    missing = tmp_path / "nowhere" / "p.csv"
    assert "does not exist" in predict(tiny_root / "s01.dat", missing, expect=2).stderr
    assert out_csv.read_bytes() == good


def test_a_corrupt_best_model_is_a_clear_error_for_evaluate_and_predict(
    tiny_root, finished, tmp_path
):
    run_dir, _ = finished
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    head = broken / "best" / "head.safetensors"
    head.write_bytes(head.read_bytes()[:64])
    out = run([PY, "launch/evaluate.py", str(broken), f"--data.root={tiny_root}"], expect=2)
    assert f"{head}: cannot read it" in out.stderr and "Traceback" not in out.stderr
    out_csv = tmp_path / "pred.csv"
    out_csv.write_text("earlier predictions\n")
    cmd = [PY, "launch/predict.py", str(broken), "--input", str(tiny_root), "--out", str(out_csv)]
    out = run(cmd, expect=2)
    assert f"{head}: cannot read it" in out.stderr
    assert out_csv.read_text() == "earlier predictions\n"
    (broken / "best" / "adapter" / "adapter_model.safetensors").unlink()
    out = run([PY, "launch/evaluate.py", str(broken), f"--data.root={tiny_root}"], expect=2)
    assert "adapter_model.safetensors: missing" in out.stderr
