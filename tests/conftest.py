from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

# `make test` runs two pytest-xdist workers on a 2-core machine: one thread per worker (and per
# run it starts) keeps them from fighting over the cores. Set before torch is first imported.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# DeepSpeed compiles its CPU kernel into TORCH_EXTENSIONS_DIR once: `make test` builds it in its
# test home before the tests, for every run they start (a SLURM job's included).
if os.environ.get("EEG_EMOTION_TEST_HOME"):
    os.environ.setdefault(
        "TORCH_EXTENSIONS_DIR",
        os.path.join(os.environ["EEG_EMOTION_TEST_HOME"], "torch-extensions"),
    )

import pytest

from eeg_emotion.data.synthetic import synthesize
from tests.helpers.paths import TINY

# The reader tests' fixtures (one tiny synthetic copy of every dataset format).
pytest_plugins = ["tests.helpers.readers"]


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 subjects x 12 trials x 13 s of synthetic DEAP (shared, read-only)."""
    root = tmp_path_factory.mktemp("deap-tiny")
    synthesize(root, TINY)
    return root


@pytest.fixture(scope="session", autouse=True)
def _project_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    # Never the user's home: the one `make test` fills once (the embedded model converted), else
    # one per test session. Session-wide, so that session and module fixtures (data that
    # synthesize records there) see it too.
    test_home = os.environ.get("EEG_EMOTION_TEST_HOME")
    home = Path(test_home) if test_home else tmp_path_factory.getbasetemp() / "eeg-emotion-home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EEG_EMOTION_HOME", str(home))
        yield


@pytest.fixture
def in_process() -> Iterator[None]:
    """A command's main called in this process: what it changes in the process (logging, stop
    handlers, Accelerate, W&B, the environment) put back after, as for the launch scripts
    that tests/helpers/training.py runs in the worker."""
    from tests.helpers.training import process_state

    with process_state(None):
        yield


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset cache shared by the training runs of one test module."""
    return tmp_path_factory.mktemp("train-cache")


# `make test` hands whole files to two pytest-xdist workers in collection order (--dist loadfile
# --no-loadscope-reorder): a file's module fixtures, such as a reference run, are built once. The
# longest files come first, so that no long file starts last; a file that would hold one worker
# much longer than the rest is split (test_train_reference.py, test_bench_models.py). The order:
# the files' wall times in a full run (2026-12-07).
LONGEST_FIRST = (
    "test_slurm.py",
    "test_resume.py",
    "test_slurm_multinode.py",
    "test_bench.py",
    "test_train.py",
    "test_features.py",
    "test_resume_qlora.py",
    "test_bench_models.py",
    "test_bench_patch.py",
    "test_tune.py",
    "test_sweep.py",
    "test_model_options.py",
    "test_patch.py",
    "test_run_folder.py",
    "test_gpu_all.py",
    "test_sources.py",
    "test_report.py",
    "test_connectivity.py",
    "test_cv.py",
    "test_train_reference.py",
    "test_wandb_dashboard.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    # A stable sort: the order within a file stays.
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
