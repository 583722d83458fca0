"""What many tests share: the repository root, the tiny synthetic dataset's shape, settings."""

from __future__ import annotations

import json
from pathlib import Path

from eeg_emotion.config import DataSettings, load_settings
from eeg_emotion.data.synthetic import SyntheticSpec

ROOT = Path(__file__).resolve().parents[2]
TINY = SyntheticSpec(subjects=3, trials=12, samples=1664, seed=0)


def data_settings(root: Path, cache: Path, *overrides: str) -> DataSettings:
    """configs/tiny.yaml pointed at `root`, with extra overrides."""
    base = [f"data.root={root}", f"data.cache_dir={cache}"]
    return load_settings(ROOT / "configs" / "tiny.yaml", [*base, *overrides]).data


def zero3_json(folder: Path) -> Path:
    """ds_configs/zero2.json turned into ZeRO-3 (which training refuses at start)."""
    config = json.loads((ROOT / "ds_configs" / "zero2.json").read_text())
    config["zero_optimization"] = {"stage": 3}
    path = folder / "zero3.json"
    path.write_text(json.dumps(config))
    return path
