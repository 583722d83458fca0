"""Occlusion importance (`evaluation.importance`) on models whose dependence is known: a model
that reads one channel (or one channel's band) must lose score when that channel is occluded
and lose exactly nothing when any other is; and an LLM run gets its importance.json and scalp
maps from `report --importance`."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from eeg_emotion.data.channels import electrode_ids
from eeg_emotion.data.tokenize import Layout
from eeg_emotion.evaluation import importance
from eeg_emotion.evaluation.importance import (
    balanced_log_likelihood,
    classifier_groups,
    classifier_importance,
    occlusion,
    row_batches,
    signal_importance,
)
from eeg_emotion.evaluation.scalp_maps import Importance

TARGETS = ["valence", "arousal"]
PNG = b"\x89PNG\r\n\x1a\n"


def logits_of(x: torch.Tensor) -> torch.Tensor:
    """(batch,) evidence -> (batch, targets, 2) probabilities, both targets read from it."""
    logits = torch.stack([torch.zeros_like(x), x], -1)
    return torch.softmax(torch.stack([logits, 0.5 * logits], 1), -1)


def fake_data(kind: str, channels: list[str], layout: Layout, n: int, **arrays: Any) -> Any:
    """What the importance functions read of a TokenData: rows 0..n/2 train, the rest test."""
    rng = np.random.default_rng(1)
    parts = {"train": np.arange(n // 2), "val": np.arange(0), "test": np.arange(n // 2, n)}
    bands = {"theta": (4, 8), "alpha": (8, 14), "beta": (14, 31), "gamma": (31, 45)}
    return SimpleNamespace(
        tokenizer_kind=kind,
        preprocessor=SimpleNamespace(channels=channels),
        settings=SimpleNamespace(tokenizer=SimpleNamespace(bands=bands)),
        layout=layout,
        targets=TARGETS,
        labels=rng.integers(0, 2, (n, 2)),
        indices=lambda part: parts[part],
        lengths=np.full(n, len(layout.channel)),
        pad_id=0,
        **arrays,
    )


def test_occlusion_drops_only_for_the_channel_the_model_reads() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5, 16)).astype(np.float32)
    labels = np.stack([x[:, 3].mean(-1) > 0, rng.integers(0, 2, 40)], 1).astype(np.int64)
    neutral = np.full((5, 16), 0.25, np.float32)

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return logits_of(8 * batch["x"][:, 3].mean(-1))  # channel 3 only

    groups = np.eye(5, dtype=bool)
    # Batches of 16 rows: the last one partial.
    drop = occlusion(
        forward, row_batches({"x": x}, 16), {"x": torch.from_numpy(neutral)}, labels, groups
    )
    assert drop.shape == (5, 2)
    assert drop[3, 0] > 0.5  # valence follows channel 3: without it, the true class drops
    assert np.all(np.delete(drop, 3, axis=0) == 0)
    # The whole channel of every test window replaced at once, as by hand.
    occluded = x.copy()
    occluded[:, 3] = neutral[3]
    by_hand = [forward({"x": torch.from_numpy(v)}).numpy() for v in (x, occluded)]
    expected = balanced_log_likelihood(by_hand[0], labels) - balanced_log_likelihood(
        by_hand[1], labels
    )
    np.testing.assert_allclose(drop[3], expected, rtol=1e-6)


def test_eegnet_occludes_its_channel_features_as_it_would_the_channel() -> None:
    from eeg_emotion.baselines.eegnet import EEGNet
    from eeg_emotion.config import EEGNetSettings

    torch.manual_seed(0)
    channels, reads = ["Fz", "Cz", "Pz", "Oz", "C3", "C4"], 4
    model = EEGNet(len(channels), 64, 2, 2, EEGNetSettings(kernel="0.25s"), 128).eval()
    with torch.no_grad():  # spatial filters that read channel 4 alone
        spatial: Any = model.features[2].weight
        spatial[:, :, [i for i in range(len(channels)) if i != reads]] = 0
        for bn in (model.features[1], model.features[3]):
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
    x = np.random.default_rng(0).normal(1.0, 1.0, (30, len(channels), 64)).astype(np.float32)
    data = fake_data("signal", channels, Layout(*[np.zeros(0)] * 3), len(x))
    x[data.indices("train")] += 2.0  # the neutral value is the training rows', not the test's
    found = signal_importance(model, x, data, batch_size=8)
    assert found is not None and found.channels == channels and found.bands is None
    values = found.array("valence")[:, 0]
    assert values[reads] != 0 and np.all(np.delete(values, reads) == 0)
    assert found.ranking("arousal")[0] == channels[reads]
    # The same drops as occluding the raw signal's channel with its training mean.
    test, train = data.indices("test"), data.indices("train")
    mean = x[train].mean((0, 2))[:, None] * np.ones((1, 64), np.float32)

    def raw(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.softmax(model(batch["x"]), -1)

    labels = data.labels[test].astype(np.int64)
    groups = np.eye(len(channels), dtype=bool)
    batches = row_batches({"x": x[test]}, 8)
    brute = occlusion(raw, batches, {"x": torch.from_numpy(mean)}, labels, groups)
    np.testing.assert_allclose(found.array("valence")[:, 0], brute[:, 0], atol=1e-5)


class ReadsPositions(torch.nn.Module):
    """A classifier whose evidence is the mean input at `positions` (symbols or values)."""

    def __init__(self, positions: np.ndarray, offset: float) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(4.0))
        self.positions = torch.from_numpy(np.flatnonzero(positions))
        self.offset = offset

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, values: Any = None
    ) -> dict[str, Any]:
        read = (input_ids if values is None else values)[:, self.positions].float()
        x = self.scale * (read.reshape(len(read), -1).mean(-1) - self.offset)
        logits = torch.stack([torch.zeros_like(x), x], -1)
        return {"logits": {t: logits for t in TARGETS}}


def test_patch_inputs_occlude_each_electrode_with_its_training_mean() -> None:
    channels = ["Fp1", "Fp2", "Cz", "O1"]
    ids = np.asarray(electrode_ids(channels))
    # Time-major patch positions: every electrode's first patch, then the second.
    layout = Layout(np.tile(ids, 3), np.full(12, -1), np.repeat(np.arange(3), 4))
    n, reads = 20, 2
    values = np.random.default_rng(0).normal(size=(n, 12, 8)).astype(np.float16)
    values[: n // 2, layout.channel == ids[reads]] = 2.0  # its training mean
    data = fake_data("patch", channels, layout, n, values=values, tokens=np.zeros((n, 12)))
    model = ReadsPositions(layout.channel == ids[reads], offset=2.0)
    found = classifier_importance(model, data, batch_size=6)  # type: ignore[arg-type]
    assert found is not None and found.bands is None and found.channels == channels
    drop = found.array("valence")[:, 0]
    assert np.all(np.delete(drop, reads) == 0)
    # Set to its training mean the evidence is 0: probability 1/2 for every test window.
    test = data.indices("test")
    with torch.no_grad():
        logits = model(torch.zeros(1), torch.zeros(1), torch.from_numpy(values[test]))["logits"]
    probs = torch.stack([torch.softmax(v, -1) for v in logits.values()], 1).numpy()
    base = balanced_log_likelihood(probs, data.labels[test])
    np.testing.assert_allclose(drop[reads], base[0] - np.log(0.5), rtol=1e-5)


def test_band_power_groups_are_channel_and_band_text_has_none() -> None:
    from eeg_emotion.data.tokenize import BandPowerTokenizer
    from tests.helpers.paths import data_settings

    settings = data_settings(Path("unused"), Path("unused"))
    layout = BandPowerTokenizer(settings, 3, 256).layout()  # 2 sub-windows x 3 channels x 4
    data = fake_data("band_power", ["F3", "F4", "Pz"], layout, 4)
    found = classifier_groups(data)
    assert found is not None
    groups, bands = found
    assert bands == ["theta", "alpha", "beta", "gamma"] and groups.shape == (
        12,
        len(layout.channel),
    )
    for i in range(3):
        for b in range(4):
            expected = (layout.channel == i) & (layout.band == b)
            assert expected.sum() == 2 and np.array_equal(groups[i * 4 + b], expected)
    assert classifier_groups(fake_data("text", ["F3"], layout, 4)) is None


@pytest.fixture(scope="module")
def llm_run(tiny_root: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LLM run on six channels (band-power tokens), trained once for this file."""
    from tests.helpers.training import command, run

    out = tmp_path_factory.mktemp("importance") / "run"
    run(command(tiny_root, cache, out, "data.channels=[Fp1,Fp2,F3,F4,O1,O2]"))
    return out


