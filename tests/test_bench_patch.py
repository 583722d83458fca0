"""The patch input's benchmarks in their small modes: bench/synthetic_benchmark.py (subject
folds over every trial, seeds, paired verdicts, Holm, refused reuse) and bench/patch_cache.py
(the cache's size and build)."""

from __future__ import annotations

import dataclasses
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import yaml

from tests.test_bench import ROOT, small_run

pytestmark = pytest.mark.slow


def test_cv_benchmark_small_pools_every_trial_and_gives_paired_verdicts(tmp_path):
    result = small_run("synthetic_benchmark.py", "--work", str(tmp_path))
    assert (result["protocol"], result["folds"], result["seeds"]) == ("subject_kfold", 2, 2)
    assert list(result["data"]) == ["coupling"]
    entry = result["data"]["coupling"]
    lr, no_llm, llm = (
        "band-power + LR",
        "no-LLM (patch encoder, channel readout)",
        "LLM, patch encoder",
    )
    conn, ensemble = "connectivity + L1 LR", f"{llm} (seed ensemble)"
    assert set(entry["rows"]) == {lr, conn, no_llm, llm, ensemble}
    targets = ("valence", "arousal")
    for label, row in entry["rows"].items():
        assert label == ensemble or row["seconds"] > 0
        assert row["windows_per_trial"] == [5, 5]  # every 2 s window of every 10 s test trial
        for target in targets:
            cell = row["trials"][target]
            assert cell["n"] == 40  # 4 subjects x 10 trials: each tested once over the folds
            assert 0 <= cell["ci95"][0] <= cell["balanced_accuracy"] <= cell["ci95"][1] <= 1
            assert 0 < cell["p_vs_chance"] <= 1
    cv = tmp_path / "cv-subject_kfold" / "coupling"
    # Subject-disjoint folds: no subject in two parts, every subject tested in exactly one fold.
    ratings = {}
    for f in sorted((tmp_path / "data-small" / "coupling").glob("s*.dat")):
        with f.open("rb") as fh:
            ratings[int(f.stem[1:])] = pickle.load(fh, encoding="latin1")["labels"][:, :2] > 5
    splits = [json.loads((cv / "lr" / f"fold-{i}" / "splits.json").read_text()) for i in (0, 1)]
    tested = []
    for split in splits:
        parts = [{s_ for s_, _ in split[p]} for p in ("train", "val", "test")]
        assert all(parts) and not (
            parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2]
        )
        tested += sorted(parts[2])
    assert sorted(tested) == [1, 2, 3, 4]
    # The majority row from the ratings and each fold's training trials (class 0 on a tie, as
    # argmax breaks it), scored as balanced accuracy: what the bench printed, CI and all.
    table = (tmp_path / "benchmark-subject_kfold.md").read_text()
    for j, target in enumerate(targets):
        truth, guess = [], []
        for split in splits:
            own = [ratings[s_][t, j] for s_, t in split["train"]]
            truth += [ratings[s_][t, j] for s_, t in split["test"]]
            guess += [sum(own) > len(own) / 2] * len(split["test"])
        truth, guess = np.array(truth), np.array(guess)
        recall = [(guess[truth == c] == c).mean() for c in (False, True) if (truth == c).any()]
        cell = entry["majority"]["trials"][target]
        assert cell["n"] == 40 and cell["balanced_accuracy"] == round(float(np.mean(recall)), 3)
        # No subject of a test fold trains: its own majority is the fold's.
        assert entry["subject majority (no EEG)"]["trials"][target] == cell
        shown = f"{cell['balanced_accuracy']:.3f} [{cell['ci95'][0]:.2f}, {cell['ci95'][1]:.2f}]"
        assert shown in next(line for line in table.splitlines() if "| majority |" in line)
    # Two seeds of the patch-encoder LLM: the spread, and the ensemble of their mean trial
    # probabilities, recomputed here from the folds' window predictions.
    probs = []
    for name in ("llm-patch-encoder", "llm-patch-encoder-seed1"):
        saved = yaml.safe_load((cv / name / "fold-0" / "config.yaml").read_text())
        assert saved["seed"] == (1 if name.endswith("seed1") else 0)
        assert (
            saved["model"]["attention"] == "bidirectional"
            and saved["model"]["readout"] == "channels"
        )
        by_trial: dict = {}
        for fold in ("fold-0", "fold-1"):
            z = np.load(cv / name / fold / "predictions_test.npz")
            for p_, (s_, t, _) in zip(z["probs"], z["rows"], strict=True):
                by_trial.setdefault((int(s_), int(t)), []).append(p_)
        probs.append({k: np.mean(v, axis=0) for k, v in sorted(by_trial.items())})
    keys = sorted(probs[0])
    truth = np.array([[ratings[s_][t, j] for j in (0, 1)] for s_, t in keys]).astype(int)
    mean = np.array([(probs[0][k] + probs[1][k]) / 2 for k in keys]).argmax(-1)
    for j, target in enumerate(targets):
        recall = [
            (mean[truth[:, j] == c, j] == c).mean() for c in (0, 1) if (truth[:, j] == c).any()
        ]
        assert entry["rows"][ensemble]["trials"][target]["balanced_accuracy"] == round(
            float(np.mean(recall)), 3
        )
        seeds = entry["rows"][llm]["seeds"][target]
        assert len(seeds["per_seed"]) == 2
        assert seeds["per_seed"][0] == entry["rows"][llm]["trials"][target]["balanced_accuracy"]
    # The no-LLM row has no transformer; the LLM rows keep the tiny backbone.
    saved = yaml.safe_load((cv / "no-llm" / "fold-0" / "config.yaml").read_text())
    assert saved["model"]["source"] == "none" and saved["model"]["readout"] == "channels"
    # The patch-encoder LLM (seed 0 and the ensemble) against each other row, per target; then
    # every row's seed 0 against the subject majority.
    subject = "subject majority (no EEG)"
    pairs = {(v["b"], v["target"], v["variant"]) for v in entry["verdicts"] if v["b"] != subject}
    assert pairs == {
        (b, t, v) for b in (lr, conn, no_llm) for t in targets for v in ("seed 0", "seed ensemble")
    }
    against = {(v["a"], v["target"]) for v in entry["verdicts"] if v["b"] == subject}
    assert against == {(a, t) for a in (lr, conn, no_llm, llm) for t in targets}
    saved = json.loads((tmp_path / "compare-subject_kfold-coupling" / "compare.json").read_text())
    assert saved["trials"] == 40 and saved["folds"] == ["fold-0", "fold-1"]
    first = next(v for v in entry["verdicts"] if v["b"] == lr and v["variant"] == "seed 0")
    pair = saved["comparisons"][0]["targets"][first["target"]]["all"]
    assert first["p_mcnemar"] == pair["p_value_mcnemar"]
    # The goal tests, Holm-corrected per family and variant: 2 targets each on this data.
    goals = result["goals"]
    families: dict = {}
    for g in goals:
        families.setdefault((g["goal"], g["variant"]), []).append(g)
    assert set(families) == {
        (g, v)
        for g in ("beats LR", "vs connectivity", "vs no-LLM")
        for v in ("seed 0", "seed ensemble")
    }
    for family in families.values():
        assert len(family) == 2 and all(g["p_holm"] >= g["p_mcnemar"] for g in family)
        low = min(family, key=lambda g: g["p_mcnemar"])
        assert low["p_holm"] == pytest.approx(min(1.0, 2 * low["p_mcnemar"]))
    assert "Paired verdicts" in table and "Holm-corrected" in table
    # A rerun whose settings differ from a finished row's is refused before anything runs.
    logs = sorted(p.stat().st_mtime for p in cv.glob("*.log"))
    rerun = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "synthetic_benchmark.py"), "--small", "--work",
         str(tmp_path), "--llm", "train.lr_head=0.5"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert rerun.returncode != 0
    assert "coupling / llm-patch-encoder" in rerun.stderr
    assert "train.lr_head (0.003 -> 0.5)" in rerun.stderr
    assert "coupling / lr " not in rerun.stderr  # the baseline does not read --llm settings
    assert sorted(p.stat().st_mtime for p in cv.glob("*.log")) == logs


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


