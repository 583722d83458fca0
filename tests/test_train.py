"""The training loop, run as users run it (subprocesses, real launchers)."""

from __future__ import annotations

import csv
import glob
import json
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from eeg_emotion.config import load_settings
from eeg_emotion.data import pipeline
from eeg_emotion.evaluation.inference import window_probs
from eeg_emotion.model.backbone import load_backbone
from eeg_emotion.model.classifier import EEGEmotionClassifier
from eeg_emotion.training import checkpoint
from tests.helpers.paths import ROOT, zero3_json
from tests.helpers.training import (
    ACCELERATE,
    PY,
    RUN_FILES,
    assert_same_model,
    command,
    ddp,
    deepspeed,
    results,
    run,
)

pytestmark = pytest.mark.slow


def predict_rows(run_dir: Path, recording: Path, out_csv: Path) -> list[dict[str, str]]:
    """launch/predict.py on one file: its CSV rows."""
    run([PY, "launch/predict.py", str(run_dir), "--input", str(recording), "--out", str(out_csv)])
    with out_csv.open() as f:
        return list(csv.DictReader(f))


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
        *RUN_FILES,
        "train.log",
        "status.json",
        "plots/val_accuracy.png",
        "plots/test_windows_confusion_valence.png",
        "plots/test_trials_confusion_arousal.png",
        "plots/per_subject.png",
        "best/preprocessor.json",
        "best/preprocessor.npz",
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

    assert_wandb_offline_run(run_dir, rows)
    assert_evaluate_and_predict_agree(run_dir, res, tiny_root, tmp_path)


def assert_wandb_offline_run(run_dir: Path, rows: list[dict]) -> None:
    """W&B wrote an offline run in the run folder, with the logged values and the plots."""
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


def assert_evaluate_and_predict_agree(
    run_dir: Path, res: dict, tiny_root: Path, tmp_path: Path
) -> None:
    """evaluate.py gives the same test numbers; predict.py gives window and trial rows."""
    ev = run(
        [PY, "launch/evaluate.py", str(run_dir), "--split", "test", f"--data.root={tiny_root}"]
    )
    again = json.loads((run_dir / "eval_test.json").read_text())
    assert again["valence"] == res["test"]["valence"] and again["arousal"] == res["test"]["arousal"]
    assert "valence" in ev.stdout
    lines = predict_rows(run_dir, tiny_root / "s02.dat", tmp_path / "pred.csv")
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


def test_ddp_refuses_an_odd_batch_and_trains_a_head_only_phase(tiny_root, cache, tmp_path):
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
    # wait for gradients of parameters that never get one, and nothing but the head may move.
    head_only = tmp_path / "head"
    run(command(tiny_root, cache, head_only, "model.phases=[{train: [head]}]", launcher=ddp(29617)))
    assert json.loads((head_only / "status.json").read_text())["status"] == "finished"
    assert_only_the_head_trained(head_only)


