"""The patch input's benchmarks in their small modes: bench/synthetic_benchmark.py (pooled CV
over every trial, paired verdicts) and bench/patch_cache.py (the cache's size and build)."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest

from tests.test_bench import ROOT, small_run

pytestmark = pytest.mark.slow


def test_cv_benchmark_small_pools_every_trial_and_gives_paired_verdicts(tmp_path):
    result = small_run("synthetic_benchmark.py", "--work", str(tmp_path))
    assert result["folds"] == 2 and list(result["data"]) == ["coupling"]
    entry = result["data"]["coupling"]
    rows = {"band-power + LR", "LLM, patches", "LLM, patches, random-init backbone"}
    assert set(entry["rows"]) == rows
    for row in entry["rows"].values():
        assert row["seconds"] > 0
        for target in ("valence", "arousal"):
            cell = row["trials"][target]
            assert cell["n"] == 20  # 2 subjects x 10 trials: each tested once over the folds
            assert 0 <= cell["ci95"][0] <= cell["balanced_accuracy"] <= cell["ci95"][1] <= 1
            assert 0 < cell["p_vs_chance"] <= 1
    # The patch LLM against each other row, per target, from compare.json on the same trials;
    # then every row against the subject majority.
    subject = "subject majority (no EEG)"
    pairs = {(v["b"], v["target"]) for v in entry["verdicts"] if v["b"] != subject}
    others = rows - {"LLM, patches"}
    assert pairs == {(b, t) for b in others for t in ("valence", "arousal")}
    against = {(v["a"], v["target"]) for v in entry["verdicts"] if v["b"] == subject}
    assert against == {(a, t) for a in rows for t in ("valence", "arousal")}
    # The subject majority, recomputed from the files' ratings and each fold's training trials.
    ratings = {}
    for f in sorted((tmp_path / "data-small" / "coupling").glob("s*.dat")):
        with f.open("rb") as fh:
            ratings[int(f.stem[1:])] = pickle.load(fh, encoding="latin1")["labels"][:, :2] > 5
    for j, target in enumerate(("valence", "arousal")):
        truth, guess = [], []
        for fold in ("fold-0", "fold-1"):
            lr = tmp_path / "cv" / "coupling" / "lr" / fold / "splits.json"
            split = json.loads(lr.read_text())
            for s_, t in split["test"]:
                own = [ratings[s_][u, j] for s2, u in split["train"] if s2 == s_]
                truth.append(ratings[s_][t, j])
                guess.append(sum(own) > len(own) / 2)  # a tie: class 0, as argmax breaks it
        truth, guess = np.array(truth), np.array(guess)
        recall = [(guess[truth == c] == c).mean() for c in (False, True) if (truth == c).any()]
        cell = entry["subject_majority"]["trials"][target]
        assert cell["n"] == 20 and cell["balanced_accuracy"] == round(float(np.mean(recall)), 3)
    saved = json.loads((tmp_path / "compare-coupling" / "compare.json").read_text())
    assert saved["trials"] == 20 and saved["folds"] == ["fold-0", "fold-1"]
    lr = next(v for v in entry["verdicts"] if v["b"] == "band-power + LR")
    pair = saved["comparisons"][0]["targets"][lr["target"]]["all"]
    assert lr["p_mcnemar"] == pair["p_value_mcnemar"]
    assert "Paired verdicts" in (tmp_path / "benchmark.md").read_text()


def test_patch_cache_small_measures_both_caches(tmp_path):
    result = small_run("patch_cache.py", "--work", str(tmp_path))
    patch, peer = result["patch"], result["band_power"]
    assert patch["windows"] == peer["windows"] == 2 * 4 * 14  # 14 windows of 8 s per trial
    assert patch["largest_file"] == "patches.npy"
    # float16 patches: 32 channels x 8 patches x 128 samples x 2 bytes per window, plus the rest.
    assert 65536 <= patch["bytes_per_window"] < 65536 * 1.05
    assert patch["build_seconds"] > 0 and patch["build_peak_rss_mb"] > 0
    ratio = result["patch_vs_band_power"]["size"]
    assert ratio == round(patch["cache_mb"] / peer["cache_mb"], 1) and ratio > 10


def test_planted_ceiling_small_reads_each_targets_sites(tmp_path):
    result = small_run("planted_ceiling.py", "--work", str(tmp_path))
    assert result["folds"] == 2
    for kind, sites in (("coupling", 2), ("temporal", 1)):  # COUPLED_PAIRS / BURST_SITES per target
        for target in ("valence", "arousal"):
            cell = result[kind][target]
            assert cell["n"] == 20 and cell["sites"] == sites
            assert 0 <= cell["ci95"][0] <= cell["balanced_accuracy"] <= cell["ci95"][1] <= 1
    saved = json.loads((tmp_path / "planted_ceiling.json").read_text())
    assert saved == result


def test_planted_ceiling_features_follow_the_planted_effect_only():
    """The ceiling's statistics separate the ratings where their effect is planted (4 subjects
    pooled, effect 2), and not in the spectral data of the same draws: the ceiling can fail."""
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    import planted_ceiling as pc

    from eeg_emotion.data.synthetic import SyntheticSpec, subject_recording

    for kind in ("coupling", "temporal"):
        spec = SyntheticSpec(4, 40, 384 + 13 * pc.FS, seed=0, effect=2.0, effect_kind=kind)
        for planted in (spec, dataclasses.replace(spec, effect_kind="spectral")):
            xs, ys = zip(*(subject_recording(planted, s) for s in range(1, 5)), strict=True)
            x, labels = np.concatenate(xs)[:, :32, spec.onset + pc.FS :], np.concatenate(ys)
            for target, values in pc.site_features(kind, x, spec).items():
                high = labels[:, target] > 5
                gap = values[high].mean(0) - values[~high].mean(0)
                z = gap / np.sqrt(
                    values[high].var(0) / high.sum() + values[~high].var(0) / (~high).sum()
                )
                if planted.effect_kind == kind:
                    assert (z > 2).all(), (kind, target, z)
                else:
                    assert (abs(z) < 2).all(), (kind, "spectral", target, z)
