"""The `patch` input: raw-signal patches per channel, a learned encoder, electrode-keyed channel
embeddings; built, trained, saved, loaded, evaluated and predicted (data-parallel:
tests/test_train.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from eeg_emotion.config import DataSettings, Settings, load_settings
from eeg_emotion.data import pipeline
from eeg_emotion.data.channels import EEG_CHANNELS, ELECTRODES, electrode_ids
from eeg_emotion.data.preprocessor import Preprocessor
from eeg_emotion.data.readers import deap
from eeg_emotion.errors import ConfigError
from eeg_emotion.evaluation.inference import window_probs
from eeg_emotion.model.backbone import load_backbone
from eeg_emotion.model.classifier import EEGEmotionClassifier
from eeg_emotion.model.embedding import EEGEmbedding, InputSpec
from tests.helpers.paths import ROOT
from tests.helpers.training import PY, command, results, run

PATCH = ["data.tokenizer.kind=patch", "data.tokenizer.patch=0.5s"]


def patch_settings(root: Path, cache: Path, **tokenizer: object) -> DataSettings:
    tiny = load_settings(ROOT / "configs" / "tiny.yaml").data
    tok = tiny.tokenizer.model_copy(update={"kind": "patch", "patch": "0.5s", **tokenizer})
    return tiny.model_copy(update={"root": str(root), "cache_dir": str(cache), "tokenizer": tok})


def test_patches_are_the_normalized_signal_in_token_order(tiny_root, tmp_path):
    settings = patch_settings(tiny_root, tmp_path / "cache")
    data = pipeline.build(settings, progress=False)
    assert data.tokenizer_kind == "patch" and isinstance(data.values, np.memmap)
    assert data.values.dtype == np.float16  # stored compactly, memory-mapped
    patch, channels = 64, len(EEG_CHANNELS)  # 0.5 s at 128 Hz; 2 s windows: 4 patches
    assert data.values.shape == (data.meta["num_rows"], 4 * channels, patch)
    # Independently: the first window of subject 1's first trial, cut by hand.
    raw = deap.read_subject(tiny_root / "s01.dat").data[0, :channels]
    start = int(settings.baseline_seconds * settings.sampling_rate)  # baseline: drop
    trial = raw[:, start:].astype(np.float64)
    window = trial[:, : 4 * patch]
    z = (window - trial.mean(1, keepdims=True)) / trial.std(1, keepdims=True)  # normalize: trial
    expected = z.reshape(channels, 4, patch).transpose(1, 0, 2).reshape(-1, patch)  # time-major
    np.testing.assert_allclose(data.values[0].astype(np.float64), expected, atol=4e-3)
    # Each position's channel is its electrode's index in the 10-20/10-10 list; time its patch.
    ids = np.asarray(electrode_ids(EEG_CHANNELS))
    np.testing.assert_array_equal(data.layout.channel, np.tile(ids, 4))
    np.testing.assert_array_equal(data.layout.time, np.repeat(np.arange(4), channels))
    assert [ELECTRODES[i] for i in data.layout.channel[:3]] == ["Fp1", "AF3", "F3"]
    # channel_major: every patch of the first channel first.
    major = pipeline.build(
        patch_settings(tiny_root, tmp_path / "cache", layout="channel_major"), progress=False
    )
    np.testing.assert_array_equal(major.values[0, :4], data.values[0, ::channels][:4])


def test_electrode_names_in_any_spelling_and_unknown_ones_refused(tiny_root, tmp_path):
    assert electrode_ids(["FP1", "fz", "T3", "CB2"]) == [
        ELECTRODES.index(n) for n in ("Fp1", "Fz", "T7", "CB2")
    ]
    with pytest.raises(ConfigError, match="'GSR' is not one"):
        electrode_ids(["Fz", "GSR"])
    # Peripheral channels have no electrode name: the build says so before reading anything.
    settings = patch_settings(tiny_root, tmp_path / "cache").model_copy(update={"channels": "all"})
    with pytest.raises(ConfigError, match="10-20/10-10 electrode name"):
        pipeline.build(settings, progress=False)


def test_channel_embedding_is_keyed_by_electrode_name_across_montages():
    """One model reads another montage: the rows of Fz and Cz are the same whichever position
    (and whichever dataset's channel list) they come at."""

    def spec(names: list[str]) -> InputSpec:
        ids = electrode_ids(names)
        return InputSpec(
            kind="eeg", vocab_size=1, pad_id=0, targets=["valence"], num_classes=2,
            channel=ids, band=[-1] * len(ids), time=[0] * len(ids), patch=16,
            patch_encoder_width=32,
        )  # fmt: skip

    torch.manual_seed(0)
    deap_order = EEGEmbedding(spec(["Fp1", "Fz", "Cz"]), hidden=24, init_std=0.02)
    other = EEGEmbedding(spec(["CZ", "FZ"]), hidden=24, init_std=0.02)  # SEED's spelling
    other.load_state_dict(deap_order.state_dict())  # same tables: one row per electrode
    x = torch.randn(1, 3, 16)
    a = deap_order(torch.zeros(1, 3, dtype=torch.long), x)
    b = other(torch.zeros(1, 2, dtype=torch.long), x[:, [2, 1]])
    torch.testing.assert_close(b, a[:, [2, 1]])


def test_the_encoder_reads_phase_that_band_power_cannot():
    """Two patches with the same power spectrum and the same first sample, differing only in
    phase, get clearly different vectors; so does a patch changed in its last sample only.
    "Clearly" is against the distance between two unrelated noise patches."""
    spec = InputSpec(
        kind="eeg", vocab_size=1, pad_id=0, targets=["valence"], num_classes=2,
        channel=[0], band=[-1], time=[0], patch=64, patch_encoder_width=32,
    )  # fmt: skip
    torch.manual_seed(0)
    emb = EEGEmbedding(spec, hidden=24, init_std=0.02)
    t = torch.arange(64) / 64
    # 8 whole cycles at phases pi/4 and 3pi/4: equal |FFT|, equal first sample sin(pi/4).
    early, late = (torch.sin(2 * torch.pi * 8 * t + torch.pi * phase) for phase in (0.25, 0.75))
    assert early[0] == pytest.approx(late[0].item(), abs=1e-6)
    torch.testing.assert_close(torch.fft.rfft(early).abs(), torch.fft.rfft(late).abs())
    noise = torch.randn(2, 64)
    nudged = noise[0].clone()
    nudged[-1] += 1.0  # one standard deviation of the normalized signal, in the last sample
    with torch.no_grad():
        out = emb(
            torch.zeros(5, 1, dtype=torch.long), torch.stack([early, late, *noise, nudged])[:, None]
        )
    vec = out[:, 0]
    unrelated = (vec[2] - vec[3]).norm()
    assert (vec[0] - vec[1]).norm() > 0.3 * unrelated
    assert (vec[2] - vec[4]).norm() > 0.05 * unrelated


def test_patch_model_trains_saves_loads_evaluates_and_predicts(tiny_root, cache, tmp_path):
    """With the tiny config's defaults (dropout included)."""
    run_dir = tmp_path / "run"
    out = run(command(tiny_root, cache, run_dir, *PATCH))
    assert "test (best model from step" in out.stdout
    inputs = json.loads((run_dir / "best" / "classifier.json").read_text())["inputs"]
    assert inputs["patch"] == 64 and len(inputs["channel"]) == 128  # 32 channels x 4 patches
    # The encoder trained: its weights in best/ differ from a fresh model's.
    head = load_file(str(run_dir / "best" / "head.safetensors"))
    encoder = [k for k in head if k.startswith("embedding.patch.")]
    assert encoder, sorted(head)
    settings = load_settings(run_dir / "config.yaml")
    data = pipeline.build(settings.data, progress=False)
    fresh = EEGEmotionClassifier(settings.model, InputSpec.from_data(data))
    start = {k: v.detach().numpy() for k, v in fresh.embedding.state_dict().items()}
    moved = [k for k in encoder if not np.allclose(head[k], start[k.removeprefix("embedding.")])]
    assert len(moved) == len(encoder), set(encoder) - set(moved)
    # Saved and loaded: the reloaded model's test probabilities are the saved predictions.
    model = EEGEmotionClassifier.from_pretrained(run_dir / "best")
    assert model.inputs.patch == 64 and model.inputs.channel == data.layout.channel.tolist()
    rows = data.indices("test")
    assert data.values is not None
    probs = window_probs(
        model, data.tokens[rows], data.lengths[rows], data.pad_id, data.values[rows]
    )
    saved = np.load(run_dir / "predictions_test.npz")
    np.testing.assert_allclose(saved["probs"], probs, atol=1e-5)
    # evaluate.py gives the trial-level numbers of results.json.
    run([PY, "launch/evaluate.py", str(run_dir), "--split", "test"])
    evaluated = json.loads((run_dir / "eval_test.json").read_text())
    for target in ("valence", "arousal"):
        assert evaluated[target] == results(run_dir)["test"][target]
    assert evaluated["trial_level"] == results(run_dir)["test"]["trial_level"]
    # predict.py on a recording reads its patches the same way (normalize=trial: no
    # training statistics involved), window for window.
    subject = int(data.rows[rows[0], 0])
    csv_path = tmp_path / "pred.csv"
    run([PY, "launch/predict.py", str(run_dir), "--input", str(tiny_root / f"s{subject:02d}.dat"),
         "--out", str(csv_path)])  # fmt: skip
    with csv_path.open() as f:
        lines = [r for r in csv.DictReader(f) if r["level"] == "window"]
    pre = Preprocessor.load(run_dir / "best")
    own = np.flatnonzero(np.asarray(data.rows)[:, 0] == subject)
    trial_keys = np.asarray(data.rows)[own, 1]
    first_trial = own[trial_keys == trial_keys[0]]
    assert pre.tokenizer.kind == "patch"
    for w, row in enumerate(first_trial):
        p = float(lines[w]["valence_p_high"])
        expect = window_probs(model, data.tokens[[row]], data.lengths[[row]], 0, data.values[[row]])
        assert abs(p - float(expect[0, 0, 1])) < 2e-4, (w, p, expect[0, 0])


# Data-parallel: tests/test_train.py trains the patch model on 2 processes as on 1.


def test_random_init_backbone_is_seeded_and_not_the_pretrained_one():
    settings = Settings.model_validate(
        {"model": {"source": "embedded", "precision": "fp32", "num_layers": 1}}
    ).model
    pretrained = load_backbone(settings)
    random_a = load_backbone(settings.model_copy(update={"init": "random"}))
    random_b = load_backbone(settings.model_copy(update={"init": "random"}))
    name = "layers.0.self_attn.q_proj.weight"
    a, b = random_a.state_dict()[name], random_b.state_dict()[name]
    torch.testing.assert_close(a, b)  # the same on every rank and every run
    assert not torch.allclose(a, pretrained.state_dict()[name])
    other = load_backbone(settings.model_copy(update={"init": "random", "init_seed": 1}))
    assert not torch.allclose(a, other.state_dict()[name])
