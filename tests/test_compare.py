"""`eeg-emotion compare` on real baseline run folders and CV groups, run in-process."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from eeg_emotion.baselines import runner
from eeg_emotion.cli import compare as compare_cli
from eeg_emotion.cli import report as report_cli
from eeg_emotion.config import load_settings
from eeg_emotion.evaluation import cv
from eeg_emotion.evaluation.compare import load_trials, paired
from tests.helpers.paths import ROOT

# Another model on the same trials: band-power features of four frontal channels only.
FEW_CHANNELS = "data.channels=[Fp1,AF3,F3,F7]"
KEYS = {"part", "resamples", "seed", "alpha", "targets", "trials", "folds", "models"}
KEYS |= {"comparisons", "verdicts"}
PAIRED_KEYS = {
    "trials",
    "accuracy_a",
    "accuracy_b",
    "balanced_accuracy_a",
    "balanced_accuracy_b",
    "balanced_accuracy_difference",
    "balanced_accuracy_difference_ci95",
    "only_a_correct",
    "only_b_correct",
    "both_correct",
    "both_wrong",
    "p_value_mcnemar",
    "resamples",
    "seed",
}


def fit(root: Path, out: Path, *overrides: str) -> Path:
    """A band_power_lr baseline run folder (seconds on tiny data)."""
    base = [f"data.root={root}", f"data.cache_dir={out.parent / 'cache'}", f"output_dir={out}"]
    runner.run(load_settings(ROOT / "configs" / "tiny.yaml", [*base, *overrides]))
    return out


def fit_group(root: Path, out: Path, *overrides: str) -> Path:
    """A 2-fold cross_trial CV group of the baseline, recorded as `eeg-emotion cv` records it."""
    base = [f"data.root={root}", f"data.cache_dir={out.parent / 'cache'}", *overrides]
    settings = load_settings(ROOT / "configs" / "tiny.yaml", base)
    cv.write_group(
        out, "cross_trial", 2, settings.model_dump(mode="json"), baseline="band_power_lr"
    )
    for fold in (0, 1):
        split = ["data.split.protocol=cross_trial", "data.split.num_folds=2"]
        fit(root, out / f"fold-{fold}", *overrides, *split, f"data.split.fold={fold}")
    return out


@pytest.fixture(scope="module")
def runs(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    top = tmp_path_factory.mktemp("compare-runs")
    return {
        "a": fit(tiny_root, top / "a"),
        "a_again": fit(tiny_root, top / "a_again"),
        "few": fit(tiny_root, top / "few", FEW_CHANNELS),
        "other_split": fit(tiny_root, top / "other_split", "data.split.seed=5"),
        "valence": fit(tiny_root, top / "valence", "data.labels.targets=[valence]"),
        "group": fit_group(tiny_root, top / "group"),
        "group_few": fit_group(tiny_root, top / "group_few", FEW_CHANNELS),
    }


def compare(*args: str | Path, expect: int = 0, capsys: pytest.CaptureFixture[str]) -> str:
    """`eeg-emotion compare ARGS` in-process: its stdout (or stderr when it fails)."""
    code = compare_cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == expect, err
    return out if expect == 0 else err


def test_identical_runs_differ_by_nothing(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    text = compare(runs["a"], runs["a_again"], "--out", out, capsys=capsys)
    result = json.loads((out / "compare.json").read_text())
    (pair,) = result["comparisons"]
    for target in ("valence", "arousal"):
        x = pair["targets"][target]["all"]
        assert x["balanced_accuracy_difference"] == 0.0
        assert x["balanced_accuracy_difference_ci95"] == [0.0, 0.0]
        assert x["p_value_mcnemar"] == 1.0 and x["only_a_correct"] == x["only_b_correct"] == 0
        assert x["balanced_accuracy_a"] == x["balanced_accuracy_b"]
        assert pair["targets"][target]["verdict"].startswith("no significant difference")
    assert text == (out / "compare.md").read_text()
    assert "+0.000 [+0.000, +0.000]" in text


def test_a_clearly_better_model_is_found_better_with_the_exact_mcnemar_p():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 40)
    pred_a, pred_b = truth.copy(), truth.copy()
    # Discordant trials by construction: 14 only A gets right, 2 only B; both wrong on 2.
    pred_b[:14] = 1 - truth[:14]
    pred_a[14:16] = 1 - truth[14:16]
    pred_a[16:18] = pred_b[16:18] = 1 - truth[16:18]
    a_vs_b = paired(truth, pred_a, pred_b, num_classes=2, n_boot=500, seed=3)
    assert (a_vs_b["only_a_correct"], a_vs_b["only_b_correct"]) == (14, 2)
    assert (a_vs_b["both_correct"], a_vs_b["both_wrong"]) == (22, 2)
    expected = binomtest(14, 16, 0.5, alternative="two-sided").pvalue
    assert a_vs_b["p_value_mcnemar"] == pytest.approx(expected, rel=1e-12)
    assert a_vs_b["p_value_mcnemar"] < 0.05
    assert a_vs_b["accuracy_a"] == 36 / 40 and a_vs_b["accuracy_b"] == 24 / 40
    assert a_vs_b["balanced_accuracy_difference"] > 0.2
    lo, hi = a_vs_b["balanced_accuracy_difference_ci95"]
    assert 0 < lo < a_vs_b["balanced_accuracy_difference"] < hi
    from eeg_emotion.evaluation.compare import verdict

    assert verdict(a_vs_b, "A", "B").startswith("A better than B (p=0.004)")
    b_vs_a = paired(truth, pred_b, pred_a, num_classes=2, n_boot=500, seed=3)
    assert b_vs_a["balanced_accuracy_difference"] == -a_vs_b["balanced_accuracy_difference"]
    # The same resamples score both orders: the interval mirrors.
    assert b_vs_a["balanced_accuracy_difference_ci95"] == pytest.approx([-hi, -lo], abs=1e-12)
    assert b_vs_a["p_value_mcnemar"] == a_vs_b["p_value_mcnemar"]
    assert verdict(b_vs_a, "B", "A").startswith("A better than B")
    # Seeded: the same seed, the same interval; another seed, another one.
    again = paired(truth, pred_a, pred_b, num_classes=2, n_boot=500, seed=3)
    assert again == a_vs_b
    other = paired(truth, pred_a, pred_b, num_classes=2, n_boot=500, seed=4)
    assert other["balanced_accuracy_difference_ci95"] != [lo, hi]


def test_the_bootstrap_ci_has_the_width_of_a_95_percent_interval_over_all_trials():
    """On many trials the paired bootstrap's percentile interval is the normal one: the
    difference +- 1.96 standard errors, the standard error computed by hand. A 90 % interval
    (1.64 SE), or resamples of half the trials (1.41 x wider), fall outside the tolerance."""
    rng = np.random.default_rng(7)
    truth = np.repeat([0, 1], 400)
    right_a, right_b = rng.random(800) < 0.8, rng.random(800) < 0.6
    pred_a, pred_b = np.where(right_a, truth, 1 - truth), np.where(right_b, truth, 1 - truth)
    result = paired(truth, pred_a, pred_b, num_classes=2, n_boot=2000, seed=0)
    # Balanced accuracy is the mean of the two classes' recalls: its difference is the mean of
    # each class's mean of d = right_a - right_b, whose variances add.
    d = right_a.astype(float) - right_b
    se = 0.5 * np.sqrt(sum(d[truth == c].var() / (truth == c).sum() for c in (0, 1)))
    lo, hi = result["balanced_accuracy_difference_ci95"]
    assert (hi - lo) / (2 * 1.96 * se) == pytest.approx(1, abs=0.08)
    assert (lo + hi) / 2 == pytest.approx(result["balanced_accuracy_difference"], abs=0.25 * se)


def test_runs_on_other_trials_are_refused_naming_them(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    err = compare(runs["a"], runs["other_split"], "--out", out, expect=2, capsys=capsys)
    a, other = load_trials(runs["a"]), load_trials(runs["other_split"])
    only_a = sorted(set(map(tuple, a.keys.tolist())) - set(map(tuple, other.keys.tolist())))
    s, t = only_a[0]
    assert err.startswith(f"error: {runs['a']} has {len(a)} test trials, {runs['other_split']}")
    assert f"trials only in {runs['a']}: subject {s} trial {t}" in err
    assert f"trials only in {runs['other_split']}" in err
    assert "Traceback" not in err and not out.exists()


def test_other_true_labels_are_refused(runs, tmp_path, capsys):
    relabeled = tmp_path / "relabeled"
    shutil.copytree(runs["a"], relabeled)
    with np.load(relabeled / "predictions_test.npz") as z:
        probs, labels, rows = z["probs"], z["labels"].copy(), z["rows"]
    s, t = rows[0, :2].tolist()
    trial = (rows[:, 0] == s) & (rows[:, 1] == t)
    labels[trial, 1] = 1 - labels[trial, 1]  # arousal of one trial
    np.savez(relabeled / "predictions_test.npz", probs=probs, labels=labels, rows=rows)
    err = compare(runs["a"], relabeled, "--out", tmp_path / "cmp", expect=2, capsys=capsys)
    assert f"1 of the {len(load_trials(runs['a']))} test trials have other true labels" in err
    assert f"in {relabeled} than in {runs['a']}: subject {s} trial {t} (arousal" in err


def test_bad_inputs_are_refused_naming_the_folder(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    missing = tmp_path / "nowhere"
    err = compare(runs["a"], missing, "--out", out, expect=2, capsys=capsys)
    assert err == f"error: {missing}: no such folder (give run folders or CV group folders)\n"
    err = compare(runs["a"], "--out", out, expect=2, capsys=capsys)
    assert err == f"error: compare needs two or more folders, got 1 ({runs['a']})\n"
    no_predictions = tmp_path / "no_predictions"
    shutil.copytree(runs["a"], no_predictions)
    (no_predictions / "predictions_test.npz").unlink()
    err = compare(runs["a"], no_predictions, "--out", out, expect=2, capsys=capsys)
    assert f"error: {no_predictions}: has no predictions_test.npz" in err
    unscored = tmp_path / "unscored"
    shutil.copytree(runs["a"], unscored)
    (unscored / "results.json").unlink()
    err = compare(unscored, runs["a"], "--out", out, expect=2, capsys=capsys)
    assert f"error: {unscored}: not scored: no results.json" in err
    err = compare(runs["a"], runs["valence"], "--out", out, expect=2, capsys=capsys)
    assert f"{runs['a']} scores valence, arousal (2 classes), {runs['valence']} valence" in err
    err = compare(runs["a"], runs["group"], "--out", out, expect=2, capsys=capsys)
    assert f"{runs['a']} is a run folder, {runs['group']} is a CV group" in err
    err = compare(runs["a"], runs["a"], "--out", out, expect=2, capsys=capsys)
    assert f"{runs['a']} is given twice" in err
    assert not out.exists()


def trial_predictions(run: Path) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """(subject, trial) -> (true classes, classes of the highest mean window probability),
    straight from a run's predictions_test.npz."""
    with np.load(run / "predictions_test.npz") as z:
        probs, labels, rows = z["probs"], z["labels"], z["rows"]
    out = {}
    for key in {tuple(r) for r in rows[:, :2].tolist()}:
        pick = (rows[:, 0] == key[0]) & (rows[:, 1] == key[1])
        out[key] = (labels[pick][0], probs[pick].mean(0).argmax(-1))
    return out


