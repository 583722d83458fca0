from __future__ import annotations

from pathlib import Path

import pytest

from eeg_emotion.config import DataSettings, load_settings
from eeg_emotion.data.synthetic import SyntheticSpec, synthesize

ROOT = Path(__file__).resolve().parents[1]
TINY = SyntheticSpec(subjects=3, trials=12, samples=1664, seed=0)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 subjects x 12 trials x 13 s of synthetic DEAP (shared, read-only)."""
    root = tmp_path_factory.mktemp("deap-tiny")
    synthesize(root, TINY)
    return root


@pytest.fixture(autouse=True)
def _project_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One converted embedded tokenizer per test session, never in the user's home.
    home = tmp_path_factory.getbasetemp() / "eeg-emotion-home"
    monkeypatch.setenv("EEG_EMOTION_HOME", str(home))


def data_settings(root: Path, cache: Path, *overrides: str) -> DataSettings:
    """configs/tiny.yaml pointed at `root`, with extra overrides."""
    base = [f"data.root={root}", f"data.cache_dir={cache}"]
    return load_settings(ROOT / "configs" / "tiny.yaml", [*base, *overrides]).data


def zero3_json(folder: Path) -> Path:
    """ds_configs/zero2.json turned into ZeRO-3 (which training refuses at start)."""
    import json

    config = json.loads((ROOT / "ds_configs" / "zero2.json").read_text())
    config["zero_optimization"] = {"stage": 3}
    path = folder / "zero3.json"
    path.write_text(json.dumps(config))
    return path
