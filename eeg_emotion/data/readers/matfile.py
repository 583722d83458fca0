"""MATLAB v5 files, read through `scipy.io.loadmat`, each problem one DataError.

Files are read with loadmat's defaults (`squeeze_me=False`, `struct_as_record=True`), as the
public datasets' own loaders read them: a struct is a (1, 1) record array (`value[0, 0]`), a
cell an object array. loadmat never unpickles anything. MATLAB v7.3 files are HDF5, which
loadmat does not read: they are refused with a message saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from eeg_emotion.errors import DataError


def load(path: Path) -> dict[str, Any]:
    """The file's variables (names not starting with `__`), or a DataError saying why not."""
    if not path.exists():
        raise DataError(path, "file not found")
    if path.is_dir():
        raise DataError(path, "is a folder, not a MATLAB file")
    try:
        mat = scipy.io.loadmat(path)
    except NotImplementedError:
        raise DataError(
            path,
            "is a MATLAB v7.3 (HDF5) file, which is not read: save it in MATLAB as v7 "
            "(save(name, '-v7')) or older",
        ) from None
    except PermissionError:
        raise DataError(path, "cannot read it: permission denied") from None
    except (OSError, EOFError) as exc:
        raise DataError(path, f"file is truncated or corrupt ({exc})") from None
    except Exception as exc:  # loadmat raises many types (MatReadError, ValueError, zlib.error...)
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason:
            raise DataError(path, f"file is truncated ({reason})") from None
        raise DataError(path, f"not a readable MATLAB file ({reason})") from None
    return {k: v for k, v in mat.items() if not k.startswith("__")}


def variable(path: Path, mat: dict[str, Any], name: str) -> Any:
    if name not in mat:
        raise DataError(
            path, f"no variable '{name}' (variables present: {', '.join(sorted(mat)) or 'none'})"
        )
    return mat[name]


def struct(path: Path, value: Any, where: str, fields: tuple[str, ...]) -> np.void:
    """The one record of a 1x1 struct, after checking that it has `fields`."""
    if not isinstance(value, np.ndarray) or value.dtype.names is None:
        raise DataError(path, f"{where} is not a struct ({describe(value)})")
    if value.size != 1:
        raise DataError(path, f"{where} is a {_dims(value)} struct array; expected 1x1")
    missing = [f for f in fields if f not in value.dtype.names]
    if missing:
        raise DataError(
            path,
            f"{where} has no field {missing[0]!r} (fields: {', '.join(value.dtype.names)})",
        )
    return value.reshape(-1)[0]


def entries(path: Path, value: Any, where: str, count: int | None = None) -> list[Any]:
    """The elements of a cell (or struct array) vector, 1xN or Nx1, in order."""
    if not isinstance(value, np.ndarray) or (value.dtype != object and value.dtype.names is None):
        raise DataError(path, f"{where} is not a cell array ({describe(value)})")
    if value.ndim != 2 or (min(value.shape) > 1 and value.size):
        raise DataError(path, f"{where} is a {_dims(value)} cell; expected a 1xN or Nx1 vector")
    if count is not None and value.size != count:
        raise DataError(path, f"{where} has {value.size} entries; expected {count}")
    items = list(value.reshape(-1))
    if value.dtype.names is not None:  # a struct array: each element as a 1x1 struct
        items = [np.array([[item]], dtype=value.dtype) for item in items]
    return items


def matrix(path: Path, value: Any, where: str) -> np.ndarray:
    """A real 2-D numeric array as float (float32 stays float32, the rest becomes float64)."""
    if not isinstance(value, np.ndarray) or value.dtype == object or value.dtype.names:
        raise DataError(path, f"{where} is not a numeric matrix ({describe(value)})")
    if value.dtype.kind not in "fiu":
        raise DataError(path, f"{where} has dtype {value.dtype}; expected real numbers")
    if value.ndim != 2:
        raise DataError(path, f"{where} has shape {value.shape}; expected a 2-D matrix")
    return value if value.dtype in (np.float32, np.float64) else value.astype(np.float64)


def scalar(path: Path, value: Any, where: str) -> float:
    if (
        not isinstance(value, np.ndarray)
        or value.dtype.kind not in "fiu"
        or value.size != 1
        or not np.isfinite(value).all()
    ):
        raise DataError(path, f"{where} is not a finite number ({describe(value)})")
    return float(value.reshape(-1)[0])


def text(path: Path, value: Any, where: str) -> str:
    if isinstance(value, np.ndarray) and value.dtype.kind == "U" and value.size <= 1:
        return str(value.reshape(-1)[0]) if value.size else ""
    raise DataError(path, f"{where} is not text ({describe(value)})")


def describe(value: Any) -> str:
    """What a value is, for messages: 'a 14x900 double matrix', 'a 1x20 cell'."""
    if not isinstance(value, np.ndarray):
        return f"a {type(value).__name__}"
    if value.dtype == object:
        return f"a {_dims(value)} cell"
    if value.dtype.names is not None:
        return f"a {_dims(value)} struct"
    return f"a {_dims(value)} {value.dtype} array"


def _dims(value: np.ndarray) -> str:
    return "x".join(map(str, value.shape)) or "scalar"


def signal(
    path: Path, value: Any, where: str, channels: int, *, channels_first: bool
) -> np.ndarray:
    """A (channels, samples) array from a matrix stored either way round, checked for its
    channel count and orientation (a transposed matrix is named as such) and emptiness."""
    m = matrix(path, value, where)
    axis = 0 if channels_first else 1
    expected = f"({channels}, samples)" if channels_first else f"(samples, {channels})"
    if m.shape[axis] != channels:
        hint = "; it looks transposed" if m.shape[1 - axis] == channels else ""
        raise DataError(path, f"{where} has shape {m.shape}; expected {expected}{hint}")
    if m.size == 0:
        raise DataError(path, f"{where} has no samples (shape {m.shape})")
    return m if channels_first else np.ascontiguousarray(m.T)
