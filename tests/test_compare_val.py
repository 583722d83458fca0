"""`eeg-emotion compare --part val` and `--resamples` on a real 3-fold CV group, in-process.

Every fold draws its val trials from the other folds' trials, so with 3 or more folds a trial
is validated in several folds: compare then tests the folds one by one, and still pools the
test trials, each tested in one fold only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from eeg_emotion.baselines import runner
from eeg_emotion.cli import compare as compare_cli
from eeg_emotion.config import load_settings
from eeg_emotion.evaluation import cv
from eeg_emotion.evaluation.compare import paired
from eeg_emotion.evaluation.metrics import trial_level
from tests.helpers.paths import ROOT

pytestmark = pytest.mark.slow

FOLDS = ("fold-0", "fold-1", "fold-2")
TARGETS = ("valence", "arousal")


def loso_group(root: Path, out: Path) -> Path:
    """band_power_lr on 3 leave-one-subject-out folds (one C: the fastest fit), recorded as
    `eeg-emotion cv --baseline` records it."""
    base = [f"data.root={root}", f"data.cache_dir={out.parent / 'cache'}", "baseline.c_grid=[0.1]"]
    base += ["data.split.protocol=loso", "data.split.num_folds=3"]
    settings = load_settings(ROOT / "configs" / "tiny.yaml", base)
    cv.write_group(out, "loso", 3, settings.model_dump(mode="json"), baseline="band_power_lr")
    for fold in range(3):
        extra = [f"data.split.fold={fold}", f"output_dir={out / f'fold-{fold}'}"]
        runner.run(load_settings(ROOT / "configs" / "tiny.yaml", [*base, *extra]))
    return out


def flip_every_third_trial(group: Path, part: str) -> None:
    """Another model on the same trials: every third trial of each fold predicted the other way
    (its windows' two class probabilities swapped)."""
    for fold in FOLDS:
        path = group / fold / f"predictions_{part}.npz"
        with np.load(path) as z:
            probs, labels, rows = z["probs"].copy(), z["labels"], z["rows"]
        pick = rows[:, 1] % 3 == 0
        probs[pick] = probs[pick][..., ::-1]
        np.savez(path, probs=probs, labels=labels, rows=rows)


def trials(run: Path, part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A run's (subject, trial) keys, true classes and predicted classes of `part`."""
    with np.load(run / f"predictions_{part}.npz") as z:
        probs, labels, keys = trial_level(z["probs"], z["labels"], z["rows"])
    return keys, labels, probs.argmax(-1)


def test_val_is_compared_fold_by_fold_with_the_resamples_asked_and_test_still_pooled(
    tiny_root, tmp_path, capsys
):
    a = loso_group(tiny_root, tmp_path / "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)
    for part in ("val", "test"):
        flip_every_third_trial(b, part)
    # Each subject's val trials are drawn once and used in every fold that trains on it.
    val = [
        {tuple(k) for k in json.loads((a / f / "splits.json").read_text())["val"]} for f in FOLDS
    ]
    assert val[0] & val[1] and val[0] & val[2] and val[1] & val[2]

    out = tmp_path / "cmp-val"
    argv = [str(a), str(b), "--part", "val", "--resamples", "200", "--seed", "7"]
    assert compare_cli.main([*argv, "--out", str(out)]) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    result = json.loads((out / "compare.json").read_text())
    assert (result["part"], result["resamples"], result["seed"]) == ("val", 200, 7)
    assert result["folds"] == list(FOLDS) and result["trials"] == len(set.union(*val))
    (pair,) = result["comparisons"]
    for j, target in enumerate(TARGETS):
        by_level = pair["targets"][target]
        assert by_level["all"] is None and by_level["verdict"] is None  # nothing pooled
        for fold, in_val in zip(FOLDS, val, strict=True):
            keys, truth, pred_a = trials(a / fold, "val")
            assert {tuple(k) for k in keys.tolist()} == in_val
            _, _, pred_b = trials(b / fold, "val")
            flipped = keys[:, 1] % 3 == 0
            assert (pred_b[:, j] != pred_a[:, j]).tolist() == flipped.tolist()
            x = by_level["per_fold"][fold]
            assert x == paired(
                truth[:, j], pred_a[:, j], pred_b[:, j], num_classes=2, n_boot=200, seed=7
            )
            assert x["only_a_correct"] + x["only_b_correct"] == flipped.sum()
            line = by_level["per_fold_verdicts"][fold]
            assert f"{a / fold}" in line and f"{b / fold}" in line
            assert f"- {target}: {line}" in text
    assert len(result["verdicts"]) == len(TARGETS) * len(FOLDS)
    assert "compared fold by fold, not pooled" in text and "## All val trials" not in text
    assert text == (out / "compare.md").read_text()

    # The test trials of the same groups, each in one fold, still pool into one verdict.
    out = tmp_path / "cmp-test"
    assert compare_cli.main([str(a), str(b), "--out", str(out), "--resamples", "200"]) == 0
    capsys.readouterr()
    result = json.loads((out / "compare.json").read_text())
    assert result["trials"] == 36 and len(result["verdicts"]) == len(TARGETS)
    for target in TARGETS:
        pooled = result["comparisons"][0]["targets"][target]
        assert pooled["all"]["trials"] == 36 and pooled["all"]["resamples"] == 200
        assert sum(x["trials"] for x in pooled["per_fold"].values()) == 36
