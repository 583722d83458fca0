"""launch/report.py on a finished run and on a cross-validation group."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eeg_emotion import fileio
from tests.helpers.paths import ROOT
from tests.helpers.training import run

pytestmark = pytest.mark.slow
PNG = b"\x89PNG\r\n\x1a\n"


def launch(*args: str, expect: int = 0) -> subprocess.CompletedProcess:
    return run([sys.executable, *args], expect=expect)


def assert_pngs(folder: Path, names: list[str]) -> None:
    for name in names:
        path = folder / "plots" / name
        assert path.read_bytes()[:8] == PNG, path


def agrees(token: str, value: float) -> bool:
    """`token` is `value` printed to the token's own number of digits."""
    digits = len(token.split(".")[1]) if "." in token else 0
    return abs(float(token) - value) <= 0.5 * 10**-digits + 1e-12


def numbers(line: str) -> list[str]:
    return re.findall(r"\d+\.\d+|\d+", line.split(" ", 1)[1] if " " in line else line)


def row_after(lines: list[str], heading: str, start: str) -> str:
    """The first line starting with `start` after the line starting with `heading`."""
    at = next(i for i, line in enumerate(lines) if line.startswith(heading))
    return next(line for line in lines[at:] if line.startswith(start))


def check_agreement(run: Path) -> None:
    """test_results.txt, report.md and metrics.jsonl print results.json's figures to the last
    digit they show: one source for every number."""
    results = json.loads((run / "results.json").read_text())["test"]
    txt = (run / "test_results.txt").read_text().splitlines()
    md = (run / "report.md").read_text().splitlines()
    levels = {
        "windows": (results, "## Test, per window"),
        "trials": (results["trial_level"], "## Test, per trial"),
    }
    for level, (m, md_heading) in levels.items():
        for t in ("valence", "arousal"):
            x = m[t]
            lo, hi = x["balanced_accuracy_ci95"]
            p = x["p_value_balanced_accuracy_vs_chance"]
            shown = numbers(row_after(txt, level, f"{t} "))
            expected = [x["accuracy"], x["balanced_accuracy"], lo, hi, x["macro_f1"]]
            expected += [x["majority_baseline"], x["subject_majority_baseline"], p, x["support"]]
            assert len(shown) == len(expected), shown
            assert all(map(agrees, shown, expected)), (level, t, shown, expected)
            shown = numbers(row_after(md, md_heading, f"| {t} |").replace("|", " ").strip())
            a_lo, a_hi = x["accuracy_ci95"]
            expected = [x["accuracy"], a_lo, a_hi, x["balanced_accuracy"], lo, hi, x["macro_f1"]]
            expected += [x["majority_baseline"], x["subject_majority_baseline"], p]
            if level == "trials":
                expected.append(x["p_value_accuracy_vs_majority"])
            expected.append(x["support"])
            assert len(shown) == len(expected), shown
            assert all(map(agrees, shown, expected)), (level, t, shown, expected)
    logged = [r for r in fileio.read_jsonl(run / "metrics.jsonl") if "test/overall_accuracy" in r]
    assert logged[-1]["test/mean_balanced_accuracy"] == results["mean_balanced_accuracy"]
    assert logged[-1]["test/valence/macro_f1"] == results["valence"]["macro_f1"]


def test_report_on_a_finished_tiny_run(tiny_root, tmp_path):
    run = tmp_path / "run"
    launch(
        "launch/train.py",
        "--config",
        "configs/tiny.yaml",
        f"data.root={tiny_root}",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"output_dir={run}",
        "train.epochs=1",
    )
    out = launch("launch/report.py", str(run)).stdout
    text = (run / "report.md").read_text()
    assert out.strip() == text.strip()
    test = json.loads((run / "results.json").read_text())["test"]
    trial = test["trial_level"]["valence"]
    lo, hi = trial["balanced_accuracy_ci95"]
    assert (
        "| valence | " in text and f"{trial['balanced_accuracy']:.3f} [{lo:.2f}, {hi:.2f}]" in text
    )
    assert f"{test['arousal']['majority_baseline']:.3f}" in text
    assert "LLM classifier `tiny`" in text and "split `trial`" in text
    assert "Classes: low / high." in text
    for subject in ("| 1 |", "| 2 |", "| 3 |"):
        assert subject in text
    assert_pngs(
        run,
        [
            "per_subject.png",
            "test_windows_confusion_valence.png",
            "test_trials_confusion_arousal.png",
            "loss.png",
            "val_accuracy.png",
        ],
    )
    for line in text.splitlines():
        if line.startswith("!["):
            assert (run / line.split("(")[1].rstrip(")")).exists(), line
    check_agreement(run)


