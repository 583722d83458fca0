"""The training loop, run as users run it (subprocesses, real launchers)."""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from eeg_emotion import checkpoint
from eeg_emotion.classifier import EEGEmotionClassifier
from eeg_emotion.config import load_settings
from eeg_emotion.data import pipeline
from eeg_emotion.inference import window_probs
from tests.conftest import ROOT, zero3_json

PY = sys.executable
ACCELERATE = [PY, "-m", "accelerate.commands.launch"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("train-cache")


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


@pytest.fixture(scope="module")
def uninterrupted(tiny_root, cache, tmp_path_factory) -> Path:
    """Reference run for the resume tests: 2 epochs, checkpoints every 3 steps."""
    run_dir = tmp_path_factory.mktemp("runs") / "reference"
    run(command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1"))
    return run_dir


def test_a_run_leaves_a_complete_folder_with_wandb_offline(tiny_root, cache, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    env = {"HOME": str(tmp_path), "WANDB_API_KEY": ""}  # no key anywhere: must go offline
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = run(
        command(tiny_root, cache, run_dir, "train.tracker.kind=wandb", "train.keep_checkpoints=1"),
        env=env,
    )
    assert "test (best model from step" in out.stdout
    assert "test (best model from step" in (run_dir / "train.log").read_text()  # as on screen
    for name in (
        "config.yaml",
        "splits.json",
        "metrics.jsonl",
        "results.json",
        "test_results.txt",
        "train.log",
        "status.json",
        "best/classifier.json",
        "plots/loss.png",
        "plots/val_accuracy.png",
        "plots/test_confusion_valence.png",
        "plots/test_confusion_arousal.png",
    ):
        assert (run_dir / name).is_file(), name
    assert len(list((run_dir / "checkpoints").iterdir())) == 1  # keep_checkpoints=1
    res = results(run_dir)
    for part in ("val", "test"):
        for target in ("valence", "arousal"):
            assert {"accuracy", "balanced_accuracy", "macro_f1", "majority_baseline"} <= set(
                res[part][target]
            )
        assert "accuracy" in res[part]["overall"]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"

    # The best checkpoint is the evaluation with the highest mean balanced accuracy.
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [
        (r["val/mean_balanced_accuracy"], r["step"])
        for r in rows
        if "val/mean_balanced_accuracy" in r
    ]
    best_value = max(v for v, _ in evals)
    assert res["best"]["step"] == next(s for v, s in evals if v == best_value)
    assert res["best"]["value"] == best_value
    assert (
        json.loads((run_dir / "best" / "val_metrics.json").read_text())["step"]
        == res["best"]["step"]
    )
    assert {
        "train/loss",
        "train/lr_head",
        "train/lr_lora",
        "train/grad_norm",
        "train/samples_per_s",
        "train/tokens_per_s",
        "train/peak_memory_mb",
    } <= {k for r in rows for k in r}

    # W&B wrote an offline run in the run folder, with the logged values and the plots.
    run_id = (run_dir / "wandb_run_id").read_text().strip()
    [wandb_file] = glob.glob(
        str(run_dir / "wandb" / f"offline-run-*-{run_id}" / f"run-{run_id}.wandb")
    )
    raw = Path(wandb_file).read_bytes()
    last_loss = [r for r in rows if "train/loss" in r][-1]["train/loss"]
    assert json.dumps(last_loss).encode() in raw
    for key in (b"val/valence/balanced_accuracy", b"test/arousal/majority_baseline"):
        assert key in raw
    media = list((Path(wandb_file).parent / "files" / "media" / "images").glob("*.png"))
    assert any("confusion" in p.name for p in media)

    # evaluate.py gives the same test numbers; predict.py gives window and trial rows.
    ev = run(
        [PY, "launch/evaluate.py", str(run_dir), "--split", "test", f"--data.root={tiny_root}"]
    )
    again = json.loads((run_dir / "eval_test.json").read_text())
    assert again["valence"] == res["test"]["valence"] and again["arousal"] == res["test"]["arousal"]
    assert "valence" in ev.stdout
    out_csv = tmp_path / "pred.csv"
    run(
        [
            PY,
            "launch/predict.py",
            str(run_dir),
            "--input",
            str(tiny_root / "s02.dat"),
            "--out",
            str(out_csv),
        ]
    )
    with out_csv.open() as f:
        lines = list(csv.DictReader(f))
    windows = [r for r in lines if r["level"] == "window"]
    trials = [r for r in lines if r["level"] == "trial"]
    assert len(windows) == 12 * 5 and len(trials) == 12
    t0 = [r for r in windows if r["trial"] == "0"]
    mean_high = np.mean([float(r["valence_p_high"]) for r in t0])
    assert float(trials[0]["valence_p_high"]) == pytest.approx(mean_high, abs=1e-3)

    # predict.py tokenizes a file exactly as the dataset did: same window probabilities.
    model = EEGEmotionClassifier.from_pretrained(run_dir / "best")
    settings = load_settings(run_dir / "config.yaml")
    data = pipeline.build(settings.data, progress=False)
    rows = np.flatnonzero(np.asarray(data.rows)[:, 0] == 2)
    expected = window_probs(model, data.tokens[rows], data.lengths[rows], data.pad_id)
    got = np.array([[float(r["valence_p_high"]), float(r["arousal_p_high"])] for r in windows])
    np.testing.assert_allclose(got, expected[:, :, 1], atol=1e-3)


def test_gradient_accumulation_matches_a_bigger_batch(tiny_root, cache, tmp_path):
    big, small = tmp_path / "b8", tmp_path / "b4x2"
    # Dropout off: masks drawn for one batch of 8 cannot equal those for two batches of 4.
    off = "model.lora.dropout=0"
    run(command(tiny_root, cache, big, "train.batch_size=8", "train.epochs=1", off))
    run(
        command(
            tiny_root,
            cache,
            small,
            "train.batch_size=4",
            "train.grad_accum=2",
            "train.epochs=1",
            off,
        )
    )
    assert_same_model(big, small, atol=1e-5)
    assert results(big)["test"]["valence"] == results(small)["test"]["valence"]


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


def test_two_cpu_processes_match_one(tiny_root, cache, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    off = "model.lora.dropout=0"  # each rank draws its own masks: 1 process cannot match them
    run(command(tiny_root, cache, one, off))
    out = run(command(tiny_root, cache, two, off, launcher=ddp(29613)))
    assert "test (best model" in out.stdout
    log = (two / "train.log").read_text()
    assert "2 process(es) on cpu" in log and "distributed=MULTI_CPU" in log
    assert_same_model(one, two, atol=1e-4)
    r1, r2 = results(one), results(two)
    for target in ("valence", "arousal"):
        assert r1["test"][target]["support"] == r2["test"][target]["support"]  # no duplicates
        assert r1["test"][target]["confusion_matrix"] == r2["test"][target]["confusion_matrix"]


def test_ddp_trains_phases_that_train_less_or_the_whole_backbone(tiny_root, cache, tmp_path):
    # The global micro-batch must split over the processes: refused before any work.
    odd = tmp_path / "odd"
    out = subprocess.run(
        command(tiny_root, cache, odd, "train.batch_size=7", launcher=ddp(29619)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode != 0 and "must split evenly over the 2 processes" in out.stderr
    assert not (odd / "config.yaml").exists()
    # A single phase that trains less than the constructor's default (head only): DDP must not
    # wait for gradients of parameters that never get one.
    head_only = tmp_path / "head"
    run(command(tiny_root, cache, head_only, "model.phases=[{train: [head]}]", launcher=ddp(29617)))
    assert json.loads((head_only / "status.json").read_text())["status"] == "finished"
    # A full-backbone phase after a head phase: the backbone's gradients must be all-reduced,
    # so 2 processes train the same backbone as 1.
    phases = "model.phases=[{train: [head, embedding], epochs: 1}, {train: [backbone, head]}]"
    one, two = tmp_path / "one", tmp_path / "two"
    run(command(tiny_root, cache, one, phases, "model.lora.dropout=0"))
    run(command(tiny_root, cache, two, phases, "model.lora.dropout=0", launcher=ddp(29618)))
    a = load_file(str(one / "best" / "backbone.safetensors"))
    b = load_file(str(two / "best" / "backbone.safetensors"))
    moved = 0
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-4, rtol=0, err_msg=key)
    assert_same_model(one, two, atol=1e-4)
    initial = load_file(str(one / "checkpoints" / "step-15" / "model_0" / "head.safetensors"))
    moved = sum(not np.array_equal(v, head_weights(one)[k]) for k, v in initial.items())
    assert moved  # training went on after the first epoch


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


def test_deepspeed_zero2_really_runs_stops_and_resumes_to_the_same_model(
    tiny_root, cache, tmp_path
):
    zero2 = ROOT / "ds_configs" / "zero2.json"
    single = ["model.phases=[{train: [head, embedding, lora]}]", "train.checkpoint_every=3"]
    full, stopped = tmp_path / "full", tmp_path / "stopped"
    run(command(tiny_root, cache, full, *single, launcher=deepspeed(zero2, 29614)))
    log = (full / "train.log").read_text()
    # DeepSpeed itself ran (not the cpu=True fallback), in bf16: the head follows its dtype.
    assert "distributed=DEEPSPEED" in log and "mixed precision=bf16" in log, log
    assert results(full)["test"]["valence"]["support"] == 30

    cmd = command(tiny_root, cache, stopped, *single, launcher=deepspeed(zero2, 29615))
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _stop_when(stopped, 5, "file", proc)
    _, err = proc.communicate(timeout=600)
    assert json.loads((stopped / "status.json").read_text())["status"] == "stopped", err[-3000:]
    out = run(cmd)
    assert "resumed from" in (stopped / "train.log").read_text(), out.stderr[-2000:]
    assert_same_model(full, stopped)
    assert results(full)["test"] == results(stopped)["test"]

    # The engine saved the trainable parameters only, and the classifier's own files beside.
    ckpt = sorted((stopped / "checkpoints").iterdir())[-1]
    [states] = ckpt.rglob("*model_states.pt")
    module = torch.load(states, map_location="cpu", weights_only=False)["module"]
    assert module and all("lora_" in k or k.startswith(("head.", "embedding.")) for k in module)
    trained = sum(p.stat().st_size for p in (ckpt / "model_0").rglob("*.safetensors"))
    assert states.stat().st_size < 1.5 * trained  # no frozen base weights


def test_deepspeed_zero3_is_refused_before_any_work(tiny_root, cache, tmp_path):
    run_dir = tmp_path / "zero3"
    cmd = command(
        tiny_root,
        cache,
        run_dir,
        "model.phases=[{train: [head, embedding, lora]}]",
        launcher=deepspeed(zero3_json(tmp_path), 29616),
    )
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode != 0 and "ZeRO-3 is not supported" in out.stderr, out.stderr[-3000:]
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "config.yaml").exists()


def _stop_when(run_dir: Path, step: int, how: str, proc: subprocess.Popen) -> None:
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


# SIGTERM and Ctrl-C take the same path as SIGUSR1 (see the launcher test below).
@pytest.mark.parametrize("how", ["file", "sigusr1", "kill9"])
def test_stop_then_resume_equals_uninterrupted(tiny_root, cache, tmp_path, uninterrupted, how):
    """With the default LoRA dropout (0.1): resume is exact, not just close."""
    run_dir = tmp_path / "stopped"
    cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _stop_when(run_dir, 5, how, proc)
    _, err = proc.communicate(timeout=600)
    if how == "kill9":  # no checkpoint of its own: the newest periodic one is resumed
        assert proc.returncode == -signal.SIGKILL
        run(cmd)
        assert "resumed from" in (run_dir / "train.log").read_text()
        assert results(run_dir)["test"] == results(uninterrupted)["test"]
        assert_same_model(run_dir, uninterrupted)
        steps = [
            r["step"]
            for r in map(json.loads, (run_dir / "metrics.jsonl").open())
            if "train/loss" in r
        ]
        assert steps == list(range(1, 31)), "a completed step was lost or repeated"
        return
    assert proc.returncode == 3, err[-3000:]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "stopped"
    stopped_at = json.loads((run_dir / "status.json").read_text())["global_step"]
    saved = json.loads(
        (run_dir / "checkpoints" / f"step-{stopped_at}" / "trainer_state.json").read_text()
    )
    assert 5 <= stopped_at < 15 and saved["run"]["epoch"] == 0  # 15 steps per epoch: mid-epoch
    assert saved["run"]["batches_done"] == stopped_at

    run(cmd)  # the same command again resumes
    assert (
        f"resumed from {run_dir / 'checkpoints' / f'step-{stopped_at}'}"
        in (run_dir / "train.log").read_text()
    )
    assert results(run_dir)["test"] == results(uninterrupted)["test"]
    assert results(run_dir)["val"] == results(uninterrupted)["val"]
    assert_same_model(run_dir, uninterrupted)
    steps = [
        json.loads(line)["step"]
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if "train/loss" in line
    ]
    assert steps == list(range(1, 31)), "a completed step was lost or repeated"


@pytest.fixture(scope="module")
def stopped_twice_saved(tiny_root, cache, tmp_path_factory) -> Path:
    """A run stopped mid-epoch-0 with two checkpoints (periodic and the stop's own)."""
    run_dir = tmp_path_factory.mktemp("runs") / "stopped"
    cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _stop_when(run_dir, 5, "file", proc)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 3, err[-3000:]
    assert [p.name for p in sorted((run_dir / "checkpoints").iterdir())] == ["step-10", "step-9"]
    return run_dir


@pytest.mark.parametrize(
    "damage",
    ["optimizer.bin", "trainer_state.json", "truncate"],  # missing, missing state, cut short
)
def test_a_corrupt_newest_checkpoint_falls_back_to_the_previous_one(
    tiny_root, cache, tmp_path, uninterrupted, stopped_twice_saved, damage
):
    run_dir = tmp_path / "run"
    shutil.copytree(stopped_twice_saved, run_dir)
    newest = run_dir / "checkpoints" / "step-10"
    if damage == "truncate":
        target = newest / "model_0" / "head.safetensors"
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "model_0":
        shutil.rmtree(newest / damage)
    else:
        (newest / damage).unlink()
    cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
    run(cmd)
    log = (run_dir / "train.log").read_text()
    assert "skipping checkpoint step-10:" in log
    assert f"resumed from {run_dir / 'checkpoints' / 'step-9'}" in log
    assert results(run_dir)["test"] == results(uninterrupted)["test"]
    assert_same_model(run_dir, uninterrupted)


def test_crash_mid_save_resumes_from_the_previous_checkpoint(
    tiny_root, cache, tmp_path, uninterrupted
):
    run_dir = tmp_path / "crashed"
    cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
    crash = [PY, str(ROOT / "tests" / "helpers" / "crash_in_checkpoint.py"), *cmd[2:]]
    crashed = subprocess.run(crash, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert crashed.returncode == 137
    assert (run_dir / "checkpoints" / ".tmp-step-6").is_dir()  # the half-published checkpoint
    assert not (run_dir / "checkpoints" / "step-6").exists()
    run(cmd)
    log = (run_dir / "train.log").read_text()
    assert "taking over the run folder's lock: process" in log  # the killed run left its lock
    assert "removed .tmp-step-6, left half-written by an earlier job" in log
    assert "resumed from" in log
    assert "step-3" in (run_dir / "train.log").read_text().split("resumed from")[-1].splitlines()[0]
    assert results(run_dir)["test"] == results(uninterrupted)["test"]
    assert_same_model(run_dir, uninterrupted)


def test_non_finite_loss_stops_without_saving_anything_bad(tiny_root, cache, tmp_path):
    run_dir = tmp_path / "nan"
    out = run(
        command(
            tiny_root,
            cache,
            run_dir,
            "train.lr_head=1e38",
            "train.checkpoint_every=1",
            "train.max_grad_norm=null",
        ),
        expect=1,
    )
    assert "non-finite loss" in out.stderr and "last good checkpoint" in out.stderr
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed"
    for ckpt in (run_dir / "checkpoints").glob("step-*"):
        for value in load_file(str(ckpt / "model_0" / "head.safetensors")).values():
            assert np.isfinite(value).all(), ckpt


def test_bad_settings_exit_2_before_any_work(tiny_root, cache, tmp_path):
    out = run(command(tiny_root, cache, tmp_path / "bad", "train.epoks=2"), expect=2)
    assert "unknown key 'train.epoks' (did you mean 'train.epochs'?)" in out.stderr
    assert not (tmp_path / "bad").exists()
    out = run(command(tiny_root, cache, tmp_path / "bad2", "train.batch_size=100000"), expect=2)
    assert "exceeds the" in out.stderr


def test_resume_never_starts_fresh_and_auto_continues(tiny_root, cache, tmp_path):
    run_dir = tmp_path / "fresh"
    run(command(tiny_root, cache, run_dir, "train.epochs=1"))
    first = results(run_dir)
    run(command(tiny_root, cache, run_dir, "train.epochs=1", "train.resume=never"))
    log = (run_dir / "train.log").read_text()
    assert "resumed from" not in log and log.count("1 process(es) on cpu") == 2
    train_steps = [
        json.loads(line)["step"]
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if "train/loss" in line
    ]
    assert train_steps.count(2) == 2  # both runs trained from the start
    run(command(tiny_root, cache, run_dir, "train.epochs=1"))  # resume=auto on a finished run
    assert "resumed from" in (run_dir / "train.log").read_text()
    assert results(run_dir)["test"] == first["test"]


def test_tensorboard_tracker_and_early_stopping(tiny_root, cache, tmp_path):
    run_dir = tmp_path / "tb"
    early = [
        "train.tracker.kind=tensorboard",
        "train.eval_every=1",
        "train.patience=2",
        "train.epochs=4",
    ]
    run(command(tiny_root, cache, run_dir, *early))
    events = list(run_dir.rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    log = (run_dir / "train.log").read_text()
    assert "early stopping: no improvement in 2 evaluations" in log
    res = results(run_dir)
    assert json.loads((run_dir / "status.json").read_text())["global_step"] < 60  # 4 epochs = 60
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r["val/mean_balanced_accuracy"] for r in rows if "val/mean_balanced_accuracy" in r]
    assert evals[-2:] and max(evals[-2:]) <= res["best"]["value"]
    # Relaunched (as a requeued job would be): it does not train on after early stopping.
    stopped_at = json.loads((run_dir / "status.json").read_text())["global_step"]
    run(command(tiny_root, cache, run_dir, *early))
    assert "resumed from" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / "status.json").read_text())["global_step"] == stopped_at
    assert results(run_dir)["test"] == res["test"]


def test_the_reference_config_trains_on_cpu_with_only_the_backbone_overridden(tiny_root, tmp_path):
    """configs/llama31_8b_qlora.yaml as shipped (1024 band-power tokens, two phases, LoRA
    dropout 0.1, bf16 autocast, W&B offline), with the embedded model's first 2 layers in fp32."""
    run_dir = tmp_path / "reference"
    out = run(
        [
            PY,
            str(ROOT / "launch" / "train.py"),
            "--config",
            str(ROOT / "configs" / "llama31_8b_qlora.yaml"),
            "model.source=embedded",
            "model.num_layers=2",
            "model.precision=fp32",
            f"data.root={tiny_root}",
            f"data.cache_dir={tmp_path / 'cache'}",
            f"output_dir={run_dir}",
        ],
        env={"HOME": str(tmp_path), "WANDB_API_KEY": "", "WANDB_MODE": "offline"},
    )
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [r["step"] for r in rows if "val/loss" in r]
    assert len(evals) >= 4 and evals == sorted(set(evals))  # 5 epochs, or patience 3 ran out
    assert "test (best model from step" in out.stdout
    assert (run_dir / "best" / "adapter" / "adapter_model.safetensors").exists()
    saved = load_settings(run_dir / "config.yaml")
    assert saved.model.source == "embedded" and saved.model.lora.dropout == 0.1
    assert saved.data.tokenizer.sub_window == "1s" and saved.train.grad_accum == 2
    # None of the libraries' start-up chatter reaches the user.
    for noise in ("gemm_4bit_forward", "is_gradient_checkpointing", "is deprecated"):
        assert noise not in out.stderr, noise


def _status(run_dir: Path) -> str:
    try:
        return json.loads((run_dir / "status.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return "none"


def test_ctrl_c_and_a_killed_launcher_stop_with_a_checkpoint(tiny_root, cache, tmp_path):
    # Ctrl-C: a checkpoint, one line, status stopped, exit 3 - no traceback.
    run_dir = tmp_path / "ctrl-c"
    cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _stop_when(run_dir, 5, "sigint", proc)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 3 and "Traceback" not in err, err[-3000:]
    assert "stopping at the next checkpoint" in err and _status(run_dir) == "stopped"

    # SIGTERM to `accelerate launch`: the launcher goes at once; its worker must not train on,
    # detached - it gets SIGTERM as its parent dies, checkpoints and stops.
    run_dir = tmp_path / "launcher"
    launcher = accelerate(29621, "--num_processes", "1")
    cmd = command(
        tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1",
        "train.epochs=6", launcher=launcher,
    )  # fmt: skip
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _stop_when(run_dir, 5, "sigterm", proc)
    proc.communicate(timeout=600)
    deadline = time.time() + 120
    while _status(run_dir) == "running" and time.time() < deadline:
        time.sleep(0.2)
    assert _status(run_dir) == "stopped"
    time.sleep(2)
    rows = (run_dir / "metrics.jsonl").read_text()
    time.sleep(3)
    assert (run_dir / "metrics.jsonl").read_text() == rows  # nobody is writing any more
    assert not (run_dir / ".lock").exists()


def test_a_full_disk_fails_cleanly_and_the_run_resumes_from_its_last_checkpoint(
    tiny_root, cache, tmp_path, uninterrupted
):
    small = tmp_path / "small"
    small.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=1600k", "tmpfs", str(small)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        run_dir = small / "run"
        cmd = command(tiny_root, cache, run_dir, "train.checkpoint_every=3", "train.log_every=1")
        out = run(cmd, expect=2)
        assert "No space left on device" in out.stderr, out.stderr[-3000:]
        assert "the checkpoints saved before are intact" in out.stderr
        assert "Traceback" not in out.stderr
        status = json.loads((run_dir / "status.json").read_text())
        assert status["status"] == "failed" and "No space left" in status["message"]
        assert not list((run_dir / "checkpoints").glob(".tmp-*"))  # its space given back
        moved = tmp_path / "moved"  # e.g. the user moves the run to a bigger disk
        shutil.copytree(run_dir, moved)
    finally:
        subprocess.run(["umount", str(small)], check=True)
    newest, skipped = checkpoint.latest_verified(moved)
    assert newest is not None and not skipped
    run(command(tiny_root, cache, moved, "train.checkpoint_every=3", "train.log_every=1"))
    assert f"resumed from {newest}" in (moved / "train.log").read_text()
    assert results(moved)["test"] == results(uninterrupted)["test"]
    assert_same_model(moved, uninterrupted)
