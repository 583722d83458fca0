"""Documented training features, each checked by its effect on a short run of launch/train.py
(run in the test's process, the trainer observed where a check needs it):
the default 4-bit path, configs/demo.yaml, the text and symbols tokenizers with 3 classes, the
best-model metric, class weights, label smoothing, fp16 on CPU, evaluate --split val and
predict's votes. Several checks share one run (module-scoped fixtures)."""

from __future__ import annotations

import contextlib
import csv
import json
import math
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from torch.nn import functional as F

from eeg_emotion.cli import evaluate as evaluate_cli
from eeg_emotion.cli import predict as predict_cli
from eeg_emotion.config import load_settings
from eeg_emotion.data.labels import class_names
from eeg_emotion.data.readers import deap
from eeg_emotion.training import checkpoint
from tests.helpers.training import command, results, run

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def observing(facts: dict) -> Iterator[None]:
    """The trainer observed while a launch/train.py command runs in this process (as `run`
    runs it): what it really built and ran goes into `facts` (nothing in the run changes)."""
    import bitsandbytes as bnb
    import transformers.modeling_utils

    from eeg_emotion.training import trainer

    calls, hidden = {"checkpoint": 0}, set()
    checkpoint_fn, fit = transformers.modeling_utils.checkpoint, trainer.Trainer.fit

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls["checkpoint"] += 1
        return checkpoint_fn(*args, **kwargs)

    def observed_fit(self: Any) -> Any:
        model, acc = self.classifier, self.accelerator
        base = model.backbone.base_model.model

        def record(module: Any, args: Any, out: Any) -> None:
            if module.training and out.last_hidden_state.requires_grad:
                hidden.add(str(out.last_hidden_state.dtype))

        base.register_forward_hook(record)
        linear4bit = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
        facts.update(
            mixed_precision=acc.mixed_precision,
            autocast=acc.native_amp,
            grad_scaler=acc.scaler is not None,
            linear4bit=len(linear4bit),
            quant_type=sorted({m.weight.quant_type for m in linear4bit}),
            compute_dtype=sorted({str(m.compute_dtype) for m in linear4bit}),
            gradient_checkpointing=base.is_activation_checkpointing,
            base_dtypes=sorted(
                {str(p.dtype) for n, p in model.backbone.named_parameters() if "lora_" not in n}
            ),
            head_dtype=str(model.head[-1].weight.dtype),
            hidden_size=base.config.hidden_size,
        )
        outcome = fit(self)
        facts.update(checkpoint_calls=calls["checkpoint"], train_hidden_dtypes=sorted(hidden))
        return outcome

    # What gradient checkpointing calls once per decoder layer and training forward.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transformers.modeling_utils, "checkpoint", counted)
        patch.setattr(trainer.Trainer, "fit", observed_fit)
        yield


TEXT = ["data.tokenizer.kind=text", "data.channels=[Fp1, Fp2]", "data.tokenizer.decimate=8"]
SYMBOLS = ["data.tokenizer.kind=symbols", "data.channels=[Fp1, Fp2]", "data.tokenizer.decimate=8"]
THREE = ["data.labels.num_classes=3", "train.epochs=1", "train.eval_every=3"]  # 5 evaluations
SMOOTHING = 0.1


def observed(cmd: list[str]) -> dict:
    """Run a launch/train.py command in this process, observed; the facts recorded."""
    facts: dict = {}
    with observing(facts):
        run(cmd)
    assert "checkpoint_calls" in facts, "the command did not run in this process"
    return facts


def metrics_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def val_rows(run_dir: Path) -> list[dict]:
    return [r for r in metrics_rows(run_dir) if "val/loss" in r]


def mean_macro_f1(row: dict, targets: list[str]) -> float:
    return float(np.mean([row[f"val/{t}/macro_f1"] for t in targets]))


def first_best(rows: list[dict], value: Callable[[dict], float], lowest: bool) -> int:
    """The step of the first evaluation with the best value (later ties do not replace it)."""
    values = [value(r) for r in rows]
    best = min(values) if lowest else max(values)
    return rows[values.index(best)]["step"]


def assert_finite(tree: object) -> int:
    """Every number in a JSON tree is finite; how many there were."""
    if isinstance(tree, dict):
        return sum(assert_finite(v) for v in tree.values())
    if isinstance(tree, list):
        return sum(assert_finite(v) for v in tree)
    if isinstance(tree, bool) or not isinstance(tree, int | float):
        return 0
    assert math.isfinite(tree), tree
    return 1


