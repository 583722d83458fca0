"""DEAP's preprocessed files as DEAP ships them: `sNN.dat`, a Python 2 cPickle of
{"labels": (40, 4), "data": (40, 40, 8064)}, which the DEAP reader (and TorchEEG's) loads with
`encoding="latin1"`. The synthetic generator writes its DEAP folders through this.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

# The pure-Python pickler, whose dispatch table can be extended (untyped in typeshed).
_PurePickler: Any = pickle._Pickler


class _Py2Pickler(_PurePickler):
    """Writes pickles as Python 2's cPickle did: byte strings as `str` opcodes and numpy's
    pre-2.0 `numpy.core.multiarray._reconstruct`. They load with `encoding="latin1"`."""

    dispatch = _PurePickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes | str) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + len(raw).to_bytes(4, "little") + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str

    def save_global(self, obj: object, name: str | None = None) -> None:
        name = name or getattr(obj, "__name__")  # noqa: B009  # classes and functions only
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name}\n".encode())
        self.memoize(obj)

    dispatch[type] = save_global


def dumps_deap(data: np.ndarray, labels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    _Py2Pickler(buffer, protocol=2).dump({"labels": labels, "data": data})
    return buffer.getvalue()


def write_subject(path: str | Path, data: np.ndarray, labels: np.ndarray) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(dumps_deap(data, labels))
    os.replace(tmp, path)  # never leave a half-written sNN.dat behind
