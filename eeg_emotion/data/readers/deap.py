"""Read DEAP `data_preprocessed_python` files safely.

Each `sNN.dat` is a Python-2 cPickle of `{"data": (trials, 40, samples), "labels": (trials, 4)}`.
A pickle can run arbitrary code when loaded, so files are read with an unpickler that resolves
only the handful of numpy globals an array needs; anything else is refused before it runs.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eeg_emotion.data.channels import ALL_CHANNELS, EEG_CHANNELS
from eeg_emotion.data.readers import recording
from eeg_emotion.data.source_options import DeapOptions
from eeg_emotion.errors import DataError

LABEL_NAMES = ("valence", "arousal", "dominance", "liking")  # the columns of a file's `labels`
SAMPLING_RATE = 128
FILE_PATTERN = re.compile(r"^s(\d{2,3})\.dat$")


def _numpy_attr(module: str, name: str) -> object:
    # numpy 2 moved numpy.core to numpy._core; real DEAP files name the old path.
    for candidate in (module.replace("numpy.core", "numpy._core"), module):
        try:
            mod = __import__(candidate, fromlist=[name])
            return getattr(mod, name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"numpy has no {module}.{name}")


# (module, name) pairs a DEAP pickle may reference: array reconstruction and dtypes only.
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),  # protocol-5 pickles of numpy >= 1.16
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # Python 3 protocol-2 pickles of bytes; restricted to latin1 below
    ("__builtin__", "bytes"),  # protocol-2 pickles of b"" (an empty array): empty only
    ("builtins", "bytes"),
}


def _empty_bytes(*args: object) -> bytes:
    if args:
        raise pickle.UnpicklingError("refused bytes(...) with arguments")
    return b""


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refused _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except numpy array/dtype reconstruction."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(
                f"refused to load global '{module}.{name}': a DEAP file holds only numpy arrays"
            )
        if module == "_codecs":
            return _latin1_encode
        if name == "bytes":
            return _empty_bytes
        return _numpy_attr(module, name)


@dataclass
class Recording:
    """One participant: `data` (trials, channels, samples) and `labels` (trials, 4)."""

    subject: int
    data: np.ndarray
    labels: np.ndarray
    path: Path


def subject_file(root: str | Path, subject: int) -> Path:
    return Path(root) / f"s{subject:02d}.dat"


def find_subjects(root: str | Path) -> list[int]:
    """Subject numbers of every `sNN.dat` in `root`, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            root, "DEAP folder not found (set data.root to the data_preprocessed_python folder)"
        )
    subjects = sorted(int(m.group(1)) for p in root.iterdir() if (m := FILE_PATTERN.match(p.name)))
    if not subjects:
        raise DataError(root, "no DEAP files found (expected s01.dat, s02.dat, ...)")
    return subjects


def _unpickle(path: Path) -> object:
    try:
        with path.open("rb") as f:
            return RestrictedUnpickler(f, encoding="latin1").load()
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except IsADirectoryError:
        raise DataError(path, "is a folder, not a DEAP file") from None
    except PermissionError:
        raise DataError(path, "cannot read it: permission denied") from None
    except OSError as exc:
        raise DataError(path, f"cannot read it ({exc.strerror or exc})") from None
    except pickle.UnpicklingError as exc:
        if "truncated" in str(exc):
            raise DataError(path, "file is truncated") from None
        raise DataError(path, f"not a valid DEAP file: {exc}") from None
    except (EOFError, ValueError) as exc:
        reason = "file is truncated" if isinstance(exc, EOFError) else f"corrupt pickle ({exc})"
        raise DataError(path, reason) from None
    except (AttributeError, ImportError, IndexError, KeyError, TypeError, OverflowError) as exc:
        raise DataError(path, f"corrupt or foreign pickle ({type(exc).__name__}: {exc})") from None


def validate(path: Path, obj: object) -> tuple[np.ndarray, np.ndarray]:
    """Check keys, shapes, dtypes and values; return (data, labels) or raise DataError."""
    data, labels = _arrays(path, obj)
    _check_shapes(path, data, labels)
    _check_values(path, data, labels)
    return data, labels


