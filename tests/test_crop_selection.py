"""Training crops at any sample (train.crop), model selection by the val trials' loss
(train.best_metric=trial_loss) and class weights where the classes are unbalanced
(model.loss.class_weights=auto). The runs are in this process, without a backbone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from eeg_emotion.cli import train as train_cli
from eeg_emotion.config import load_settings
from eeg_emotion.data import pipeline
from eeg_emotion.data.dataset import EpochShuffle, TokenDataset, loaders, training_crop
from eeg_emotion.data.pipeline import TokenData
from eeg_emotion.errors import ConfigError
from eeg_emotion.evaluation.metrics import trial_loss
from eeg_emotion.evaluation.scoring import Predictions
from eeg_emotion.model.classifier import EEGEmotionClassifier
from eeg_emotion.model.embedding import InputSpec
from eeg_emotion.model_settings import ModelSettings
from eeg_emotion.training.trainer import Trainer
from tests.helpers.paths import ROOT, data_settings

# configs/tiny.yaml's 2 s windows at 128 Hz in patches of 64 samples: 4 patches x 32 channels.
PATCH = ("data.tokenizer.kind=patch", "data.tokenizer.patch=0.5s")
P, CHANNELS, WINDOW_PATCHES = 64, 32, 4
CROP = "1s"  # 2 patches
NO_LLM = ("model.source=none", "model.hidden_size=16", "model.readout=channels")


@pytest.fixture(scope="module")
def data(tiny_root: Path, cache: Path) -> TokenData:
    return pipeline.build(data_settings(tiny_root, cache, *PATCH), progress=False)


def train(tiny_root: Path, cache: Path, run_dir: Path, *extra: str) -> int:
    """The training command's own entry point, in this process."""
    overrides = [f"data.root={tiny_root}", f"data.cache_dir={cache}", f"output_dir={run_dir}"]
    return train_cli.main(["--config", str(ROOT / "configs" / "tiny.yaml"), *overrides, *extra])


def window_signal(data: TokenData, row: int) -> np.ndarray:
    """A window's (channels, samples) signal, rebuilt from its cached time-major patches."""
    values = np.asarray(data.values[row], np.float32)
    return values.reshape(WINDOW_PATCHES, CHANNELS, P).transpose(1, 0, 2).reshape(CHANNELS, -1)


def crop_signal(values: torch.Tensor) -> np.ndarray:
    """A crop's (channels, samples) signal from its time-major (tokens, patch) values."""
    v = values.float().numpy()
    return v.reshape(-1, CHANNELS, P).transpose(1, 0, 2).reshape(CHANNELS, -1)


def where_cut(signal: np.ndarray, piece: np.ndarray) -> list[int]:
    """Every offset at which `piece` is exactly the window's signal."""
    length = piece.shape[1]
    return [
        o
        for o in range(signal.shape[1] - length + 1)
        if np.array_equal(signal[:, o : o + length], piece)
    ]


def offsets(data: TokenData, dataset: TokenDataset, count: int) -> list[int]:
    """Where each of the first `count` training items was cut (found in the window's signal)."""
    found = []
    for i in range(count):
        item = dataset[i]
        row = int(dataset.index[i])
        assert item["values"].shape == (2 * CHANNELS, P) and len(item["input_ids"]) == 2 * CHANNELS
        at = where_cut(window_signal(data, row), crop_signal(item["values"]))
        assert len(at) == 1, (i, at)
        found.append(at[0])
    return found


def test_crops_are_cut_at_any_sample_fresh_each_epoch_and_again_the_same(data):
    crop = training_crop(CROP, data, seed=0)
    dataset = TokenDataset(data, "train", crop)
    first = offsets(data, dataset, 24)
    assert any(o % P for o in first), "every crop starts on a patch boundary"
    assert len(set(first)) > 12
    dataset.set_epoch(1)
    second = offsets(data, dataset, 24)
    assert sum(a != b for a, b in zip(first, second, strict=True)) > 12, "the same crops again"
    # The same (seed, epoch): exactly the same crops, from a dataset built anew.
    again = TokenDataset(data, "train", training_crop(CROP, data, seed=0))
    again.set_epoch(1)
    assert offsets(data, again, 24) == second
    other = TokenDataset(data, "train", training_crop(CROP, data, seed=1))
    assert offsets(data, other, 24) != first