def test_a_finished_row_stays_reusable_when_a_setting_is_added_at_its_default(tmp_path):
    """A setting added since a row ran, at the default that keeps what the row did, is no change;
    at any other value, or changed from what the row saved, it is."""
    import argparse
    import importlib.util

    from eeg_emotion.config import load_settings
    from eeg_emotion.evaluation import cv

    sys.path.insert(0, str(ROOT / "bench"))  # the bench imports its report module by name
    try:
        spec = importlib.util.spec_from_file_location(
            "cv_bench", ROOT / "bench" / "synthetic_benchmark.py"
        )
        assert spec is not None and spec.loader is not None
        bench = importlib.util.module_from_spec(spec)
        sys.modules["cv_bench"] = bench  # its dataclasses look their module up
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    args = argparse.Namespace(
        work=tmp_path, protocol="subject_kfold", folds=4, budget="cpu", llm=[], small=False
    )
    planned = bench.plan(args, "coupling", "no-llm-front-end", 0)

    def saved_as(edit) -> list[str]:
        dump = load_settings(ROOT / bench.PATCH, planned.overrides).model_dump(mode="json")
        edit(dump["model"]["front_end"])
        (planned.group / cv.GROUP_FILE).unlink(missing_ok=True)
        cv.write_group(planned.group, "subject_kfold", 4, dump)
        return bench.changes(planned, args)

    assert saved_as(lambda fe: fe.pop("to_head")) == []  # saved before the key existed
    assert saved_as(lambda fe: fe.update(to_head=True)) == [
        "model.front_end.to_head (True -> False)"
    ]
    planned = dataclasses.replace(
        planned, overrides=[*planned.overrides, "model.front_end.to_head=true"]
    )
    assert saved_as(lambda fe: fe.pop("to_head")) == ["model.front_end.to_head (None -> True)"]
