"""The bench scripts' small modes print their figures; the synthetic benchmark reuses a
finished run only if today's settings made it."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from eeg_emotion.config import load_settings
from eeg_emotion.errors import ConfigError
from tests.helpers.paths import ROOT
from tests.test_torcheeg_formats import torcheeg_python

spec = importlib.util.spec_from_file_location("bench", ROOT / "bench" / "synthetic_split.py")
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


def small_run(script: str, *args: str) -> dict:
    """Run bench/SCRIPT's small mode as a user does; the JSON object it prints last."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), "--small", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,  # a 2-core machine shared with other runs: minutes, not seconds
    )
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    # The object starts on the last line that opens one (indented objects span several lines).
    lines = out.stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith("{"))
    return json.loads("\n".join(lines[start:]))


def assert_figures(result: dict, *keys: str) -> None:
    for key in keys:
        value = result[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)


def rounding_slack(a: float, b: float) -> float:
    """How far a / b may be from the ratio the bench computed before rounding both rates to
    0.1 (and the ratio to 0.001): at 3 samples/s, over 3 %."""
    return a / b * (0.05 / a + 0.05 / b) + 0.0005


# 2 subjects x 12 trials of 60 s: 14 windows of 8 s at a 4 s stride per trial (configs/demo.yaml).
SMALL_DEMO_ROWS = 2 * 12 * 14


def check_own_pipeline(result: dict) -> None:
    assert (result["subjects"], result["trials"]) == (2, 12)
    assert_figures(result, "generate_s", "cold_s", "cold_symbols_s", "warm_cli_s", "peak_rss_mb")
    assert 0 <= result["warm_s"] < result["cold_s"]  # the second build reads the cache
    assert result["rows"] == SMALL_DEMO_ROWS
    # demo.yaml's band_power: 32 channels x 4 bands; symbols: 32 channels x 1024 / 4 samples.
    assert result["tokens_per_window"] == {"band_power": 128, "symbols": 8192}
    phases = result["peak_rss_mb_by_phase"]
    assert set(phases) == {"generate", "cold_band_power", "cold_symbols", "warm"}
    assert all(v > 0 for v in phases.values())


@pytest.mark.slow
def test_data_pipeline_small_runs_its_own_side_without_torcheeg(tmp_path):
    missing = tmp_path / "no-torcheeg" / "python"
    result = small_run(
        "data_pipeline.py", "--work", str(tmp_path / "work"), "--torcheeg-python", str(missing)
    )
    check_own_pipeline(result)
    assert result["torcheeg_s"] is None and str(missing) in result["torcheeg_note"]
    assert not (tmp_path / "work").exists()  # removed without --keep


# Per format: tokens per window of its config's band_power (channels x 4 bands).
FORMAT_TOKENS = {"deap": 128, "dreamer": 56, "seed": 248, "seed_iv": 248, "amigos": 56}


@pytest.mark.slow
def test_data_pipeline_small_times_every_format_beside_torcheeg(tmp_path):
    python = torcheeg_python()
    work = tmp_path / "work"
    # TorchEEG through bench/data_pipeline.py's one command for both modes (the default one
    # times DEAPDataset on the same DEAP files as here, its own side tested above).
    result = small_run(
        "data_pipeline.py", "--format", "all", "--work", str(work), "--torcheeg-python", str(python)
    )
    assert set(result["formats"]) == set(FORMAT_TOKENS) and "torcheeg_note" not in result
    for fmt, row in result["formats"].items():
        assert row["tokens_per_window"] == FORMAT_TOKENS[fmt], fmt
        # Both read the same files into the same 8 s windows, 4 s apart.
        assert row["torcheeg_rows"] == row["ours_rows"] > 0, (fmt, row)
        for unit in ("s", "cpu_s"):
            assert_figures(row, f"ours_{unit}", f"torcheeg_{unit}")
            ratio = row["torcheeg_ratio" if unit == "s" else "torcheeg_cpu_ratio"]
            assert ratio == pytest.approx(row[f"torcheeg_{unit}"] / row[f"ours_{unit}"], rel=0.1)
    # DEAP's small copy: 2 subjects x 8 trials of 12 s after the baseline, 2 windows each.
    assert result["formats"]["deap"]["ours_rows"] == 2 * 8 * 2
    assert not work.exists()


