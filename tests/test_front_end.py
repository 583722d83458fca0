"""The patch model's front end (`model.front_end.kind=filterbank`): learned band-pass filters,
complex spatial filters whose power sees phase coupling between channels, and each channel's
power spread over sub-windows; trained, saved, loaded, evaluated and predicted, refused for
inputs that are not patches, and counted by the plan."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from eeg_emotion.config import load_settings
from eeg_emotion.errors import ConfigError
from eeg_emotion.model.classifier import EEGEmotionClassifier
from eeg_emotion.model.embedding import EEGEmbedding, InputSpec
from eeg_emotion.model.front_end import band_pass_bank
from eeg_emotion.model_settings import FrontEndSettings
from tests.helpers.paths import ROOT

RATE, SAMPLES, CHANNELS, PATCHES = 64, 64, 4, 2  # 1 s patches at 64 Hz, time-major
FRONT_END = FrontEndSettings(
    kind="filterbank", bands=4, filter_length="0.25s", spatial_filters=4, sub_windows=4
)
TRAIN = [
    "model.source=none", "model.hidden_size=32", "model.readout=channels",
    "data.tokenizer.kind=patch", "data.tokenizer.patch=0.5s", "model.front_end.kind=filterbank",
    "model.front_end.bands=4", "model.front_end.spatial_filters=4", "model.front_end.to_head=true",
    "train.epochs=1",
]  # fmt: skip


def spec(patches: int = PATCHES) -> InputSpec:
    channel = [c for _ in range(patches) for c in range(CHANNELS)]
    return InputSpec(
        kind="eeg", vocab_size=1, pad_id=0, targets=["valence"], num_classes=2, channel=channel,
        band=[-1] * len(channel), time=[t for t in range(patches) for _ in range(CHANNELS)],
        patch=SAMPLES, patch_encoder_width=16, sampling_rate=RATE,
    )  # fmt: skip


def embedding(front_end: FrontEndSettings | None = FRONT_END) -> EEGEmbedding:
    torch.manual_seed(0)
    return EEGEmbedding(spec(), hidden=24, init_std=0.02, front_end=front_end).eval()


def embed(emb: EEGEmbedding, values: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return emb(torch.zeros(values.shape[:2], dtype=torch.long), values)


def coupled(lag: float, windows: int, seed: int) -> torch.Tensor:
    """(windows, tokens, samples): channels 0 and 1 carry one 8 Hz rhythm, channel 1 `lag`
    radians after channel 0, each window at a random phase; every channel has its own noise.
    Over the windows each channel's own patches are distributed alike whatever the lag."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(PATCHES * SAMPLES) / RATE
    phase = torch.rand(windows, 1, generator=g) * 2 * math.pi
    x = 0.5 * torch.randn(windows, CHANNELS, PATCHES * SAMPLES, generator=g)
    x[:, 0] += torch.sin(2 * math.pi * 8 * t + phase)
    x[:, 1] += torch.sin(2 * math.pi * 8 * t + phase - lag)
    return x.unflatten(-1, (PATCHES, SAMPLES)).transpose(1, 2).flatten(1, 2)  # time-major


def test_the_front_end_sees_which_channel_leads_where_each_channel_alone_cannot():
    """Channel 1 lagging channel 0 by a quarter cycle, or leading it: no zero-lag correlation
    either way, and each channel's patches look alike over the windows. Only the imaginary part
    of the cross-spectrum differs, which complex spatial filters read. The per-token encoder
    alone moves its mean output no more than two draws of the same data do."""
    lag, lead = coupled(math.pi / 2, 256, 1), coupled(-math.pi / 2, 256, 2)
    again = coupled(math.pi / 2, 256, 3)
    for front_end, expected in ((FRONT_END, True), (None, False)):
        emb = embedding(front_end)
        means = [embed(emb, x).mean(0) for x in (lag, lead, again)]
        between, within = (means[0] - means[1]).norm(), (means[0] - means[2]).norm()
        assert bool(between > 4 * within) == expected, (front_end, float(between / within))


def burst_and_even(windows: int) -> torch.Tensor:
    """Window 0: channel 0 an 8 Hz rhythm of even amplitude; window 1: the same energy in one
    burst per patch. The other channels are the same noise in both."""
    t = torch.arange(SAMPLES) / RATE
    rhythm = torch.sin(2 * math.pi * 8 * t)
    burst = torch.exp(-((t - 0.5) ** 2) / (2 * 0.08**2))
    burst = burst / burst.square().mean().sqrt()  # the even rhythm's energy
    x = 0.1 * torch.randn(1, PATCHES * CHANNELS, SAMPLES).repeat(2, 1, 1)
    x[0, ::CHANNELS] += rhythm
    x[1, ::CHANNELS] += rhythm * burst
    return x


