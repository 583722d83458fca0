"""slurm/cv.sh with the cross_session protocol on a real one-node SLURM (tests/helpers/slurm.py):
synthetic SEED-IV of 3 sessions, one array task per session, each testing that session of every
subject on a model trained on the others, then the aggregate job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eeg_emotion.data.splits import session_of
from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic
from tests.helpers import slurm

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

SUBJECTS, SESSIONS, TRIALS = 2, 3, 3
# configs/tiny.yaml read as SEED-IV: 62 channels, so one 2 s band-power sub-window per window
# (248 tokens); the first phase only, a few optimizer steps.
SEED_IV = [
    "data.source=seed_iv",
    "data.options.sampling_rate=200",
    "data.labels.targets=[emotion]",
    "data.labels.num_classes=4",
    "data.tokenizer.sub_window=2s",
    "data.tokenizer.sub_stride=2s",
    "train.epochs=1",
]


def test_cv_sh_runs_one_fold_per_session_and_aggregates(tmp_path: Path) -> None:
    root, out = tmp_path / "seed_iv", tmp_path / "cv-session"
    write_synthetic(
        "seed_iv",
        root,
        FormatSpec(subjects=SUBJECTS, sessions=SESSIONS, trials=TRIALS, seconds=(4, 4)),
    )
    data = [f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", *SEED_IV]
    # Ports and job ids apart from the other cluster tests' clusters. Two CPUs per fold: the
    # three folds run side by side on the node's eight.
    with slurm.local_cluster(tmp_path / "slurm", port=16977, first_job_id=801) as env:
        env = {**env, "EEG_SBATCH_ARGS": "--cpus-per-task=2"}
        args = ["configs/tiny.yaml", "cross_session", str(SESSIONS), str(out), *data]
        slurm.sh(env, "bash", "slurm/cv.sh", *args)
        jobs = slurm.sh(env, "squeue", "-h", "-o", "%A").split()
        slurm.wait_gone(env, *sorted(set(jobs)))

    tested = []
    for fold in range(SESSIONS):
        run = out / f"fold-{fold}"
        assert json.loads((run / "status.json").read_text())["status"] == "finished", fold
        split = json.loads((run / "splits.json").read_text())
        # The fold's test part is session fold + 1 of every subject, all of it; train and val
        # hold the other sessions only.
        test = split["test"]
        assert {session_of(t) for _, t in test} == {fold + 1}
        assert len(test) == SUBJECTS * TRIALS and {s for s, _ in test} == {1, 2}
        others = split["train"] + split["val"]
        assert fold + 1 not in {session_of(t) for _, t in others} and split["val"]
        assert "protocol: cross_session" in (run / "config.yaml").read_text()
        tested += [tuple(k) for k in test]
    assert len(tested) == len(set(tested)) == SUBJECTS * SESSIONS * TRIALS
    summary = json.loads((out / "cv_results.json").read_text())
    assert summary["folds"] == [f"fold-{i}" for i in range(SESSIONS)] and summary["missing"] == []
    assert summary["pooled"]["trials"]["emotion"]["support"] == SUBJECTS * SESSIONS * TRIALS
