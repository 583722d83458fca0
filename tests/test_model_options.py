"""The model as EEG encoders are built, each part a setting: no backbone at all (the no-LLM
ablation), bidirectional attention, positions from time, a readout that keeps channels apart,
channel dropout, no best model before a minimum step, and LoRA's movement in the metrics."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from eeg_emotion.config import Settings
from eeg_emotion.errors import ConfigError
from eeg_emotion.model.classifier import EEGEmotionClassifier
from eeg_emotion.model.embedding import InputSpec
from eeg_emotion.model.pooling import Readout
from eeg_emotion.model_settings import ModelSettings
from tests.helpers.training import PY, assert_same_model, command, ddp, results, run

# 4 channels x 3 time steps, time-major (as the patch and band-power layouts are).
CHANNELS, STEPS = 4, 3


def spec() -> InputSpec:
    channel = [c for _ in range(STEPS) for c in range(CHANNELS)]
    time = [t for t in range(STEPS) for _ in range(CHANNELS)]
    return InputSpec(
        kind="eeg",
        vocab_size=8,
        pad_id=0,
        targets=["valence"],
        num_classes=2,
        channel=channel,
        band=[0] * len(channel),
        time=time,
        continuous=True,
    )


def model(**options: Any) -> EEGEmotionClassifier:
    settings = ModelSettings.model_validate(
        {"source": "tiny", "precision": "fp32", "lora": {"dropout": 0.0}, **options}
    )
    torch.manual_seed(0)
    return EEGEmotionClassifier(settings, spec()).eval()


def inputs(values: torch.Tensor) -> dict[str, torch.Tensor]:
    n = values.shape[1]
    return {
        "input_ids": torch.zeros(values.shape[0], n, dtype=torch.long),
        "attention_mask": torch.ones(values.shape[0], n, dtype=torch.long),
        "values": values,
    }


def last_hidden(m: EEGEmotionClassifier, values: torch.Tensor) -> torch.Tensor:
    """The hidden states the readout receives."""
    seen: list[torch.Tensor] = []
    handle = m.readout.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    with torch.no_grad():
        m(**inputs(values))
    handle.remove()
    return seen[0]


@pytest.mark.parametrize("attention", ["causal", "bidirectional"])
def test_bidirectional_attention_lets_the_first_token_see_the_last(attention):
    m = model(attention=attention)
    values = torch.randn(1, CHANNELS * STEPS)
    changed = values.clone()
    changed[0, -1] += 3.0  # only the last token differs
    first = (last_hidden(m, values)[0, 0] - last_hidden(m, changed)[0, 0]).abs().max()
    if attention == "bidirectional":
        assert first > 1e-4
    else:  # a language model's mask: the first token never sees a later one
        assert first < 1e-6


def test_positions_from_time_are_what_the_backbone_receives():
    received: dict[str, torch.Tensor] = {}

    def seen(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        received["ids"] = kwargs["position_ids"]

    for positions, expected in (
        ("time", [t for t in range(STEPS) for _ in range(CHANNELS)]),
        ("token", list(range(CHANNELS * STEPS))),
    ):
        m = model(positions=positions)
        handle = m.backbone.register_forward_pre_hook(seen, with_kwargs=True)
        with torch.no_grad():
            m(**inputs(torch.randn(2, CHANNELS * STEPS)))
        handle.remove()
        assert received["ids"].tolist() == [expected, expected]


def test_the_channel_readout_keeps_a_left_right_difference_that_mean_max_cancels():
    hidden = torch.randn(1, CHANNELS * STEPS, 6)
    swapped = hidden.clone()
    channel = torch.tensor(spec().channel)
    swapped[0, channel == 0], swapped[0, channel == 1] = (
        hidden[0, channel == 1],
        hidden[0, channel == 0],
    )
    mask = torch.ones(1, CHANNELS * STEPS)
    pooled = Readout("mean_max", spec(), 6)
    per_channel = Readout("channels", spec(), 6)
    torch.testing.assert_close(pooled(hidden, mask), pooled(swapped, mask))  # blind to the swap
    out = per_channel(hidden, mask)
    assert out.shape == (1, CHANNELS * 6) and per_channel.width == CHANNELS * 6
    assert not torch.allclose(out, per_channel(swapped, mask))
    # Each block is that channel's mean over its tokens.
    torch.testing.assert_close(out[0, :6], hidden[0, channel == 0].mean(0))
    # The classifier's head reads the channel blocks.
    m = model(readout="channels")
    assert m.head[-1].in_features == CHANNELS * m.config.hidden_size


def test_channel_dropout_zeroes_whole_electrodes_in_training_only():
    m = model(channel_dropout=0.5)
    embeds = torch.ones(64, CHANNELS * STEPS, 5)
    torch.manual_seed(1)
    m.train()
    dropped = m._drop_channels(embeds)
    channel = torch.tensor(spec().channel)
    for window in dropped:
        per_channel = [window[channel == c] for c in range(CHANNELS)]
        for tokens in per_channel:  # an electrode is kept or dropped as a whole
            assert bool((tokens == 0).all()) or bool((tokens == 1).all())
    share = float((dropped[:, :, 0] == 0).float().mean())
    assert 0.35 < share < 0.65, share
    m.eval()
    values = torch.randn(2, CHANNELS * STEPS)
    with torch.no_grad():
        a, b = m(**inputs(values))["logits"]["valence"], m(**inputs(values))["logits"]["valence"]
    torch.testing.assert_close(a, b)  # evaluation drops nothing


def test_settings_refuse_what_the_input_cannot_give():
    for options in ({"source": "none"}, {"readout": "channels"}):
        with pytest.raises(ValueError, match="not text"):
            Settings.model_validate({"data": {"tokenizer": {"kind": "text"}}, "model": options})


NO_LLM = ["model.source=none", "model.hidden_size=32", "model.readout=channels"]
PATCH = ["data.tokenizer.kind=patch", "data.tokenizer.patch=0.5s"]


def test_the_no_llm_model_trains_saves_evaluates_and_predicts(tiny_root, cache, tmp_path):
    run_dir = tmp_path / "none"
    out = run(command(tiny_root, cache, run_dir, *NO_LLM, *PATCH))
    assert "test (best model from step" in out.stdout
    assert "no backbone" in (run_dir / "train.log").read_text()
    best = run_dir / "best"
    assert not (best / "adapter").exists() and (best / "head.safetensors").exists()
    meta = json.loads((best / "classifier.json").read_text())
    assert meta["model"]["source"] == "none"
    # What the head reads: 32 electrodes x 32 wide.
    loaded = EEGEmotionClassifier.from_pretrained(best)
    assert loaded.backbone is None and loaded.head[-1].in_features == 32 * 32
    run([PY, "launch/evaluate.py", str(run_dir), "--split", "test"])
    evaluated = json.loads((run_dir / "eval_test.json").read_text())
    assert evaluated["valence"] == results(run_dir)["test"]["valence"]
    csv_path = tmp_path / "pred.csv"
    run([PY, "launch/predict.py", str(run_dir), "--input", str(tiny_root / "s01.dat"),
         "--out", str(csv_path)])  # fmt: skip
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    assert rows and all(0 <= float(r["valence_p_high"]) <= 1 for r in rows)


# The no-LLM model on patches with the filter-bank front end and random crops: the encoder's
# training options under data parallelism in one launch.
ENCODER_OPTIONS = [
    *PATCH, "model.front_end.kind=filterbank", "model.front_end.bands=4",
    "model.front_end.spatial_filters=4", "model.front_end.to_head=true", "train.crop=1.5s",
]  # fmt: skip


def test_the_no_llm_model_runs_data_parallel_as_one_process(tiny_root, cache, tmp_path):
    """With the front end and crops: each crop is drawn per window from (seed, epoch, row), so two
    ranks crop their halves of a batch as one process crops the whole."""
    one, two = tmp_path / "one", tmp_path / "two"
    run(command(tiny_root, cache, one, *NO_LLM, *ENCODER_OPTIONS))
    out = run(command(tiny_root, cache, two, *NO_LLM, *ENCODER_OPTIONS, launcher=ddp(29653)))
    assert "test (best model" in out.stdout
    assert "2 process(es) on cpu" in (two / "train.log").read_text()
    for run_dir in (one, two):
        saved = (run_dir / "config.yaml").read_text()
        assert "kind: filterbank" in saved and "crop: 1.5s" in saved, saved
        assert "embedding.front_end.filters" in load_file(str(run_dir / "best/head.safetensors"))
    assert_same_model(one, two, atol=1e-4)


def test_an_encoder_built_run_moves_lora_and_keeps_no_model_before_select_after(
    tiny_root, cache, tmp_path
):
    """Bidirectional, time positions and the channel readout through the training command; LoRA's
    movement is logged (none while only the head trains), and no evaluation before
    train.select_after keeps a model."""
    run_dir = tmp_path / "encoder"
    options = ["model.attention=bidirectional", "model.positions=time", "model.readout=channels"]
    run(command(tiny_root, cache, run_dir, *options, "train.eval_every=5", "train.select_after=20"))
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    delta = [
        (r["train/phase_lora"], r["train/lora_delta"]) for r in rows if "train/lora_delta" in r
    ]
    assert delta and all(d == 0 for lora, d in delta if not lora)
    moved = [d for lora, d in delta if lora]
    assert moved and moved[-1] > 1e-3, delta
    best = results(run_dir)["best"]["step"]
    evals = [r["step"] for r in rows if "val/loss" in r]
    assert min(evals) < 20 <= best, (evals, best)
    log = (run_dir / "train.log").read_text()
    for step in (s for s in evals if s < 20):
        assert f"step {step}: evaluated, not a candidate for the best model" in log


def test_select_after_past_the_last_evaluation_is_refused(tiny_root, cache, tmp_path):
    from eeg_emotion.config import load_settings
    from eeg_emotion.data import pipeline
    from eeg_emotion.training.trainer import check_schedule

    settings = load_settings(
        Path("configs/tiny.yaml"),
        [f"data.root={tiny_root}", f"data.cache_dir={cache}", "train.select_after=1000"],
    )
    data = pipeline.build(settings.data, progress=False)
    with pytest.raises(ConfigError, match=r"train\.select_after=1000 is past the run's last"):
        check_schedule(settings.train, data)


def test_plan_counts_the_no_llm_model_and_the_channel_readout_as_built():
    from eeg_emotion.config import load_settings
    from eeg_emotion.model.plan import input_spec, plan

    for extra in (["model.source=none"], ["model.readout=channels"]):
        settings = load_settings(Path("configs/tiny.yaml"), [*extra, "model.readout=channels"])
        planned = plan(settings, with_data=False)
        built = EEGEmotionClassifier(settings.model, input_spec(settings))
        head = sum(p.numel() for p in built.head.parameters())
        head += sum(p.numel() for p in built.embedding.parameters())
        assert planned.head_params == head, extra
        assert (planned.base_params == 0) == (settings.model.source == "none")
