"""Baselines on the LLM runs' data settings and splits, run as users run them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.preprocessing import StandardScaler

from eeg_emotion.baselines.band_power_lr import band_power_features
from eeg_emotion.config import load_settings
from eeg_emotion.data import pipeline
from eeg_emotion.data.synthetic import SyntheticSpec, synthesize
from eeg_emotion.data.tokenize import BandPowerTokenizer
from tests.helpers.paths import ROOT
from tests.helpers.training import baseline

pytestmark = pytest.mark.slow
# Channels that carry the synthetic valence (frontal alpha asymmetry) and arousal (posterior
# alpha, beta) effects: a small input keeps EEGNet to seconds per epoch on a CPU.
CHANNELS = "data.channels=[F3,F4,AF3,AF4,F7,F8,O1,O2,P3,P4,Pz,Oz]"


@pytest.fixture(scope="module")
def strong_root(tmp_path_factory) -> Path:
    """4 subjects x 30 trials x 13 s of synthetic DEAP with a strong label effect."""
    root = tmp_path_factory.mktemp("deap-strong")
    synthesize(root, SyntheticSpec(subjects=4, trials=30, samples=1664, effect=3.0, seed=0))
    return root


@pytest.mark.parametrize(
    ("name", "extra", "floor"),
    [
        ("band_power_lr", [], 0.65),
        (
            "eegnet",
            [
                CHANNELS,
                "baseline.eegnet.epochs=12",
                "baseline.eegnet.batch_size=16",
                "baseline.eegnet.lr=0.003",
            ],
            0.6,
        ),
    ],
)
def test_baseline_beats_chance_at_strong_effect_with_the_llm_run_layout(
    strong_root, tmp_path, name, extra, floor
):
    out = tmp_path / name
    res = baseline(strong_root, out, f"baseline.name={name}", *extra)
    assert "trials (mean probability" in res.stdout
    for f in ("config.yaml", "splits.json", "results.json", "test_results.txt"):
        assert (out / f).exists(), f
    results = json.loads((out / "results.json").read_text())
    test = results["test"]
    assert results["baseline"]["name"] == name
    # Above chance, honestly: mean balanced accuracy over targets, windows and trials.
    for level in (test, test["trial_level"]):
        assert np.mean([level[t]["balanced_accuracy"] for t in ("valence", "arousal")]) > floor
    assert (
        min(
            test["trial_level"][t]["p_value_balanced_accuracy_vs_chance"]
            for t in ("valence", "arousal")
        )
        < 0.05
    )
    assert set(test["per_subject"]) == {"1", "2", "3", "4"}
    # The same split an LLM run with these data settings gets, and the saved settings reload.
    settings = load_settings(out / "config.yaml")
    assert settings.baseline.name == name
    data = pipeline.build(settings.data, progress=False)
    saved = json.loads((out / "splits.json").read_text())
    assert {p: [tuple(k) for k in v] for p, v in saved.items()} == data.split
    pred = np.load(out / "predictions_test.npz")
    assert len(pred["rows"]) == test["valence"]["support"] == len(data.indices("test"))
    np.testing.assert_allclose(pred["probs"].sum(-1), 1.0, atol=1e-5)


def test_band_power_lr_picks_c_on_val_and_uses_training_rows_only(strong_root, tmp_path):
    out = tmp_path / "lr"
    baseline(
        strong_root,
        out,
        "baseline.c_grid=[1.0,0.001,0.00001]",  # val picks the middle one: not by its place
        "data.split.protocol=loso",
        "data.normalize=subject",  # the held-out subject gets the pooled training statistics
    )
    info = json.loads((out / "results.json").read_text())["baseline"]
    scores = info["val_mean_balanced_accuracy_per_C"]
    assert set(scores) == {"1.0", "0.001", "1e-05"}
    assert info["C"] == float(max(scores, key=scores.get))
    assert info["features"] == 32 * 4  # DE per channel and band
    # The same choice and model from plain sklearn: scaled on train, fitted on train for each
    # C, C by val's mean balanced accuracy, every row predicted by that C's model.
    settings = load_settings(out / "config.yaml")
    data = pipeline.build(settings.data, progress=False)
    x, y = band_power_features(settings, data), np.asarray(data.labels)
    train, val, test = (data.indices(part) for part in ("train", "val", "test"))
    xs = StandardScaler().fit(x[train]).transform(x)

    def predicted(c: float, rows: np.ndarray) -> np.ndarray:
        fits = [LogisticRegression(C=c, max_iter=5000).fit(xs[rows], y[rows, i]) for i in (0, 1)]
        return np.stack([f.predict_proba(xs) for f in fits], axis=1)  # (rows, targets, classes)

    probs = {c: predicted(c, train) for c in (1.0, 0.001, 0.00001)}
    on_val = {
        c: np.mean([balanced_accuracy_score(y[val, i], p[val, i].argmax(-1)) for i in (0, 1)])
        for c, p in probs.items()
    }
    assert scores == {str(c): round(float(v), 4) for c, v in on_val.items()}
    chosen = max(on_val, key=on_val.__getitem__)
    assert chosen == 0.001 and len(set(on_val.values())) == 3  # a wrong choice shows
    assert info["C"] == chosen
    saved = np.load(out / "predictions_test.npz")
    np.testing.assert_array_equal(saved["rows"], np.asarray(data.rows)[test])
    np.testing.assert_allclose(saved["probs"], probs[chosen][test], atol=1e-5)
    # Neither another C's model nor one that also saw the val rows predicts these.
    for wrong in (probs[1.0], probs[0.00001], predicted(chosen, np.concatenate([train, val]))):
        assert np.abs(saved["probs"] - wrong[test]).max() > 1e-3
    test_subjects = {k[0] for k in json.loads((out / "splits.json").read_text())["test"]}
    assert test_subjects == {1}  # loso fold 0


def test_unknown_baseline_is_a_clear_settings_error(strong_root, tmp_path):
    res = baseline(strong_root, tmp_path / "x", "baseline.name=svm", expect=2)
    assert "baseline.name" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "x" / "results.json").exists()


def test_a_baseline_never_overwrites_another_run(strong_root, tmp_path):
    llm = tmp_path / "llm"
    (llm / "best").mkdir(parents=True)
    (llm / "results.json").write_text('{"test": {}}')
    res = baseline(strong_root, llm, expect=2)
    assert "already holds an LLM training run" in res.stderr
    assert (llm / "results.json").read_text() == '{"test": {}}'
    other = tmp_path / "eegnet"
    other.mkdir()
    (other / "results.json").write_text('{"baseline": {"name": "eegnet"}}')
    res = baseline(strong_root, other, "baseline.name=band_power_lr", expect=2)
    assert "already holds eegnet" in res.stderr


@pytest.mark.parametrize(
    "overrides",
    [
        ["data.normalize=trial"],
        ["data.normalize=subject", "data.split.protocol=loso", "data.split.fold=2"],
        ["data.normalize=none"],
    ],
)
def test_baseline_features_are_the_llm_tokens_before_quantization(tiny_root, tmp_path, overrides):
    # One sub-window per window: quantizing the baseline's features with the dataset's edges must
    # give the dataset's tokens exactly, so both see the same, training-only normalization.
    settings = load_settings(
        ROOT / "configs" / "tiny.yaml",
        [
            f"data.root={tiny_root}",
            f"data.cache_dir={tmp_path}",
            "data.tokenizer.sub_window=2s",
            "data.tokenizer.sub_stride=2s",
            *overrides,
        ],
    )
    data = pipeline.build(settings.data, progress=False)
    x = band_power_features(settings, data)
    pre = data.preprocessor
    n_ch = pre.num_channels
    tok = BandPowerTokenizer(settings.data, n_ch, pre.window)
    tok.load_edges(pre.edges)
    ids, _ = tok.encode(x.reshape(len(x), 1, n_ch, -1))
    np.testing.assert_array_equal(ids, np.asarray(data.tokens))