def test_two_cpu_processes_train_the_patch_model_and_whole_backbone_as_one(
    tiny_root, cache, tmp_path
):
    """The patch input (electrode-keyed embedding), a head phase, then a full-backbone phase,
    launched as docs/training.md shows with the shipped data-parallel config file: the
    backbone's, adapter's and embedding's gradients must be all-reduced, so 2 processes train
    the same model as 1, and the test split is scored once, without duplicates."""
    # The backbone's learning rate is raised far enough for it to move well beyond the
    # tolerance (at the default 2e-5, 15 steps move no weight more than about 3e-4).
    phases = "model.phases=[{train: [head, embedding], epochs: 1}, {train: [backbone, lora, head]}]"
    patch = ["data.tokenizer.kind=patch", "data.tokenizer.patch=0.5s"]
    # Each rank draws its own dropout masks: 1 process cannot match them.
    same = [*patch, phases, "model.lora.dropout=0", "train.lr_backbone=3e-3"]
    one, two = tmp_path / "one", tmp_path / "two"
    run(command(tiny_root, cache, one, *same))
    config = ROOT / "ds_configs" / "accelerate_ddp.yaml"
    launcher = [*ACCELERATE, "--config_file", str(config), "--main_process_port", "29613"]
    out = run(command(tiny_root, cache, two, *same, launcher=launcher))
    assert "test (best model" in out.stdout
    log = (two / "train.log").read_text()
    assert "2 process(es) on cpu" in log and "distributed=MULTI_CPU" in log
    initial = initial_backbone(one)
    after_head_phase = saved_part(one, "step-15", "backbone")
    assert after_head_phase.keys() == initial.keys()
    for key, value in initial.items():  # the head phase leaves the backbone alone
        np.testing.assert_array_equal(after_head_phase[key], value, err_msg=key)
    a, b = saved_part(one, "step-30", "backbone"), saved_part(two, "step-30", "backbone")
    moved = max(float(np.abs(a[k] - initial[k]).max()) for k in a)
    assert moved > 100 * BACKBONE_ATOL, moved
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=BACKBONE_ATOL, rtol=0, err_msg=key)
    for part in ("head", "adapter"):
        wa, wb = saved_part(one, "step-30", part), saved_part(two, "step-30", part)
        for key in wa:
            np.testing.assert_allclose(wa[key], wb[key], atol=1e-5, rtol=0, err_msg=key)
    adapter = saved_part(one, "step-30", "adapter")  # LoRA trained in the second phase
    assert any("lora_B" in k and v.any() for k, v in adapter.items())
    head = saved_part(one, "step-30", "head")
    assert any(k.startswith("embedding.") for k in head)  # the patch encoder, all-reduced too
    assert_same_model(one, two, atol=1e-4)
    first = saved_part(one, "step-15", "head")
    assert any(not np.array_equal(v, head[k]) for k, v in first.items())  # trained on in epoch 2
    r1, r2 = results(one), results(two)
    for target in ("valence", "arousal"):
        assert r1["test"][target]["support"] == r2["test"][target]["support"]  # no duplicates
        assert r1["test"][target]["confusion_matrix"] == r2["test"][target]["confusion_matrix"]


BACKBONE_ATOL = 5e-5  # 1 and 2 processes: the same sums in another order


def saved_part(run_dir: Path, step: str, part: str) -> dict[str, np.ndarray]:
    """The head (with the EEG embedding), adapter or backbone saved in a checkpoint."""
    folder = run_dir / "checkpoints" / step / "model_0"
    name = {
        "head": "head.safetensors",
        "adapter": "adapter/adapter_model.safetensors",
        "backbone": "backbone.safetensors",
    }[part]
    return load_file(str(folder / name))


def initial_backbone(run_dir: Path) -> dict[str, np.ndarray]:
    """The run's backbone as loaded before training, under the names the classifier saves."""
    model = load_backbone(load_settings(run_dir / "config.yaml").model)
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    saved = saved_part(run_dir, "step-15", "backbone")
    renamed = {k: k.removeprefix("base_model.model.").replace(".base_layer", "") for k in saved}
    assert set(renamed.values()) == set(weights)
    return {k: weights[raw] for k, raw in renamed.items()}


def assert_only_the_head_trained(run_dir: Path) -> None:
    """A head-only run: the head moved between its two epochs; the EEG embedding, the adapter
    (lora_B still zero) and the backbone (the run's own test predictions are those of the
    saved head on the untouched backbone) did not."""
    first, last = (saved_part(run_dir, s, "head") for s in ("step-15", "step-30"))
    assert any(not np.array_equal(first[k], last[k]) for k in first if k.startswith("head."))
    embedding = [k for k in first if k.startswith("embedding.")]
    assert embedding and all(np.array_equal(first[k], last[k]) for k in embedding)
    adapters = [saved_part(run_dir, s, "adapter") for s in ("step-15", "step-30")]
    adapters.append(load_file(str(run_dir / "best" / "adapter" / "adapter_model.safetensors")))
    for key, value in adapters[0].items():
        assert all(np.array_equal(value, other[key]) for other in adapters[1:]), key
        assert "lora_B" not in key or not value.any(), key
    meta = json.loads((run_dir / "best" / "classifier.json").read_text())
    assert not meta["trained_backbone"] and not (run_dir / "best" / "backbone.safetensors").exists()
    model = EEGEmotionClassifier.from_pretrained(run_dir / "best")
    data = pipeline.build(load_settings(run_dir / "config.yaml").data, progress=False)
    rows = data.indices("test")
    fresh = window_probs(model, data.tokens[rows], data.lengths[rows], data.pad_id)
    saved = np.load(run_dir / "predictions_test.npz")
    np.testing.assert_array_equal(saved["rows"], np.asarray(data.rows)[rows])
    np.testing.assert_allclose(saved["probs"], fresh, atol=1e-5)