def test_only_training_windows_are_cropped_and_the_sampler_sets_their_epoch(data):
    train_loader, val_loader, test_loader = loaders(data, 8, 0, 0, training_crop(CROP, data, 0))
    batch = next(iter(train_loader))
    assert batch["values"].shape == (8, 2 * CHANNELS, P)
    assert batch["attention_mask"].all()
    # Its tokens take the layout's first positions: time steps 0 and 1, every channel in place.
    assert np.asarray(data.layout.time[: 2 * CHANNELS]).tolist() == [0] * CHANNELS + [1] * CHANNELS
    assert len(set(np.asarray(data.layout.channel[:CHANNELS]).tolist())) == CHANNELS
    for loader, part in ((val_loader, "val"), (test_loader, "test")):
        rows = data.indices(part)
        seen = torch.cat([b["values"] for b in loader])
        assert seen.shape == (len(rows), WINDOW_PATCHES * CHANNELS, P)
        expected = torch.from_numpy(np.asarray(data.values[rows], np.float32))
        torch.testing.assert_close(seen, expected, rtol=0, atol=0)
    # The loader's epoch reaches the crops through its sampler (as the trainer sets it).
    train_loader.sampler.set_epoch(3)
    reference = TokenDataset(data, "train", training_crop(CROP, data, 0))
    reference.set_epoch(3)
    sampler = EpochShuffle(len(reference), 0)
    sampler.set_epoch(3)
    first = list(sampler)[:8]
    batch = next(iter(train_loader))
    expected = torch.stack([reference[i]["values"].float() for i in first])
    torch.testing.assert_close(batch["values"], expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("train.crop=1s",), "train.crop='1s' re-cuts the signal of patch inputs: it needs "
         "data.tokenizer.kind=patch, not band_power"),
        ((*PATCH, "train.crop=0.75s"), "train.crop='0.75s' (96 samples) is not a whole number "
         "of patches of data.tokenizer.patch='0.5s' (64 samples)"),
        ((*PATCH, "train.crop=3s"), "train.crop='3s' (384 samples) is longer than the window: "
         "data.window='2s' (256 samples)"),
    ],
    ids=["not_patch_inputs", "not_whole_patches", "longer_than_the_window"],
)  # fmt: skip
def test_a_crop_the_windows_cannot_give_is_refused_before_the_run_folder(
    tiny_root, cache, tmp_path, in_process, capsys, extra, message
):
    run_dir = tmp_path / "run"
    assert train(tiny_root, cache, run_dir, *NO_LLM, *extra) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("error: "), err
    assert errors[0].endswith(message), err
    assert not run_dir.exists()


def test_a_crop_of_other_inputs_is_refused_by_the_settings_alone():
    with pytest.raises(ConfigError, match=r"train\.crop='1s' re-cuts the signal of patch inputs"):
        load_settings(ROOT / "configs" / "tiny.yaml", ["train.crop=1s"])
    patch = load_settings(ROOT / "configs" / "tiny.yaml", [*PATCH, "train.crop=1s"])
    assert patch.train.crop == "1s"


def test_trial_loss_is_the_cross_entropy_of_each_trials_mean_probabilities():
    # Two targets of two classes; trial (1, 1) has three windows, trial (1, 2) one.
    probs = np.array(
        [
            [[0.9, 0.1], [0.2, 0.8]],
            [[0.5, 0.5], [0.4, 0.6]],
            [[0.1, 0.9], [0.6, 0.4]],
            [[0.3, 0.7], [0.7, 0.3]],
        ]
    )
    labels = np.array([[0, 1], [0, 1], [0, 1], [1, 0]])
    rows = np.array([[1, 1, 0], [1, 1, 1], [1, 1, 2], [1, 2, 0]])
    # Trial 1: mean p(low valence) = 0.5, mean p(high arousal) = 0.6; trial 2: 0.7 and 0.7.
    by_hand = (-(np.log(0.5) + np.log(0.6)) / 2 - (np.log(0.7) + np.log(0.7)) / 2) / 2
    assert trial_loss(probs, labels, rows) == pytest.approx(by_hand, rel=1e-12)
    windows = -np.log(np.take_along_axis(probs, labels[..., None], -1)).mean()
    assert abs(by_hand - windows) > 0.05  # per window, trial 1 would weigh three times
    # A sure mistake is finite.
    assert np.isfinite(trial_loss(np.array([[[1.0, 0.0]]]), np.array([[1]]), rows[:1]))


def no_llm_model(class_weights: str) -> EEGEmotionClassifier:
    spec = InputSpec(
        kind="eeg",
        vocab_size=8,
        pad_id=0,
        targets=["valence", "arousal"],
        num_classes=2,
        channel=[0, 1],
        band=[0, 0],
        time=[0, 0],
        continuous=True,
    )
    settings = ModelSettings.model_validate(
        {"source": "none", "hidden_size": 8, "loss": {"class_weights": class_weights}}
    )
    return EEGEmotionClassifier(settings, spec)


