"""Scalp maps (MNE's plot_topomap) of the band-power LR's coefficients, checked on synthetic
data whose planted valence effect is frontal alpha asymmetry."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eeg_emotion.data.synthetic import LEFT_FRONTAL, RIGHT_FRONTAL, SyntheticSpec, synthesize
from eeg_emotion.evaluation.scalp_maps import Importance
from tests.helpers.paths import ROOT

PNG = b"\x89PNG\r\n\x1a\n"


def test_lr_maps_rank_the_planted_sites_first(tmp_path: Path, in_process) -> None:
    from eeg_emotion.cli.baseline import main
    from eeg_emotion.evaluation.report import write_report

    root = tmp_path / "deap"
    synthesize(root, SyntheticSpec(subjects=3, trials=12, samples=1664, seed=0, effect=4.0))
    out = tmp_path / "lr"
    settings = [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", f"output_dir={out}"]
    assert main(["--config", str(ROOT / "configs" / "tiny.yaml"), *settings]) == 0
    maps = Importance.load(out)
    assert maps is not None and maps.bands == ["theta", "alpha", "beta", "gamma"]
    # Valence moves alpha power in opposite directions over the two frontal sides.
    assert set(maps.ranking("valence", band=1)[:3]) <= set(LEFT_FRONTAL + RIGHT_FRONTAL)
    # Arousal raises beta and gamma power everywhere: positive coefficients on the whole.
    assert np.mean(maps.array("arousal")[:, 2:]) > 0
    for target in ("valence", "arousal"):
        assert (out / "plots" / f"scalp_{target}.png").read_bytes()[:8] == PNG
    report = write_report(out)
    assert "![scalp_valence](plots/scalp_valence.png)" in report