def adapter_b(model_dir: Path) -> float:
    """The largest |LoRA B| of a saved model: B starts at zero, so > 0 means it trained."""
    adapter = load_file(str(model_dir / "adapter" / "adapter_model.safetensors"))
    return max(float(np.abs(v).max()) for k, v in adapter.items() if "lora_B" in k)


@pytest.fixture(scope="module")
def text_run(tiny_root: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Text tokens, 3 classes, the best model by val loss."""
    run_dir = tmp_path_factory.mktemp("features") / "text"
    run(command(tiny_root, cache, run_dir, *TEXT, *THREE, "train.best_metric=loss"))
    return run_dir


@pytest.fixture(scope="module")
def symbols_run(
    tiny_root: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict]:
    """Symbol tokens, 3 classes, the best model by mean macro-F1, balanced class weights, label
    smoothing, fp16 asked for on CPU: the run folder and what the trainer built."""
    folder = tmp_path_factory.mktemp("features")
    run_dir = folder / "symbols"
    cmd = command(
        tiny_root,
        cache,
        run_dir,
        *SYMBOLS,
        *THREE,
        "train.best_metric=mean_macro_f1",
        "model.loss.class_weights=balanced",
        f"model.loss.label_smoothing={SMOOTHING}",
        "train.mixed_precision=fp16",
    )
    return run_dir, observed(cmd)


def test_the_default_4bit_path_quantizes_checkpoints_and_trains_the_adapter(
    tiny_root, cache, tmp_path
):
    """The method's defaults on the tiny backbone: nf4 weights through
    prepare_model_for_kbit_training, bf16 compute, gradient checkpointing on (unset)."""
    run_dir = tmp_path / "4bit"
    cmd = command(
        tiny_root,
        cache,
        run_dir,
        "model.precision=4bit",
        "model.gradient_checkpointing=null",
        "model.phases=[{train: [head, embedding, lora]}]",
        "train.epochs=1",
        "train.batch_size=16",
    )
    facts = observed(cmd)
    assert facts["linear4bit"] == 2 * 7  # every projection of both layers
    assert facts["quant_type"] == ["nf4"] and facts["compute_dtype"] == ["torch.bfloat16"]
    assert facts["base_dtypes"] == ["torch.bfloat16", "torch.uint8"]  # packed codes, bf16 norms
    assert facts["train_hidden_dtypes"] == ["torch.bfloat16"]
    assert facts["head_dtype"] == "torch.float32"
    steps = json.loads((run_dir / "status.json").read_text())["global_step"]
    assert facts["gradient_checkpointing"] is True
    assert steps > 0 and facts["checkpoint_calls"] == steps * 2  # each layer, each step
    log = (run_dir / "train.log").read_text()
    assert "distributed=NO" in log and "mixed precision=no" in log  # bf16 from the 4-bit layers
    saved = load_settings(run_dir / "config.yaml").model
    assert saved.precision == "4bit" and saved.checkpointing
    assert adapter_b(run_dir / "best") > 1e-4
    assert assert_finite(results(run_dir)) > 50


def test_the_demo_config_trains_its_bf16_backbone_on_continuous_values(tiny_root, cache, tmp_path):
    """configs/demo.yaml as shipped (embedded SmolLM2, 2 layers, bf16, continuous band power,
    two phases) on one subject of the tiny data: one 8-window step per epoch. Evaluation each
    epoch: its every 20 steps never comes in 2 steps."""
    run_dir = tmp_path / "demo"
    overrides = ("train.tracker.kind=none", "train.eval_every=0", "train.log_every=1")
    # One subject's 8 training windows, one step of them per epoch: bf16 is emulated on a CPU
    # without AVX512-BF16, at seconds per window.
    overrides += ("data.subjects=[1]", "train.batch_size=8")
    cmd = command(tiny_root, cache, run_dir, *overrides, config="demo.yaml")
    facts = observed(cmd)
    assert facts["hidden_size"] == 576 and facts["linear4bit"] == 0
    assert facts["base_dtypes"] == ["torch.bfloat16"]
    assert facts["train_hidden_dtypes"] == ["torch.bfloat16"]
    assert facts["head_dtype"] == "torch.float32" and not facts["gradient_checkpointing"]
    spec = json.loads((run_dir / "best" / "classifier.json").read_text())
    assert spec["inputs"]["continuous"] is True and spec["model"]["precision"] == "bf16"
    assert len(spec["inputs"]["channel"]) == 32 * 4  # one value per channel and band
    rows = metrics_rows(run_dir)
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert [r["train/phase_lora"] for r in rows if "train/loss" in r] == [0.0, 1.0]
    final = checkpoint.latest_checkpoint(run_dir)
    assert final is not None and final.name == "step-2"
    assert adapter_b(final / "model_0") > 0  # the second phase trained the adapter
    res = results(run_dir)
    assert assert_finite(res["test"]) > 20 and assert_finite(res["val"]) > 20


def test_the_best_model_by_val_loss_is_the_lowest_loss(text_run):
    rows = val_rows(text_run)
    best = results(text_run)["best"]
    assert best["metric"] == "loss" and len(rows) == 5
    assert best["step"] == first_best(rows, lambda r: r["val/loss"], lowest=True)
    assert best["value"] == min(r["val/loss"] for r in rows)
    # Meaningful only where the default metric (and the highest loss) would pick another step.
    assert best["step"] != first_best(rows, lambda r: r["val/mean_balanced_accuracy"], False)
    assert best["step"] != first_best(rows, lambda r: r["val/loss"], lowest=False)
    saved = json.loads((text_run / "best" / "val_metrics.json").read_text())
    assert saved["step"] == best["step"]


def test_the_best_model_by_mean_macro_f1_is_the_highest(symbols_run):
    run_dir, _ = symbols_run
    rows = val_rows(run_dir)
    targets = ["valence", "arousal"]
    best = results(run_dir)["best"]
    assert best["metric"] == "mean_macro_f1" and len(rows) == 5
    assert best["step"] == first_best(rows, lambda r: mean_macro_f1(r, targets), lowest=False)
    assert best["value"] == pytest.approx(max(mean_macro_f1(r, targets) for r in rows))
    assert best["step"] != first_best(rows, lambda r: r["val/mean_balanced_accuracy"], False)
    assert best["step"] != first_best(rows, lambda r: r["val/loss"], lowest=True)


@pytest.mark.parametrize("which", ["text_run", "symbols_run"])
def test_text_and_symbol_tokens_train_three_classes(which, request, tiny_root):
    run_dir = request.getfixturevalue(which)
    run_dir = run_dir[0] if isinstance(run_dir, tuple) else run_dir
    kind = "text" if which == "text_run" else "symbols"
    settings = load_settings(run_dir / "config.yaml")
    assert settings.data.tokenizer.kind == kind and settings.data.labels.num_classes == 3
    spec = json.loads((run_dir / "best" / "classifier.json").read_text())["inputs"]
    head = load_file(str(run_dir / "best" / "head.safetensors"))
    embedding = [k for k in head if k.startswith("embedding.")]
    if kind == "text":  # the backbone's own vocabulary, no EEG embedding
        assert spec["kind"] == "text" and spec["vocab_size"] == 49152 and not embedding
    else:  # one id per bin (8) plus padding, through the EEG embedding
        assert spec["kind"] == "eeg" and spec["vocab_size"] == 9 and embedding
        assert spec["band"] == [-1] * len(spec["band"])  # no bands: raw samples
    assert spec["num_classes"] == 3 and head["head.1.weight"].shape[0] == 2 * 3
    res = results(run_dir)
    every = trial_labels(run_dir, tiny_root, parts=("train", "val", "test"))
    assert set(np.unique(every[:, 0])) == set(np.unique(every[:, 1])) == {0, 1, 2}
    for part in ("val", "test"):
        truth = trial_labels(run_dir, tiny_root, parts=(part,))  # per trial: 5 windows each
        for i, target in enumerate(("valence", "arousal")):
            matrix = np.array(res[part][target]["confusion_matrix"])  # rows: the true class
            assert matrix.shape == (3, 3) and matrix.sum() == res[part][target]["support"]
            assert matrix.sum(1).tolist() == (5 * np.bincount(truth[:, i], minlength=3)).tolist()
    probs = np.load(run_dir / "predictions_test.npz")["probs"]
    assert probs.shape[1:] == (2, 3)


def trial_labels(run_dir: Path, root: Path, parts: tuple[str, ...] = ("train",)) -> np.ndarray:
    """(trials, 2) classes of valence and arousal of the training trials (or of `parts`), from
    the files' ratings and splits.json (3 classes: above 3.67, above 6.33)."""
    split = json.loads((run_dir / "splits.json").read_text())
    trials = [tuple(st) for part in parts for st in split[part]]
    ratings = {s: deap.read_subject(root / f"s{s:02d}.dat").labels[:, :2] for s, _ in trials}
    r = np.array([ratings[s][t] for s, t in trials])
    return (r > 3.67).astype(np.int64) + (r > 6.33).astype(np.int64)


def val_loss(run_dir: Path, weights: torch.Tensor | None, smoothing: float) -> float:
    """The val loss as the trainer reports it (each window carries its batch's loss), from the
    best model's saved probabilities: the sum over targets of cross-entropy, batches of 8."""
    saved = np.load(run_dir / "predictions_val.npz")
    logp = torch.from_numpy(saved["probs"]).double().log()
    labels = torch.from_numpy(saved["labels"])
    per_window = []
    for start in range(0, len(labels), 8):
        b = slice(start, start + 8)
        loss = sum(
            F.cross_entropy(
                logp[b, i],
                labels[b, i],
                weight=None if weights is None else weights[i],
                label_smoothing=smoothing,
            )
            for i in range(labels.shape[1])
        )
        per_window += [float(loss)] * len(labels[b])
    return float(np.mean(per_window))


def test_class_weights_come_from_the_training_labels_and_label_smoothing_applies(
    symbols_run, tiny_root
):
    run_dir, _ = symbols_run
    labels = trial_labels(run_dir, tiny_root)
    counts = np.stack([np.bincount(labels[:, i], minlength=3) for i in range(2)])
    assert counts.min() > 0 and len({tuple(c) for c in counts}) == 2  # uneven, per target
    # Inverse class frequencies ("balanced": n / (classes x count)); every trial has as many
    # windows, so trial counts give the window weights.
    weights = torch.from_numpy(counts.sum(1, keepdims=True) / (3 * counts))
    reported = results(run_dir)["val"]["loss"]
    assert reported == pytest.approx(val_loss(run_dir, weights, SMOOTHING), abs=1e-5)
    # Without the weights, or without the smoothing, the same predictions score otherwise.
    assert abs(reported - val_loss(run_dir, None, SMOOTHING)) > 1e-2
    assert abs(reported - val_loss(run_dir, weights, 0.0)) > 1e-2
    # Weights from every trial's labels (val and test included) would score otherwise too.
    every = trial_labels(run_dir, tiny_root, parts=("train", "val", "test"))
    counts_all = np.stack([np.bincount(every[:, i], minlength=3) for i in range(2)])
    leaky = torch.from_numpy(counts_all.sum(1, keepdims=True) / (3 * counts_all))
    assert abs(reported - val_loss(run_dir, leaky, SMOOTHING)) > 1e-3


def test_fp16_on_cpu_is_accepted_and_trains_in_fp32(symbols_run):
    """Accelerate has no fp16 autocast or gradient scaler on CPU: the run is logged as fp16
    and computes in fp32."""
    run_dir, facts = symbols_run
    assert facts["mixed_precision"] == "fp16"
    assert "mixed precision=fp16" in (run_dir / "train.log").read_text()
    assert facts["autocast"] is False and facts["grad_scaler"] is False
    assert facts["train_hidden_dtypes"] == ["torch.float32"]
    assert facts["base_dtypes"] == ["torch.float32"]
    assert json.loads((run_dir / "status.json").read_text())["status"] == "finished"


def test_evaluate_on_val_repeats_the_runs_val_numbers(text_run, capsys):
    # The command's own entry point, in this process (a second interpreter costs seconds).
    assert evaluate_cli.main([str(text_run), "--split", "val"]) == 0
    again = json.loads((text_run / "eval_val.json").read_text())
    val = results(text_run)["val"]
    assert {"valence", "arousal", "overall", "trial_level"} <= set(again)
    for key in again:
        assert again[key] == val[key], key
    test = results(text_run)["test"]
    assert again["valence"] != test["valence"]  # the val windows, not the test ones
    assert f"val ({text_run})" in capsys.readouterr().out


def test_predict_votes_are_the_majority_of_the_window_predictions(text_run, tiny_root, tmp_path):
    out_csv = tmp_path / "pred.csv"
    recording = str(tiny_root / "s01.dat")
    assert predict_cli.main([str(text_run), "--input", recording, "--out", str(out_csv)]) == 0
    with out_csv.open() as f:
        rows = list(csv.DictReader(f))
    names = class_names(3)
    windows = [r for r in rows if r["level"] == "window"]
    trials = [r for r in rows if r["level"] == "trial"]
    assert len(trials) == 12 and len(windows) == 5 * 12
    differs = 0
    for target in ("valence", "arousal"):
        for t in trials:
            preds = [
                w[f"{target}_pred"]
                for w in windows
                if (w["file"], w["trial"]) == (t["file"], t["trial"])
            ]
            counts = Counter(preds)
            top = max(counts.values())
            vote = next(n for n in names if counts[n] == top)  # a tie goes to the lower class
            assert t[f"{target}_vote"] == vote, (t, preds)
            assert all(w[f"{target}_vote"] == "" for w in windows)
            differs += t[f"{target}_vote"] != t[f"{target}_pred"]
    # The vote is not the trial's mean-probability prediction under another name.
    assert differs > 0
