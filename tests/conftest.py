from __future__ import annotations

from pathlib import Path

import pytest

from eeg_emotion.data.synthetic import synthesize
from tests.helpers.paths import TINY


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 subjects x 12 trials x 13 s of synthetic DEAP (shared, read-only)."""
    root = tmp_path_factory.mktemp("deap-tiny")
    synthesize(root, TINY)
    return root


@pytest.fixture(autouse=True)
def _project_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One converted embedded tokenizer per test session, never in the user's home.
    home = tmp_path_factory.getbasetemp() / "eeg-emotion-home"
    monkeypatch.setenv("EEG_EMOTION_HOME", str(home))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset cache shared by the training runs of one test module."""
    return tmp_path_factory.mktemp("train-cache")
