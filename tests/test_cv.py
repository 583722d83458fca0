"""Cross-validation on one machine: launch/cv.py runs every fold and writes one table."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from tests.helpers.training import run

pytestmark = pytest.mark.slow


def test_local_kfold_in_one_command(tiny_root, tmp_path):
    out = tmp_path / "cv"
    res = run(
        [
            sys.executable,
            "launch/cv.py",
            "--config",
            "configs/tiny.yaml",
            "--protocol",
            "kfold",
            "--folds",
            "2",
            "--out",
            str(out),
            f"data.root={tiny_root}",
            f"data.cache_dir={tmp_path / 'cache'}",
            "train.epochs=1",
        ],
        fresh=True,  # a process of its own, which forks each fold: as users run it
    )
    assert "mean ± sd" in res.stdout and "pooled over all folds' test trials" in res.stdout
    assert res.stdout.count("(forked)") == 2  # each fold a copy of the cv process, no re-import
    summary = json.loads((out / "cv_results.json").read_text())
    assert summary["folds"] == ["fold-0", "fold-1"]
    # Every trial is tested exactly once across the folds.
    tested = [
        tuple(k)
        for f in (0, 1)
        for k in json.loads((out / f"fold-{f}" / "splits.json").read_text())["test"]
    ]
    assert sorted(tested) == [(s, t) for s in (1, 2, 3) for t in range(12)]
    # Pooled window accuracy is the window-weighted mean of the folds' accuracies.
    folds = [
        json.loads((out / f"fold-{f}" / "results.json").read_text())["test"]["valence"]
        for f in (0, 1)
    ]
    weighted = np.average([f["accuracy"] for f in folds], weights=[f["support"] for f in folds])
    assert summary["pooled"]["windows"]["valence"]["accuracy"] == pytest.approx(weighted)
    assert summary["pooled"]["trials"]["valence"]["support"] == 36
    for f in (0, 1):
        assert "group: cv" in (out / f"fold-{f}" / "config.yaml").read_text()
    # The report of the group: training curves of every fold next to the tables.
    report = run([sys.executable, "launch/report.py", str(out)])
    assert "LLM classifier `tiny`" in report.stdout and "`kfold` (2 folds" in report.stdout
    for name in ("per_fold", "per_subject", "val_valence_balanced_accuracy"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
