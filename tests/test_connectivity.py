"""The connectivity baseline: pairwise correlation, imaginary coherence and envelope spread per
band into an L1 logistic regression, its C chosen by trial-grouped CV within the training part;
run, scored and refused by evaluate/predict like the other baselines."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from eeg_emotion.baselines import connectivity, runner
from eeg_emotion.config import load_settings
from eeg_emotion.data import pipeline
from eeg_emotion.data.channels import EEG_CHANNELS
from eeg_emotion.data.synthetic import SyntheticSpec, coupling_design, synthesize
from eeg_emotion.errors import DataError
from eeg_emotion.evaluation import inference, report
from tests.helpers.paths import ROOT
from tests.helpers.training import baseline as run_baseline

CONFIG = ROOT / "configs" / "tiny.yaml"

pytestmark = pytest.mark.slow

# Enough trials that a handful of coupled pairs stand out of 5,120 features: 4 subjects x 80
# trials of 8 s after the pre-trial baseline, two 4 s windows each.
COUPLING = SyntheticSpec(subjects=4, trials=80, samples=1408, effect=2.0, effect_kind="coupling")
WINDOWS = ["data.window=4s", "data.stride=4s", "data.tokenizer.max_tokens=1024"]


def mean_balanced(results: dict, part: str, targets: list[str]) -> float:
    return float(np.mean([results[part][t]["balanced_accuracy"] for t in targets]))


@pytest.fixture(scope="module")
def coupling_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deap-coupling")
    synthesize(root, COUPLING)
    return root


def test_connectivity_finds_planted_coupling_that_band_power_cannot_see(coupling_root, tmp_path):
    scores, infos = {}, {}
    for name in ("connectivity", "band_power_lr"):
        settings = load_settings(
            CONFIG,
            [
                f"data.root={coupling_root}",
                f"data.cache_dir={tmp_path / 'cache'}",
                f"baseline.name={name}",
                *WINDOWS,
            ],
        )
        data = pipeline.build(settings.data, progress=False)
        results, _ = runner.fit_and_score(settings, data, tmp_path)
        scores[name] = {p: mean_balanced(results, p, data.targets) for p in ("val", "test")}
        infos[name] = results["baseline"]
    print(scores)  # mean balanced accuracy over valence and arousal, windows
    conn, lr = scores["connectivity"], scores["band_power_lr"]
    assert conn["val"] > 0.6 and conn["test"] > 0.6, scores
    assert np.mean(list(lr.values())) < 0.58, scores  # channel power does not follow the labels
    assert np.mean(list(conn.values())) - np.mean(list(lr.values())) > 0.08, scores
    # Sparse, and what it kept is what was planted: each coupled pair's imaginary coherence in
    # its band, for its target (the design is read here only, never by the baseline).
    info = infos["connectivity"]
    assert info["features"] == 5 * (2 * 32 * 31 // 2 + 32)
    targets = ["valence", "arousal"]
    for site in coupling_design(COUPLING):
        i, j = sorted(site.channels)
        planted = f"{site.band} icoh {EEG_CHANNELS[i]}-{EEG_CHANNELS[j]}"
        assert planted in info["top_features"][targets[site.target]], info
    assert all(0 < n <= 50 for n in info["nonzero_features"].values()), info


def test_c_is_chosen_on_whole_training_trials_and_test_rows_only_scored(
    tiny_root, tmp_path, monkeypatch
):
    settings = load_settings(
        CONFIG,
        [
            f"data.root={tiny_root}",
            f"data.cache_dir={tmp_path}",
            "baseline.name=connectivity",
            "data.stride=1s",  # overlapping windows: a split trial would leak
        ],
    )
    data = pipeline.build(settings.data, progress=False)
    x = connectivity.connectivity_features(settings, data)
    where = {row.tobytes(): k for k, row in enumerate(x)}
    groups = connectivity.trial_groups(data.rows)
    calls: list[tuple[np.ndarray, np.ndarray]] = []
    fit_predict = connectivity.fit_predict

    def spy(c, x_fit, y_fit, x_out, *args):
        calls.append(
            (
                np.array([where[r.tobytes()] for r in x_fit]),
                np.array([where[r.tobytes()] for r in x_out]),
            )
        )
        return fit_predict(c, x_fit, y_fit, x_out, *args)

    monkeypatch.setattr(connectivity, "fit_predict", spy)
    probs, info = connectivity.fit(settings, data)
    train = set(data.indices("train").tolist())
    cfg = settings.baseline.connectivity
    per_target = len(cfg.c_grid) * cfg.inner_folds
    assert len(calls) == len(data.targets) * (per_target + 1)
    for k, (fitted, scored) in enumerate(calls):
        assert set(fitted.tolist()) <= train  # every fit sees training rows only
        if k % (per_target + 1) < per_target:  # an inner fold: no trial on both sides
            assert set(scored.tolist()) <= train
            assert not set(groups[fitted]) & set(groups[scored])
        else:  # the refit on every training row predicts every row
            assert set(fitted.tolist()) == train and len(scored) == len(x)
    assert set(info["C"]) == set(data.targets)
    for t in data.targets:
        scores = info["inner_cv_balanced_accuracy_per_C"][t]
        assert info["C"][t] == min(c for c in cfg.c_grid if scores[str(c)] == max(scores.values()))
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def baseline(root: Path, out: Path, *overrides: str) -> subprocess.CompletedProcess:
    return run_baseline(root, out, "baseline.name=connectivity", *overrides)


@pytest.fixture(scope="module")
def run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("connectivity") / "run"
    baseline(tiny_root, out)
    return out


def test_the_runner_writes_a_baseline_run_folder(run, tiny_root):
    for f in ("config.yaml", "splits.json", "results.json", "test_results.txt"):
        assert (run / f).exists(), f
    assert json.loads((run / "status.json").read_text()) == {
        "status": "finished",
        "baseline": "connectivity",
    }
    results = json.loads((run / "results.json").read_text())
    info = results["baseline"]
    settings = load_settings(run / "config.yaml")
    grid = settings.baseline.connectivity.c_grid
    assert info["name"] == "connectivity" and settings.baseline.name == "connectivity"
    assert set(info["C"]) == {"valence", "arousal"} and set(info["C"].values()) <= set(grid)
    assert info["inner_folds"] == 3 and info["features"] == 5120
    assert info["seconds"] < 60
    data = pipeline.build(settings.data, progress=False)
    for part in ("val", "test"):
        pred = np.load(run / f"predictions_{part}.npz")
        np.testing.assert_array_equal(pred["rows"], np.asarray(data.rows)[data.indices(part)])
        np.testing.assert_allclose(pred["probs"].sum(-1), 1.0, atol=1e-5)
        assert results[part]["valence"]["support"] == len(data.indices(part))
    # The same settings again refit the folder; report writes it up like any baseline's.
    baseline(tiny_root, run)
    assert "Baseline details" in report.write_report(run)


def test_evaluate_and_predict_point_at_its_results_as_for_band_power_lr(run, tiny_root, tmp_path):
    for call in (
        lambda: inference.evaluate_run(run, "test", [f"data.root={tiny_root}"]),
        lambda: inference.predict_files(run, tiny_root / "s01.dat", tmp_path / "p.csv"),
    ):
        with pytest.raises(DataError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"{run}: is a baseline run folder (connectivity)")
        assert f"its results are in {run / 'results.json'}" in message
    assert not (tmp_path / "p.csv").exists()