def test_cv_groups_are_compared_per_fold_and_pooled_over_folds(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    text = compare(runs["group"], runs["group_few"], "--out", out, capsys=capsys)
    result = json.loads((out / "compare.json").read_text())
    assert result["folds"] == ["fold-0", "fold-1"] and result["trials"] == 36  # every trial once
    a, b = {}, {}
    fold_of = {}
    for fold in result["folds"]:
        mine = trial_predictions(runs["group"] / fold)
        a.update(mine)
        b.update(trial_predictions(runs["group_few"] / fold))
        fold_of.update(dict.fromkeys(mine, fold))
    keys = sorted(a)
    assert len(keys) == 36 and sorted(b) == keys
    (pair,) = result["comparisons"]
    for j, target in enumerate(["valence", "arousal"]):
        truth = np.array([a[k][0][j] for k in keys])
        pa, pb = np.array([a[k][1][j] for k in keys]), np.array([b[k][1][j] for k in keys])
        by_level = pair["targets"][target]
        assert by_level["all"] == paired(truth, pa, pb, num_classes=2)
        for fold in result["folds"]:
            pick = np.array([fold_of[k] == fold for k in keys])
            expected = paired(truth[pick], pa[pick], pb[pick], num_classes=2)
            assert by_level["per_fold"][fold] == expected
            assert f"## {fold}" in text
        assert sum(x["trials"] for x in by_level["per_fold"].values()) == 36
    assert [m["model"] for m in result["models"]] == ["band_power_lr baseline"] * 2


def test_compare_md_and_json_are_written_and_never_replace_another_comparison(
    runs, tmp_path, capsys
):
    first = tmp_path / "a"
    shutil.copytree(runs["a"], first)
    text = compare(first, runs["few"], runs["a_again"], capsys=capsys)  # --out: the first
    result = json.loads((first / "compare.json").read_text())
    assert set(result) == KEYS and text == (first / "compare.md").read_text()
    assert [c["b"] for c in result["comparisons"]] == [str(runs["few"]), str(runs["a_again"])]
    folders = [str(first), str(runs["few"]), str(runs["a_again"])]
    assert [m["folder"] for m in result["models"]] == folders
    few = result["comparisons"][0]["targets"]
    for target in ("valence", "arousal"):
        x = few[target]["all"]
        assert set(x) == PAIRED_KEYS and x["trials"] == 6 and x["resamples"] == 1000
        assert x["only_a_correct"] + x["only_b_correct"] + x["both_correct"] + x["both_wrong"] == 6
        lo, hi = x["balanced_accuracy_difference_ci95"]
        row = (
            f"| `{first}` | `{runs['few']}` | {target} | 6 | {x['balanced_accuracy_a']:.3f} "
            f"| {x['balanced_accuracy_b']:.3f} | {x['balanced_accuracy_difference']:+.3f} "
            f"[{lo:+.3f}, {hi:+.3f}] | {x['only_a_correct']} | {x['only_b_correct']} "
            f"| {x['p_value_mcnemar']:.4f} |"
        )
        assert row in text
        assert f"- {target}: {few[target]['verdict']}" in text
    assert len(result["verdicts"]) == 4 and "## Verdicts" in text
    # The same comparison again refreshes its files; another one is refused, then replaced.
    compare(first, runs["few"], runs["a_again"], capsys=capsys)
    before = (first / "compare.json").read_text()
    err = compare(first, runs["few"], expect=2, capsys=capsys)
    assert f"{first / 'compare.json'}: holds another comparison" in err and "--overwrite" in err
    assert (first / "compare.json").read_text() == before
    err = compare(first, runs["few"], runs["a_again"], "--seed", "1", expect=2, capsys=capsys)
    assert "holds another comparison" in err
    compare(first, runs["few"], "--overwrite", capsys=capsys)
    assert len(json.loads((first / "compare.json").read_text())["comparisons"]) == 1
    # A compare.md that no comparison wrote is not replaced either.
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "compare.md").write_text("my notes\n")
    err = compare(first, runs["few"], "--out", foreign, expect=2, capsys=capsys)
    assert "exists without the compare.json" in err
    assert (foreign / "compare.md").read_text() == "my notes\n"


