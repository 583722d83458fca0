"""The synthetic benchmark reuses a finished run only if today's settings made it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from eeg_emotion.config import load_settings
from eeg_emotion.errors import ConfigError
from tests.helpers.paths import ROOT

spec = importlib.util.spec_from_file_location("bench", ROOT / "bench" / "synthetic_benchmark.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def finished(out: Path, overrides: list[str]) -> Path:
    """A run folder whose config.yaml is what demo.yaml + overrides resolve to."""
    out.mkdir()
    settings = load_settings(ROOT / "configs" / "demo.yaml", [*overrides, f"output_dir={out}"])
    (out / "config.yaml").write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    return out


def test_a_baseline_run_is_reused_across_llm_only_changes_and_refused_otherwise(tmp_path):
    base = [f"data.root={tmp_path}", "baseline.name=band_power_lr"]
    out = finished(tmp_path / "lr", base)
    # What the baseline never reads may change: LLM training keys, quantization, values.
    bench.check_reusable(
        "baseline",
        out,
        [*base, "train.lr_head=0.5", "data.quantize.num_bins=4", "data.tokenizer.continuous=false"],
    )
    for changed in ("data.window=4s", "baseline.c_grid=[1.0]", "seed=1"):
        with pytest.raises(SystemExit, match=changed.split("=")[0]):
            bench.check_reusable("baseline", out, [*base, changed])


def test_an_llm_run_with_other_training_settings_is_refused(tmp_path):
    base = [f"data.root={tmp_path}", "train.tracker.kind=none"]
    out = finished(tmp_path / "llm", base)
    bench.check_reusable("train", out, [*base, "train.log_every=5"])  # harmless
    with pytest.raises(SystemExit, match="trained 2 epochs"):
        bench.check_reusable("train", out, [*base, "train.epochs=3"])  # it would report 2
    with pytest.raises(ConfigError, match=r"train\.lr_head \(0\.0002 -> 0\.5\)"):
        bench.check_reusable("train", out, [*base, "train.lr_head=0.5"])
