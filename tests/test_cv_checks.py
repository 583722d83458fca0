"""launch/cv.py refuses what would fail or mislead before any fold runs (exit 2, one line)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from eeg_emotion.cli.cv import main


def run_cv(capsys, tmp_path, tiny_root, *argv: str) -> tuple[int, str]:
    try:
        code = main(
            [
                "--config",
                "configs/tiny.yaml",
                "--out",
                str(tmp_path / "cv"),
                *argv,
                f"data.root={tiny_root}",
                f"data.cache_dir={tmp_path / 'cache'}",
            ]
        )
    except SystemExit as exc:  # argparse's refusals of an option
        code = int(exc.code or 0)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--protocol", "kfold", "--folds", "1"],
            "argument --folds: must be a whole number in [2,",
        ),
        (
            ["--protocol", "loso", "data.subjects=[2]"],
            "--protocol loso needs recordings of at least 2 subjects; these are all of subject 2",
        ),
        (["--protocol", "loso", "--folds", "4"], "--folds 4 but loso has only 3 folds"),
        (["--protocol", "kfold", "--folds", "13"], "subject 1 has only 12 trials"),
        (["--protocol", "cross_trial", "--folds", "13"], "only 12 videos"),
        (["--protocol", "cross_session"], "cross_session needs recordings of at least 2 sessions"),
        (
            ["--protocol", "kfold", "data.split.num_folds=3"],
            "data.split.num_folds: set by cv itself",
        ),
        (["--protocol", "kfold", "output_dir=/tmp/x"], "output_dir: set by cv itself"),
    ],
)
def test_cv_refuses_before_any_fold(capsys, tmp_path, tiny_root, argv, message):
    code, err = run_cv(capsys, tmp_path, tiny_root, *argv)
    assert code == 2 and "error: " in err and message in err, err
    assert not (tmp_path / "cv").exists() and not (tmp_path / "cache").exists()


def test_cv_rerun_with_other_folds_is_refused_before_training(capsys, tmp_path, tiny_root):
    from eeg_emotion.config import load_settings
    from eeg_emotion.evaluation.cv import write_group

    out = tmp_path / "cv"
    settings = load_settings(
        "configs/tiny.yaml", [f"data.root={tiny_root}", f"data.cache_dir={tmp_path / 'cache'}"]
    )
    write_group(out, "kfold", 3, settings.model_dump(mode="json"))
    before = (out / "cv_group.json").read_bytes()
    code, err = run_cv(capsys, tmp_path, tiny_root, "--protocol", "kfold", "--folds", "2")
    assert code == 2 and "holds another CV group: num_folds (3 -> 2)" in err, err
    assert (out / "cv_group.json").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["cv_group.json"]


FEW = ["FP1", "FP2", "F3", "F4", "FZ", "CZ", "PZ", "T7", "T8", "O1", "O2"]  # of SEED's 62


def test_cv_cross_session_holds_out_each_session_in_turn(capsys, tmp_path):
    """Sessions as folds: by default as many folds as sessions, fold i testing every subject's
    session i (here with the band-power baseline: seconds per fold)."""
    from eeg_emotion.data.splits import session_of
    from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic

    root = tmp_path / "seed"
    write_synthetic("seed", root, FormatSpec(subjects=2, sessions=2, trials=6, seconds=(6, 9)))
    seed = ["data.source=seed", f"data.channels=[{','.join(FEW)}]", f"data.root={root}"]
    seed.append(f"data.cache_dir={tmp_path / 'cache'}")
    out = tmp_path / "cv"
    base = ["--config", "configs/tiny.yaml", "--protocol", "cross_session", "--out", str(out)]
    assert main([*base, "--folds", "3", *seed]) == 2
    assert (
        "--folds 3 but cross_session has only 2 folds, one per session" in capsys.readouterr().err
    )
    assert main([*base, "--baseline", "band_power_lr", *seed]) == 0
    assert "pooled over all folds' test trials" in capsys.readouterr().out
    group = json.loads((out / "cv_group.json").read_text())
    assert (group["protocol"], group["num_folds"]) == ("cross_session", 2)
    for fold, session in ((0, 1), (1, 2)):
        split = json.loads((out / f"fold-{fold}" / "splits.json").read_text())
        assert {session_of(t) for _, t in split["test"]} == {session}
        assert {session_of(t) for _, t in split["train"]} == {3 - session}
        assert len(split["test"]) == 2 * 6  # both subjects' trials of that session
    summary = json.loads((out / "cv_results.json").read_text())
    assert summary["folds"] == ["fold-0", "fold-1"]
    assert summary["pooled"]["trials"]["emotion"]["support"] == 2 * 2 * 6  # every trial once


def test_a_forked_fold_finds_what_it_runs_already_imported(tmp_path):
    """cv imports the fold's code (torch, scikit-learn, ...) once, before it forks: a fold that
    had to import it again would cost ~10 s each."""
    probe = (
        "import sys\n"
        "from eeg_emotion.cli import cv\n"
        "code = cv.run_fold('eeg_emotion.cli.baseline', ['--config', 'missing.yaml'], True)\n"
        "print(code, 'eeg_emotion.baselines.runner' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert out.stdout.split() == ["2", "True"], out.stdout + out.stderr[-2000:]
    assert "missing.yaml" in out.stderr  # the fold ran, and refused the missing file