def test_report_links_the_comparisons(runs, tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "few"
    shutil.copytree(runs["a"], first)
    shutil.copytree(runs["few"], second)
    compare(first, second, capsys=capsys)  # first/compare.md
    verdicts = json.loads((first / "compare.json").read_text())["verdicts"]
    assert report_cli.main([str(first)]) == 0
    text = (first / "report.md").read_text()
    assert "## Comparisons\n\n- [compare.md](compare.md)\n" in text
    assert all(f"  - {v}" in text for v in verdicts)
    assert report_cli.main([str(second), "--compare", str(first)]) == 0
    assert "- [../a/compare.md](../a/compare.md)" in (second / "report.md").read_text()
    capsys.readouterr()
    assert report_cli.main([str(second), "--compare", str(tmp_path / "none")]) == 2
    assert f"error: {tmp_path / 'none'}: no compare.md there" in capsys.readouterr().err
    group = tmp_path / "group"
    shutil.copytree(runs["group"], group)
    compare(group, runs["group_few"], capsys=capsys)
    assert report_cli.main([str(group)]) == 0
    assert "- [compare.md](compare.md)" in (group / "report.md").read_text()
    # Without a comparison, no section.
    plain = tmp_path / "plain"
    shutil.copytree(runs["a_again"], plain)
    assert report_cli.main([str(plain)]) == 0
    assert "## Comparisons" not in (plain / "report.md").read_text()