def test_auto_class_weights_balance_an_unbalanced_target_only():
    # valence 3 low / 1 high (0.33 < 0.8: unbalanced), arousal 2 / 2; then 4 / 5 (0.8: not under)
    train = torch.tensor([[0, 1], [0, 0], [0, 1], [1, 0]])
    model = no_llm_model("auto")
    assert model.set_class_weights(train) == {"valence": True, "arousal": False}
    logits = {
        "valence": torch.tensor([[2.0, -1.0], [0.5, 0.3], [-1.0, 1.0]]),
        "arousal": torch.tensor([[0.1, 0.2], [1.0, -2.0], [0.0, 3.0]]),
    }
    labels = torch.tensor([[1, 0], [0, 1], [1, 1]])
    weights = torch.tensor([4 / (2 * 3), 4 / (2 * 1)])  # n / (classes x count)
    expected = F.cross_entropy(logits["valence"], labels[:, 0], weight=weights)
    expected = expected + F.cross_entropy(logits["arousal"], labels[:, 1])
    torch.testing.assert_close(model.loss(logits, labels), expected)
    balanced = torch.tensor([[0, 0]] * 4 + [[1, 1]] * 5)
    assert model.set_class_weights(balanced) == {"valence": False, "arousal": False}
    plain = sum(F.cross_entropy(logits[t], labels[:, i]) for i, t in enumerate(logits))
    torch.testing.assert_close(model.loss(logits, labels), plain)
    # `balanced` weights every target, `none` none, whatever the labels.
    assert no_llm_model("balanced").set_class_weights(balanced) == {
        "valence": True,
        "arousal": True,
    }
    assert no_llm_model("none").set_class_weights(train) == {"valence": False, "arousal": False}


def metrics_rows(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_val_trials_loss_picks_the_best_model_and_auto_weights_are_logged(
    tiny_root, cache, tmp_path, data, in_process
):
    run_dir = tmp_path / "run"
    extra = (
        "train.best_metric=trial_loss",
        "train.eval_every=3",
        "model.loss.class_weights=auto",
        "train.epochs=1",
        f"train.crop={CROP}",  # trains on crops, evaluates every full window
    )
    assert train(tiny_root, cache, run_dir, *NO_LLM, *PATCH, *extra) == 0
    evals = [r for r in metrics_rows(run_dir) if "val/loss" in r]
    assert len(evals) == 5 and all("val/trial_loss" in r for r in evals)
    losses = [r["val/trial_loss"] for r in evals]
    stored = json.loads((run_dir / "results.json").read_text())
    best = stored["best"]
    assert best["metric"] == "trial_loss" and best["value"] == min(losses)
    assert best["step"] == evals[losses.index(min(losses))]["step"]
    # The best model scored again on val: the same trial loss, from its saved predictions.
    val = Predictions.load(run_dir / "predictions_val.npz")
    assert stored["val"]["trial_loss"] == pytest.approx(trial_loss(val.probs, val.labels, val.rows))
    assert stored["val"]["trial_loss"] == pytest.approx(best["value"], abs=1e-5)
    assert "trial_loss" in stored["test"]
    # Which weights `auto` chose, from the training windows' classes.
    labels = data.train_labels()
    chosen = []
    for i, target in enumerate(data.targets):
        counts = np.bincount(labels[:, i], minlength=data.num_classes)
        chosen.append(f"{target} {'balanced' if counts.min() < 0.8 * counts.max() else 'none'}")
    assert f"the commonest): {', '.join(chosen)}\n" in (run_dir / "train.log").read_text()


def test_a_resumed_run_draws_the_same_crops(
    tiny_root, cache, tmp_path, data, in_process, monkeypatch
):
    """Stopped in its second epoch and resumed: every micro-batch, crops included, is what the
    seed's order and crops give, none repeated or lost."""
    run_dir = tmp_path / "run"
    seen: list[torch.Tensor] = []
    step = Trainer.train_micro_batch

    def recorded(self: Trainer, batch: dict[str, torch.Tensor], epoch: int) -> Any:
        seen.append(batch["values"].clone())
        if len(seen) == 20:  # epoch 1 (15 micro-batches each), taken at the next poll
            (self.run_dir / "STOP").write_text("")
        return step(self, batch, epoch)

    monkeypatch.setattr(Trainer, "train_micro_batch", recorded)
    extra = (f"train.crop={CROP}", "train.stop_check_every=1", "train.log_every=5")
    assert train(tiny_root, cache, run_dir, *NO_LLM, *PATCH, *extra) == 3
    assert len(seen) == 20
    assert train(tiny_root, cache, run_dir, *NO_LLM, *PATCH, *extra) == 0
    assert "resumed from" in (run_dir / "train.log").read_text()
    # The val trials' loss is logged at every evaluation, whatever selects the model.
    evals = [r for r in metrics_rows(run_dir) if "val/loss" in r]
    assert len(evals) == 2 and all("val/trial_loss" in r for r in evals)
    crop = training_crop(CROP, data, seed=0)
    dataset = TokenDataset(data, "train", crop)
    expected = []
    for epoch in range(2):
        sampler = EpochShuffle(len(dataset), 0, dataset)
        sampler.set_epoch(epoch)
        order = list(sampler)
        for b in range(len(order) // 8):
            expected.append(torch.stack([dataset[i]["values"].float() for i in order[b * 8 :][:8]]))
    assert len(seen) == len(expected) == 30
    for i, (got, want) in enumerate(zip(seen, expected, strict=True)):
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=f"micro-batch {i}")
