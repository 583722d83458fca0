"""The result tables follow the targets a run scored, whatever their names."""

from __future__ import annotations

import json

import numpy as np

from eeg_emotion.evaluation import tables
from eeg_emotion.evaluation.scoring import Majorities, Predictions, score


def scored(targets: list[str]) -> dict:
    """A split's stored results (as results.json holds them) for `targets`, 2 subjects."""
    rng = np.random.default_rng(5)
    rows = np.array([[s, t, w] for s in (1, 2) for t in range(6) for w in range(2)])
    labels = np.repeat(rng.integers(0, 2, (12, len(targets))), 2, axis=0)
    probs = rng.dirichlet([1, 1], size=(len(rows), len(targets)))
    result = score(Predictions(probs, labels, rows), targets, 2, Majorities([0] * len(targets), {}))
    result["loss"] = 0.69  # the trainer adds a split's loss: no target
    return json.loads(json.dumps(result))


def test_a_sources_own_target_names_are_tabled_in_their_scored_order():
    # An MNE label table's columns: neither is a built-in target name.
    stored = scored(["pleasantness", "valence", "engagement"])
    assert tables.targets_of(stored) == ["pleasantness", "valence", "engagement"]
    split = tables.SplitResults.of(stored)
    assert split.targets == ["pleasantness", "valence", "engagement"]
    assert split.trials is not None and list(split.trials.targets) == split.targets
    assert set(split.per_subject["1"]) == {"pleasantness", "valence", "engagement"}
    text = tables.text_table(split, "test")
    for target in ("pleasantness", "engagement"):
        rows = [line for line in text.splitlines() if line.split()[:1] == [target]]
        assert len(rows) == 2, text  # one row per level: windows, trials
    markdown = "\n".join(tables.markdown_level(split.windows))
    assert "| pleasantness |" in markdown and "| engagement |" in markdown