def test_the_sub_window_spread_responds_to_a_burst_not_to_the_same_energy_spread_evenly():
    emb = embedding()
    assert emb.front_end is not None
    x = burst_and_even(2)
    with torch.no_grad():
        _, per_channel, _ = emb.front_end.features(x)
    bands = FRONT_END.bands
    spread = per_channel[:, 0, bands:]  # channel 0, first patch: the spread per band
    assert per_channel.shape[-1] == 2 * bands
    band = int(spread[1].argmax())  # the band the rhythm falls in
    assert spread[1, band] > 3 * spread[0, band] and spread[1, band] > 0.5, spread
    # Its tokens' outputs differ; the other channels' per-channel features do not.
    out = embed(emb, x)
    assert (out[0, 0] - out[1, 0]).norm() > 0.1 * out[0, 0].norm()
    torch.testing.assert_close(per_channel[0, 1], per_channel[1, 1])


def test_padding_and_fewer_patches_leave_the_real_tokens_as_they_are():
    emb = embedding()
    with torch.no_grad():  # off their start (zero biases), as a trained model is
        for p in emb.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = coupled(math.pi / 2, 2, 4)
    full = embed(emb, x)
    first = embed(emb, x[:, :CHANNELS])  # a window of one patch
    torch.testing.assert_close(first, full[:, :CHANNELS])
    padded = x.clone()
    padded[1, CHANNELS:] = 0  # window 1: one patch, padded to two
    assert emb.front_end is not None
    with torch.no_grad():
        out = emb.front_end(padded)[0]
        torch.testing.assert_close(embed(emb, padded)[1, :CHANNELS], first[1])
    assert bool((out[1, CHANNELS:] == 0).all()) and bool(out[0, CHANNELS:].abs().sum() > 0)
    # Gradients through padding stay finite (a padded patch's power is flat).
    emb.train()
    emb(torch.zeros(2, 2 * CHANNELS, dtype=torch.long), padded).sum().backward()
    grads = [p.grad for p in emb.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)
    # Under bf16 autocast the filters and the FFT still run in fp32; the output keeps the
    # embedding's dtype.
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        cast = emb.front_end(x)[0]
    assert cast.dtype == torch.float32
    torch.testing.assert_close(cast, emb.front_end(x)[0].detach())


TO_HEAD = FRONT_END.model_copy(update={"to_head": True})


def test_the_window_summary_averages_real_patches_and_keeps_each_electrode_apart():
    """`to_head`: the per-patch features averaged over the patches that hold signal, and each
    electrode's over its own tokens, in electrode order; the head reads them beside the readout."""
    emb = embedding(TO_HEAD)
    front_end = emb.front_end
    assert front_end is not None and front_end.summary_norm is not None
    x = coupled(math.pi / 2, 2, 5)
    with torch.no_grad():
        _, summary = front_end(x)
        patch_power, per_channel, _ = front_end.features(x)
    per_patch = FRONT_END.bands * FRONT_END.spatial_filters
    assert summary is not None and summary.shape == (2, per_patch + CHANNELS * 2 * FRONT_END.bands)
    # By hand: the means over both patches, electrode by electrode (time-major tokens).
    own = per_channel.unflatten(1, (PATCHES, CHANNELS)).mean(1).flatten(1)
    expected = torch.nn.functional.layer_norm(
        torch.cat([patch_power.mean(1), own], -1), (summary.shape[1],)
    )
    torch.testing.assert_close(summary, expected, rtol=1e-4, atol=1e-4)
    # A window padded to two patches summarizes as the window of its one real patch.
    padded = x.clone()
    padded[:, CHANNELS:] = 0
    with torch.no_grad():
        torch.testing.assert_close(front_end(padded)[1], front_end(x[:, :CHANNELS])[1])
        patch_power, per_channel, _ = front_end.features(padded)
        first = torch.cat([patch_power[:, 0], per_channel[:, :CHANNELS].flatten(1)], -1)
        torch.testing.assert_close(
            front_end(padded)[1],
            torch.nn.functional.layer_norm(first, (first.shape[1],)),
            rtol=1e-4,
            atol=1e-4,
        )
    # The classifier's head reads readout + summary, and the summary's norm gets a gradient.
    from eeg_emotion.model_settings import ModelSettings

    settings = ModelSettings(source="none", hidden_size=24, readout="channels", front_end=TO_HEAD)
    model = EEGEmotionClassifier(settings, spec())
    assert model.head[-1].in_features == CHANNELS * 24 + summary.shape[1]
    model.train()
    ids = torch.zeros(x.shape[:2], dtype=torch.long)
    out = model(ids, torch.ones_like(ids), labels=torch.tensor([[0], [1]]), values=x)
    out["loss"].backward()
    assert model.embedding is not None and model.embedding.front_end is not None
    norm = model.embedding.front_end.summary_norm
    assert norm is not None and norm.weight.grad is not None and norm.weight.grad.abs().sum() > 0


def test_filter_lengths_and_sub_windows_longer_than_a_patch_are_refused():
    for update, message in (
        ({"filter_length": "2s"}, "longer than a patch"),
        ({"sub_windows": SAMPLES + 1}, "more than a patch"),
    ):
        with pytest.raises(ConfigError, match=message):
            embedding(FRONT_END.model_copy(update=update))