@pytest.mark.slow
def test_synthetic_difficulty_small_separates_a_strong_effect_from_none():
    result = small_run("synthetic_difficulty.py")
    assert (result["subjects"], result["split"]) == (2, "trial")
    for effect in ("effect=0", "effect=2"):
        for target in ("valence", "arousal"):
            r = result[effect][target]
            assert r["test_trials"] > 0 and r["majority_balanced_accuracy"] == 0.5
            assert 0 <= r["window_balanced_accuracy"] <= 1
    for target in ("valence", "arousal"):
        strong, none = result["effect=2"][target], result["effect=0"][target]
        assert strong["window_balanced_accuracy"] > max(0.6, none["window_balanced_accuracy"])


@pytest.mark.slow
def test_synthetic_split_benchmark_small_runs_both_baselines(tmp_path):
    result = small_run("synthetic_split.py", "--work", str(tmp_path))
    [entry] = result.values()
    assert set(entry) == {"majority", "subject_majority", "band-power + LR", "EEGNet"}
    for model in ("band-power + LR", "EEGNet"):
        m = entry[model]
        assert_figures(m, "seconds", "trial_mean_balanced_accuracy")
        for level in ("trials", "windows"):
            for target in ("valence", "arousal"):
                cell = m[level][target]
                assert 0 <= cell["ci95"][0] <= cell["balanced_accuracy"] <= cell["ci95"][1] <= 1
    assert json.loads((tmp_path / "benchmark.json").read_text()) == result
    assert "| band-power + LR |" in (tmp_path / "benchmark.md").read_text()


@pytest.mark.slow
def test_amplifier_small_scores_every_row_on_the_clean_rows_trials(tmp_path):
    result = small_run("amplifier.py", "--work", str(tmp_path))
    rows = result["models"]["lr"]
    assert list(rows) == ["clean", "amplifier, preprocessed", "amplifier, raw"]
    for name, row in rows.items():
        for target in ("valence", "arousal"):
            cell = row[target]
            assert cell["trials"] == rows["clean"][target]["trials"] > 0  # the same test trials
            assert 0 <= cell["ci95"][0] <= cell["balanced_accuracy"] <= cell["ci95"][1] <= 1
            if name != "clean":  # clean minus this, paired on those trials
                vs = row["vs_clean"][target]
                diff = rows["clean"][target]["balanced_accuracy"] - cell["balanced_accuracy"]
                assert vs["difference"] == pytest.approx(diff, abs=0.002)
                assert 0 < vs["p_mcnemar"] <= 1
    # What each row trained on: the amplifier's rates resampled, its steps only where asked.
    saved = {
        name: (tmp_path / "lr" / name / "config.yaml").read_text()
        for name in ("clean", "amplifier-preprocessed", "amplifier-raw")
    }
    assert "notch: 50" in saved["amplifier-preprocessed"] and "notch" not in saved["amplifier-raw"]
    assert "amplifier" in saved["amplifier-raw"] and "clean" in saved["clean"]
    assert "| band-power + LR | amplifier, raw |" in (tmp_path / "amplifier.md").read_text()


def test_cpu_bf16_small_prints_both_passes_and_their_ratios():
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cpu_bf16.py"), "--small", "--repeats", "1"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = re.findall(
        r"^(\w+): fp32 ([\d.]+) ms, bf16 ([\d.]+) ms, bf16 / fp32 ([\d.]+)x$", out, re.M
    )
    assert [r[0] for r in rows] == ["forward", "backward"], out
    for _, fp32, bf16, ratio in rows:
        assert float(fp32) > 0 and float(bf16) > 0
        assert float(ratio) == pytest.approx(float(bf16) / float(fp32), abs=0.06, rel=0.05)