def test_llm_run_gets_its_maps_from_report(
    llm_run: Path, monkeypatch: pytest.MonkeyPatch, in_process
) -> None:
    from eeg_emotion.cli.report import main
    from eeg_emotion.training import tracking

    assert Importance.load(llm_run) is None  # training pays nothing for the maps
    logged: dict[str, Any] = {}
    fake_run = SimpleNamespace(log=logged.update, finish=lambda: None)
    monkeypatch.setattr(tracking, "open_run", lambda *a, **k: fake_run)
    assert main([str(llm_run), "--importance"]) == 0
    maps = Importance.load(llm_run)
    assert maps is not None and maps.channels == ["Fp1", "Fp2", "F3", "F4", "O1", "O2"]
    assert maps.bands == ["theta", "alpha", "beta", "gamma"]
    assert np.isfinite(maps.array("valence")).all() and np.abs(maps.array("arousal")).max() > 0
    report = (llm_run / "report.md").read_text()
    for target in TARGETS:
        assert (llm_run / "plots" / f"scalp_{target}.png").read_bytes()[:8] == PNG
        assert f"![scalp_{target}](plots/scalp_{target}.png)" in report
    assert sorted(logged) == ["scalp_arousal", "scalp_valence"]  # into the run's W&B run


def test_llm_importance_reads_the_run_layout(llm_run: Path) -> None:
    """On the run's own token data: a classifier that reads the symbols of one channel's band
    moves only that cell of the map."""
    from eeg_emotion.config import load_settings
    from eeg_emotion.data import pipeline

    data = pipeline.build(load_settings(llm_run / "config.yaml").data, progress=False)
    channel, band = 3, 1
    reads = (data.layout.channel == channel) & (data.layout.band == band)
    found = classifier_importance(ReadsPositions(reads, offset=3.5), data)  # type: ignore[arg-type]
    assert found is not None
    for target in TARGETS:
        drop = found.array(target)
        assert drop[channel, band] != 0
        drop[channel, band] = 0
        assert np.all(drop == 0)
    assert importance.run_importance(llm_run) is not None  # saved: read back, not recomputed