def _arrays(path: Path, obj: object) -> tuple[np.ndarray, np.ndarray]:
    """'data' and 'labels' of the unpickled dict, as float arrays."""
    if not isinstance(obj, dict):
        raise DataError(
            path, f"expected a dict with 'data' and 'labels', found {type(obj).__name__}"
        )
    keys = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    for key in ("data", "labels"):
        if key not in keys:
            raise DataError(path, f"missing key '{key}' (keys present: {sorted(map(str, keys))})")
    data, labels = keys["data"], keys["labels"]
    for key, arr in (("data", data), ("labels", labels)):
        if not isinstance(arr, np.ndarray):
            raise DataError(path, f"'{key}' is a {type(arr).__name__}, not a numpy array")
        if arr.dtype not in (np.float32, np.float64):
            raise DataError(path, f"'{key}' has dtype {arr.dtype}; expected float32 or float64")
    return data, labels


def _check_shapes(path: Path, data: np.ndarray, labels: np.ndarray) -> None:
    if data.ndim != 3 or data.shape[1] != len(ALL_CHANNELS):
        raise DataError(
            path, f"'data' has shape {data.shape}; expected (trials, {len(ALL_CHANNELS)}, samples)"
        )
    if data.shape[0] == 0 or data.shape[2] == 0:
        raise DataError(path, f"'data' is empty (shape {data.shape})")
    if labels.shape != (data.shape[0], len(LABEL_NAMES)):
        raise DataError(
            path,
            f"'labels' has shape {labels.shape}; expected ({data.shape[0]}, 4) to match "
            f"{data.shape[0]} trials in 'data'",
        )


def _check_values(path: Path, data: np.ndarray, labels: np.ndarray) -> None:
    """Finite signals and ratings within DEAP's 1..9 scale."""
    bad = ~np.isfinite(data)
    if bad.any():
        trial, channel, sample = np.argwhere(bad)[0]
        raise DataError(
            path,
            f"'data' has {int(bad.sum())} non-finite values (NaN/inf), first at trial {trial}, "
            f"channel {ALL_CHANNELS[channel]}, sample {sample}",
        )
    if not np.isfinite(labels).all() or labels.min() < 1 or labels.max() > 9:
        trial, col = np.argwhere(~np.isfinite(labels) | (labels < 1) | (labels > 9))[0]
        raise DataError(
            path,
            f"'labels' must be ratings within 1..9; trial {trial} {LABEL_NAMES[col]} "
            f"is {labels[trial, col]}",
        )


def read_subject(path: str | Path, subject: int | None = None) -> Recording:
    """Read and validate one `sNN.dat`."""
    path = Path(path)
    if subject is None:
        match = FILE_PATTERN.match(path.name)
        subject = int(match.group(1)) if match else 0
    data, labels = validate(path, _unpickle(path))
    return Recording(subject=subject, data=data, labels=labels, path=path)


class DeapReader:
    """DEAP through the reader seam: one Recording per `sNN.dat`, ratings on 1..9."""

    def __init__(self, options: DeapOptions | None = None) -> None:
        self.options = options or DeapOptions()

    def find(self, root: str | Path) -> list[recording.RecordingRef]:
        return [recording.RecordingRef(subject_file(root, s), s) for s in find_subjects(root)]

    def read(self, ref: recording.RecordingRef) -> recording.Recording:
        rec = read_subject(ref.path, ref.subject)
        channels = EEG_CHANNELS if self.options.channels == "eeg" else ALL_CHANNELS
        data = rec.data[:, : len(channels)]
        cut = round(self.options.baseline_seconds * SAMPLING_RATE)
        if cut >= data.shape[2]:
            raise DataError(
                ref.path,
                f"trials have {data.shape[2]} samples, no more than the "
                f"{self.options.baseline_seconds:g} s baseline",
            )
        return recording.Recording.of(
            ref,
            source="deap",
            trials=list(data[:, :, cut:]),
            channels=channels,
            sampling_rate=SAMPLING_RATE,
            targets=recording.Ratings(LABEL_NAMES, rec.labels.astype(np.float64), 1.0, 9.0),
            trial_numbers=list(range(1, len(data) + 1)),
            baselines=list(data[:, :, :cut]) if cut else None,
        )
