"""Tiny synthetic copies of every dataset format and the checks the reader tests share
(registered as a pytest plugin in tests/conftest.py, so its fixtures reach every test file)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import scipy.io

from eeg_emotion.data.readers import (
    make_reader,
)
from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic
from eeg_emotion.errors import DataError

TINY = {"subjects": 2, "trials": 3, "seconds": (2.5, 6.0)}
AMIGOS_TINY = FormatSpec(
    subjects=3, seconds=(2.5, 4.0), long_seconds=(4.0, 6.0), without_long_videos=(3,)
)


def written(tmp_path_factory: pytest.TempPathFactory, fmt: str, spec: FormatSpec) -> Path:
    root = tmp_path_factory.mktemp(fmt)
    write_synthetic(fmt, root, spec)
    return root


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny synthetic copy of every format (read-only: tests that damage one copy it)."""
    specs = {
        "dreamer": FormatSpec(**TINY, baseline_seconds=2.0),
        "seed": FormatSpec(**TINY, sessions=2),
        "seed_iv": FormatSpec(**TINY, sessions=2),
        "amigos": AMIGOS_TINY,
        "edf": FormatSpec(**TINY),
        "fif": FormatSpec(**TINY),
        "deap": FormatSpec(subjects=2, trials=3, seconds=(8.0, 8.0)),
    }
    return {fmt: written(tmp_path_factory, fmt, spec) for fmt, spec in specs.items()}


@pytest.fixture
def copy_of(roots: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    def copy(fmt: str) -> Path:
        target = tmp_path / fmt
        shutil.copytree(roots[fmt], target)
        return target

    return copy


def load_mat(path: Path) -> dict[str, Any]:
    return {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}


def edit_mat(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    mat = load_mat(path)
    edit(mat)
    scipy.io.savemat(path, mat)


def one_error(call: Callable[[], object], path: Path, *words: str) -> str:
    """`call` raises one DataError naming `path` and every word, not chained to another."""
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"
    exc = info.value
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)
    return message


def read_every(source: str, root: Path, options: dict | None = None) -> list:
    reader = make_reader(source, options)
    return [reader.read(ref) for ref in reader.find(root)]