# DeepSpeed ZeRO-2 training, stopped and resumed to the same model, the engine saving the
# trainable parameters only: tests/test_slurm_multinode.py (two nodes, preempted by SLURM).


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
    # Refused from the launcher's environment, before the worker started DeepSpeed (whose
    # communication kernel it would have loaded, saying so).
    assert "deepspeed_shm_comm" not in out.stdout + out.stderr
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "config.yaml").exists()


def test_non_finite_loss_stops_without_saving_anything_bad(tiny_root, tmp_path):
    """A recording written in the wrong unit (values near 1e36, finite, not normalized away)
    overflows the patch encoder: the loss turns non-finite partway through training."""
    root = tmp_path / "data"
    shutil.copytree(tiny_root, root)
    with (root / "s02.dat").open("rb") as f:
        recording = pickle.load(f, encoding="latin1")
    recording["data"][5] = recording["data"][5] * 1e36  # one trial, all channels
    with (root / "s02.dat").open("wb") as f:
        pickle.dump(recording, f)
    run_dir = tmp_path / "nan"
    out = run(
        command(
            root,
            tmp_path / "cache",
            run_dir,
            "data.tokenizer.kind=patch",
            "data.tokenizer.patch=0.5s",
            "data.normalize=none",
            "train.checkpoint_every=1",
        ),
        expect=1,
    )
    assert "non-finite loss" in out.stderr and "last good checkpoint" in out.stderr
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed"
    kept = sorted((run_dir / "checkpoints").glob("step-*"))
    assert kept and f"last good checkpoint: {kept[-1]}" in status["message"]  # steps before it
    for ckpt in kept:
        for value in load_file(str(ckpt / "model_0" / "head.safetensors")).values():
            assert np.isfinite(value).all(), ckpt


def test_tensorboard_tracker_and_early_stopping(tiny_root, cache, tmp_path):
    run_dir = tmp_path / "tb"
    early = [
        "train.tracker.kind=tensorboard",
        "train.eval_every=1",
        "train.patience=2",
        "train.epochs=4",
    ]
    run(command(tiny_root, cache, run_dir, *early))
    assert_tensorboard_has_the_metrics_rows(run_dir)
    log = (run_dir / "train.log").read_text()
    assert "early stopping: no improvement in 2 evaluations" in log
    res = results(run_dir)
    assert json.loads((run_dir / "status.json").read_text())["global_step"] < 60  # 4 epochs = 60
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [(r["step"], r["val/mean_balanced_accuracy"]) for r in rows if "val/loss" in r]
    stopped_at = json.loads((run_dir / "status.json").read_text())["global_step"]
    assert [step for step, _ in evals] == list(range(1, stopped_at + 1))  # one per step
    best_step, best_value = res["best"]["step"], res["best"]["value"]
    # The best is the first evaluation that reached the top value; the 2 after it (and no
    # more) did not beat it, and training ended at the second of them.
    assert best_value == max(v for _, v in evals)
    assert all(v < best_value for step, v in evals if step < best_step)
    assert [step for step, _ in evals if step > best_step] == [best_step + 1, best_step + 2]
    assert stopped_at == best_step + 2
    # Relaunched (as a requeued job would be): it does not train on after early stopping.
    run(command(tiny_root, cache, run_dir, *early))
    assert "resumed from" in (run_dir / "train.log").read_text()
    assert json.loads((run_dir / "status.json").read_text())["global_step"] == stopped_at
    assert results(run_dir)["test"] == res["test"]


