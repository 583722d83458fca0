"""Scalp maps (MNE's plot_topomap) of what the baselines read, checked on synthetic data whose
planted valence effect is frontal alpha asymmetry: the band-power LR's coefficients and
EEGNet's occlusion importance. Runs save importance.json; `report` draws the maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from eeg_emotion.data.synthetic import LEFT_FRONTAL, RIGHT_FRONTAL, SyntheticSpec, synthesize
from eeg_emotion.evaluation.importance import METHOD
from eeg_emotion.evaluation.scalp_maps import Importance
from tests.helpers.paths import ROOT

PNG = b"\x89PNG\r\n\x1a\n"
# Where the generator plants valence: alpha power moves in opposite directions over the two
# frontal sides.
VALENCE_SITES = set(LEFT_FRONTAL + RIGHT_FRONTAL)


@pytest.fixture(scope="module")
def strong(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset's shape with every label effect 4 times as strong (shared)."""
    root = tmp_path_factory.mktemp("deap-strong")
    synthesize(root, SyntheticSpec(subjects=3, trials=12, samples=1664, seed=0, effect=4.0))
    return root


def fit_baseline(root: Path, out: Path, *overrides: str) -> None:
    from eeg_emotion.cli.baseline import main

    settings = [f"data.root={root}", f"data.cache_dir={out.parent / 'cache'}", f"output_dir={out}"]
    assert main(["--config", str(ROOT / "configs" / "tiny.yaml"), *settings, *overrides]) == 0


def drawn_by_report(out: Path, targets: tuple[str, ...]) -> None:
    """The run saved importance.json but drew no map; the report draws and links them."""
    from eeg_emotion.evaluation.report import write_report

    assert not list((out / "plots").glob("scalp_*.png"))
    report = write_report(out)
    for target in targets:
        assert (out / "plots" / f"scalp_{target}.png").read_bytes()[:8] == PNG
        assert f"![scalp_{target}](plots/scalp_{target}.png)" in report


def test_lr_maps_rank_the_planted_sites_first(strong: Path, tmp_path: Path, in_process) -> None:
    out = tmp_path / "lr"
    fit_baseline(strong, out)
    maps = Importance.load(out)
    assert maps is not None and maps.bands == ["theta", "alpha", "beta", "gamma"]
    assert set(maps.ranking("valence", band=1)[:3]) <= VALENCE_SITES
    # Arousal raises beta and gamma power everywhere: positive coefficients on the whole.
    assert np.mean(maps.array("arousal")[:, 2:]) > 0
    drawn_by_report(out, ("valence", "arousal"))


def test_eegnet_maps_rank_the_planted_sites_first(strong: Path, tmp_path: Path, in_process) -> None:
    out = tmp_path / "eegnet"
    eegnet = ["baseline.eegnet.epochs=12", "baseline.eegnet.batch_size=16"]
    fit_baseline(strong, out, "baseline.name=eegnet", "baseline.eegnet.lr=0.003", *eegnet)
    test = json.loads((out / "results.json").read_text())["test"]["trial_level"]
    assert test["valence"]["balanced_accuracy"] >= 0.75  # it learned valence
    maps = Importance.load(out)
    assert maps is not None and maps.bands is None and maps.method == METHOD
    # Its occlusion importance: the channel it needs most for valence is a planted one, and
    # the planted channels matter more than the others on average.
    assert maps.ranking("valence")[0] in VALENCE_SITES
    importance = np.abs(maps.array("valence")[:, 0])
    planted = np.isin(maps.channels, list(VALENCE_SITES))
    assert importance[planted].mean() > importance[~planted].mean()
    drawn_by_report(out, ("valence",))