def test_report_on_a_two_fold_cross_trial_cv_of_a_baseline(tiny_root, tmp_path):
    out = tmp_path / "cv"
    res = launch(
        "launch/cv.py",
        "--config",
        "configs/tiny.yaml",
        "--protocol",
        "cross_trial",
        "--folds",
        "2",
        "--baseline",
        "band_power_lr",
        "--out",
        str(out),
        f"data.root={tiny_root}",
        f"data.cache_dir={tmp_path / 'cache'}",
    )
    assert "trials (the honest unit)" in res.stdout
    videos = [
        {k[1] for k in json.loads((out / f"fold-{f}" / "splits.json").read_text())["test"]}
        for f in (0, 1)
    ]
    assert not videos[0] & videos[1] and videos[0] | videos[1] == set(range(12))
    text = launch("launch/report.py", str(out)).stdout
    assert text.strip() == (out / "report.md").read_text().strip()
    summary = json.loads((out / "cv_results.json").read_text())
    assert summary["folds"] == ["fold-0", "fold-1"]
    for f in (0, 1):
        fold = json.loads((out / f"fold-{f}" / "results.json").read_text())
        assert fold["baseline"]["name"] == "band_power_lr"
        value = fold["test"]["trial_level"]["valence"]["balanced_accuracy"]
        assert summary["test_trials"]["valence"]["balanced_accuracy"]["per_fold"][f] == round(
            value, 4
        )
        assert f"| fold-{f} | {value:.3f} |" in text
    own = summary["test_trials"]["valence"]["subject_majority_baseline"]["per_fold"]
    assert len(own) == 2 and "subject_majority_baseline" in text
    m = summary["test_trials"]["arousal"]["balanced_accuracy"]
    assert f"{m['mean']:.3f} ± {m['sd']:.3f}" in text
    assert "pooled over all folds' test trials" in text and "2 folds" in text
    assert_pngs(
        out,
        [
            "per_fold.png",
            "per_subject.png",
            "pooled_trials_confusion_valence.png",
            "pooled_windows_confusion_arousal.png",
        ],
    )


def test_report_refuses_a_folder_without_results(tmp_path):
    res = launch("launch/report.py", str(tmp_path), expect=2)
    assert "neither a finished run" in res.stderr and str(tmp_path) in res.stderr
    assert "Traceback" not in res.stderr


def test_report_names_a_category_targets_classes(tmp_path, monkeypatch):
    # SEED's emotion target: its classes are named as the dataset names them, in report.md and
    # on the plots' axes, not low / mid / high or class ids.
    from eeg_emotion.baselines import runner
    from eeg_emotion.config import load_settings
    from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic
    from eeg_emotion.evaluation import plots, report

    root, run = tmp_path / "seed", tmp_path / "run"
    write_synthetic("seed", root, FormatSpec(subjects=2, sessions=1, trials=9, seconds=(4.0, 4.0)))
    overrides = [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", f"output_dir={run}"]
    overrides += ["data.window=2s", "data.stride=2s", "data.tokenizer.sub_window=2s"]
    overrides += ["data.tokenizer.sub_stride=2s", "data.split.test_fraction=0.34"]
    runner.run(load_settings(ROOT / "configs" / "seed.yaml", overrides))
    drawn: list[list[str]] = []

    def run_plots(out: Path, results: dict, targets: list[str], names: list[str], rows: list):
        drawn.append(names)
        return original(out, results, targets, names, rows)

    original = plots.run_plots
    monkeypatch.setattr(plots, "run_plots", run_plots)
    text = report.write_report(run)
    assert "Classes: negative / neutral / positive." in text
    assert drawn == [["negative", "neutral", "positive"]]
    assert_pngs(run, ["test_trials_confusion_emotion.png"])