def test_the_front_end_is_refused_for_inputs_that_are_not_patches():
    for kind in ("band_power", "symbols"):
        with pytest.raises(ConfigError, match=r"kind=filterbank .*data\.tokenizer\.kind=patch"):
            load_settings(
                ROOT / "configs" / "tiny.yaml",
                [f"data.tokenizer.kind={kind}", "model.front_end.kind=filterbank"],
            )
    with pytest.raises(ConfigError, match=r"needs data\.tokenizer\.kind=patch"):
        EEGEmbedding(
            InputSpec(kind="eeg", vocab_size=8, pad_id=0, targets=["valence"], num_classes=2,
                      channel=[0], band=[0], time=[0], continuous=True),
            hidden=8, init_std=0.02, front_end=FRONT_END,
        )  # fmt: skip


def test_plan_counts_the_front_end_as_built():
    from eeg_emotion.model.plan import input_spec, plan

    for source, to_head in (("none", "true"), ("tiny", "false")):
        settings = load_settings(
            ROOT / "configs" / "tiny.yaml",
            [f"model.source={source}", "data.tokenizer.kind=patch", "data.tokenizer.patch=0.5s",
             "model.front_end.kind=filterbank", f"model.front_end.to_head={to_head}"],
        )  # fmt: skip
        built = EEGEmotionClassifier(settings.model, input_spec(settings))
        assert built.embedding is not None and built.embedding.front_end is not None
        head = sum(p.numel() for p in built.head.parameters())
        head += sum(p.numel() for p in built.embedding.parameters())
        assert plan(settings, with_data=False).head_params == head, source


def test_the_front_end_trains_saves_loads_evaluates_and_predicts(
    tiny_root, cache, tmp_path, in_process
):
    """The no-LLM patch model with the front end, through the train, evaluate and predict
    commands in this process."""
    from eeg_emotion.cli import evaluate, predict, train
    from eeg_emotion.data import pipeline
    from eeg_emotion.evaluation.inference import window_probs

    run_dir = tmp_path / "run"
    where = [f"data.root={tiny_root}", f"data.cache_dir={cache}", f"output_dir={run_dir}"]
    assert train.main(["--config", str(ROOT / "configs" / "tiny.yaml"), *where, *TRAIN]) == 0
    # It trained: the filters (started as fixed band-passes) and the norms moved.
    head = load_file(str(run_dir / "best" / "head.safetensors"))
    filters = head["embedding.front_end.filters"]
    start = band_pass_bank(4, 32, 128).numpy()  # 0.25 s at DEAP's 128 Hz
    assert filters.shape == start.shape and abs(filters - start).max() > 1e-4
    assert abs(head["embedding.front_end.patch_norm.weight"] - 1).max() > 1e-4
    assert abs(head["embedding.front_end.channel_norm.weight"] - 1).max() > 1e-4
    assert abs(head["embedding.front_end.summary_norm.weight"] - 1).max() > 1e-4  # to_head
    # Loaded: the reloaded model's test probabilities are the saved predictions.
    model = EEGEmotionClassifier.from_pretrained(run_dir / "best")
    assert model.embedding is not None and model.embedding.front_end is not None
    settings = load_settings(run_dir / "config.yaml")
    data = pipeline.build(settings.data, progress=False)
    rows = data.indices("test")
    assert data.values is not None
    probs = window_probs(
        model, data.tokens[rows], data.lengths[rows], data.pad_id, data.values[rows]
    )
    saved = np.load(run_dir / "predictions_test.npz")["probs"]
    np.testing.assert_allclose(probs, saved, atol=1e-5)
    assert evaluate.main([str(run_dir), "--split", "test"]) == 0
    evaluated = json.loads((run_dir / "eval_test.json").read_text())
    results = json.loads((run_dir / "results.json").read_text())
    assert evaluated["valence"] == results["test"]["valence"]
    out = tmp_path / "pred.csv"
    recording = str(tiny_root / "s01.dat")
    assert predict.main([str(run_dir), "--input", recording, "--out", str(out)]) == 0
    with out.open() as f:
        rows_out = list(csv.DictReader(f))
    assert rows_out and all(0 <= float(r["valence_p_high"]) <= 1 for r in rows_out)


def test_a_saved_spec_from_before_the_sampling_rate_loads(tmp_path):
    settings = load_settings(
        ROOT / "configs" / "tiny.yaml", ["model.source=none", "model.hidden_size=16"]
    )
    from eeg_emotion.model.plan import input_spec

    torch.manual_seed(0)
    model = EEGEmotionClassifier(settings.model, input_spec(settings)).eval()
    model.save_pretrained(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "classifier.json").read_text())
    del meta["inputs"]["sampling_rate"], meta["model"]["front_end"]
    (tmp_path / "m" / "classifier.json").write_text(json.dumps(meta))
    loaded = EEGEmotionClassifier.from_pretrained(tmp_path / "m")
    assert loaded.inputs.sampling_rate == 0 and loaded.settings.front_end.kind == "none"
    ids = torch.randint(0, 8, (2, len(loaded.inputs.channel)))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(ids, mask)["logits"]["valence"], model(ids, mask)["logits"]["valence"]
        )