def assert_tensorboard_has_the_metrics_rows(run_dir: Path) -> None:
    """TensorBoard's scalars, read back with its own reader, are metrics.jsonl's rows: the same
    keys at the same steps with the same values (stored as float32)."""
    folders = sorted({p.parent for p in run_dir.rglob("events.out.tfevents.*")})
    logged = []
    for folder in folders:
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        events.Reload()
        for tag in events.Tags()["scalars"]:
            logged += [(tag, e.step, e.value) for e in events.Scalars(tag)]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    expected = [
        (key, row["step"], value)
        for row in rows
        for key, value in row.items()
        if key not in ("step", "time")
    ]
    assert {k for k, _, _ in expected} >= {"train/loss", "val/loss", "test/mean_balanced_accuracy"}
    assert sorted((k, s) for k, s, _ in logged) == sorted((k, s) for k, s, _ in expected)
    values = {(k, s): v for k, s, v in logged}
    for key, step, value in expected:
        assert values[key, step] == pytest.approx(value, rel=1e-6), (key, step)


def test_early_stopping_ends_at_the_evaluation_that_runs_out_of_patience(
    tiny_root, cache, tmp_path
):
    """Evaluations every 4 steps, stop polls every 10: training ends at the evaluation that
    exhausts the patience, not at the next poll. Learning rates too small to move any fp32
    weight keep every evaluation equal to the first, so none improves on it."""
    run_dir = tmp_path / "early"
    eval_every, patience = 4, 3
    run(
        command(
            tiny_root,
            cache,
            run_dir,
            f"train.eval_every={eval_every}",
            "train.stop_check_every=10",
            f"train.patience={patience}",
            "train.lr_head=1e-30",
            "train.lr_lora=1e-30",
            "train.epochs=4",  # 60 steps
            "train.log_every=1",
        )
    )
    best_step = results(run_dir)["best"]["step"]
    assert best_step == eval_every  # the first evaluation; none after it is better
    last = best_step + patience * eval_every  # 16: in epoch 1, between polls at 10 and 20
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows if "train/loss" in r) == last
    evals = [r["step"] for r in rows if "val/loss" in r]
    assert evals == list(range(eval_every, last + 1, eval_every))
    assert [s for s in evals if s > best_step] == [8, 12, 16]  # exactly `patience` after it
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "finished" and status["global_step"] == last
    final = checkpoint.latest_checkpoint(run_dir)
    assert final is not None and final.name == f"step-{last}"
    saved = checkpoint.read_state(final)["run"]
    assert saved["global_step"] == last and saved["early_stopped"] and saved["best_step"] == 4
    assert "early stopping: no improvement in 3 evaluations" in (run_dir / "train.log").read_text()


def test_continuous_inputs_train_save_evaluate_and_predict(tiny_root, cache, tmp_path):
    run_dir = tmp_path / "run"
    run(command(tiny_root, cache, run_dir, "data.tokenizer.continuous=true", "train.epochs=1"))
    spec = json.loads((run_dir / "best" / "classifier.json").read_text())["inputs"]
    assert spec["continuous"] is True
    res = results(run_dir)
    ev = run([PY, "launch/evaluate.py", str(run_dir), f"--data.root={tiny_root}"])
    again = json.loads((run_dir / "eval_test.json").read_text())
    assert again["valence"] == res["test"]["valence"] and "valence" in ev.stdout
    lines = predict_rows(run_dir, tiny_root / "s01.dat", tmp_path / "pred.csv")
    windows = [r for r in lines if r["level"] == "window"]
    # predict.py computes a new file's values with the saved preprocessor: as in the dataset.
    model = EEGEmotionClassifier.from_pretrained(run_dir / "best")
    data = pipeline.build(load_settings(run_dir / "config.yaml").data, progress=False)
    rows = np.flatnonzero(np.asarray(data.rows)[:, 0] == 1)
    expected = window_probs(
        model, data.tokens[rows], data.lengths[rows], data.pad_id, data.values[rows]
    )
    got = np.array([[float(r["valence_p_high"]), float(r["arousal_p_high"])] for r in windows])
    np.testing.assert_allclose(got, expected[:, :, 1], atol=1e-3)
