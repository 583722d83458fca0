"""DEAP reader: real-format round trips and every bad-input case, malicious pickles included."""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import numpy as np
import pytest

from eeg_emotion.data.channels import ALL_CHANNELS, EEG_CHANNELS, select_channels
from eeg_emotion.data.deap_pickle import dumps_deap, write_subject
from eeg_emotion.data.readers import deap
from eeg_emotion.data.synthetic import SyntheticSpec, subject_recording
from eeg_emotion.errors import ConfigError, DataError
from tests.helpers.paths import ROOT


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose prerequisite this machine lacks; under CI, which has it, fail."""
    __tracebackhide__ = True  # the skip or failure is reported at the test's line
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason} (CI=true: the CI machine must have it)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def small() -> tuple[np.ndarray, np.ndarray]:
    return subject_recording(SyntheticSpec(subjects=1, trials=3, samples=640), 1)


def test_synthetic_file_is_python2_style_and_loads_with_plain_pickle(tmp_path, small):
    data, labels = small
    path = tmp_path / "s01.dat"
    write_subject(path, data, labels)
    raw = path.read_bytes()
    ops = {op.name for op, _, _ in pickletools.genops(raw)}
    # Python 2 cPickle: protocol 2, byte strings as STRING opcodes, pre-2.0 numpy module path.
    assert raw[:2] == b"\x80\x02"
    assert {"SHORT_BINSTRING", "BINSTRING"} <= ops
    assert "BINUNICODE" not in ops and "SHORT_BINUNICODE" not in ops
    assert b"numpy.core.multiarray\n_reconstruct" in raw
    with path.open("rb") as f:  # what DEAP users do with the real files
        plain = pickle.load(f, encoding="latin1")
    np.testing.assert_array_equal(plain["data"], data)
    assert plain["data"].dtype == np.float64 and plain["labels"].dtype == np.float64

    rec = deap.read_subject(path)
    assert rec.subject == 1
    np.testing.assert_array_equal(rec.data, data)
    np.testing.assert_array_equal(rec.labels, labels)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_reads_pickles_written_by_current_numpy(tmp_path, small, protocol):
    data, labels = small
    path = tmp_path / "s07.dat"
    path.write_bytes(pickle.dumps({"data": data, "labels": labels}, protocol=protocol))
    rec = deap.read_subject(path)
    assert rec.subject == 7
    np.testing.assert_array_equal(rec.data, data)


def test_accepts_float32(tmp_path, small):
    data, labels = small
    path = tmp_path / "s01.dat"
    path.write_bytes(pickle.dumps({"data": data.astype(np.float32), "labels": labels}))
    assert deap.read_subject(path).data.dtype == np.float32


class Payload:
    """Unpickling this would create a marker file: it must never happen."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


class SystemPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("payload_cls", [Payload, SystemPayload])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, small, payload_cls):
    data, labels = small
    marker = tmp_path / "marker"
    path = tmp_path / "s01.dat"
    path.write_bytes(
        pickle.dumps({"data": data, "labels": labels, "x": payload_cls(marker)}, protocol=2)
    )
    with pytest.raises(DataError, match=r"s01\.dat: not a valid DEAP file: refused to load global"):
        deap.read_subject(path)
    assert not marker.exists()


def test_payload_hidden_inside_numpy_dtype_args_is_refused(tmp_path):
    # A global smuggled where numpy expects a dtype argument is refused by name.
    marker = tmp_path / "m"
    stream = io.BytesIO()
    pickle.Pickler(stream, protocol=2).dump(Payload(marker))
    path = tmp_path / "s02.dat"
    path.write_bytes(stream.getvalue())
    with pytest.raises(DataError, match=r"refused to load global '(__builtin__|builtins)\.exec'"):
        deap.read_subject(path)
    assert not marker.exists()


def _bad(tmp_path: Path, obj: object, name: str = "s01.dat") -> Path:
    path = tmp_path / name
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


def test_bad_inputs_give_one_clear_error(tmp_path, small):
    data, labels = small
    cases = {
        "file is truncated": None,
        "missing key 'labels'": {"data": data},
        "expected \\(trials, 40, samples\\)": {"data": data[:, :39], "labels": labels},
        "non-finite values \\(NaN/inf\\), first at trial 1, channel Fp1, sample 5": None,
        "dtype int64; expected float32 or float64": {
            "data": data.astype(np.int64),
            "labels": labels,
        },
        "'labels' has shape \\(2, 4\\); expected \\(3, 4\\)": {"data": data, "labels": labels[:2]},
        "ratings within 1..9; trial 0 arousal is 12.0": None,
        "expected a dict": [data, labels],
    }
    for pattern, obj in cases.items():
        if pattern.startswith("file is truncated"):
            path = tmp_path / "s01.dat"
            path.write_bytes(dumps_deap(data, labels)[:5000])
        elif pattern.startswith("non-finite"):
            bad = data.copy()
            bad[1, 0, 5] = np.nan
            path = _bad(tmp_path, {"data": bad, "labels": labels})
        elif pattern.startswith("ratings"):
            bad = labels.copy()
            bad[0, 1] = 12.0
            path = _bad(tmp_path, {"data": data, "labels": bad})
        else:
            path = _bad(tmp_path, obj)
        with pytest.raises(DataError, match=pattern) as info:
            deap.read_subject(path)
        assert str(info.value).startswith(str(path)), "the message names the file"


def test_garbage_and_empty_files(tmp_path):
    for content in (b"", b"not a pickle at all", b"\x80\x02}q\x00(U\x04data"):
        path = tmp_path / "s03.dat"
        path.write_bytes(content)
        with pytest.raises(DataError, match=r"s03\.dat: "):
            deap.read_subject(path)


def test_folder_and_subject_errors(tmp_path, small):
    with pytest.raises(DataError, match="DEAP folder not found"):
        deap.find_subjects(tmp_path / "missing")
    with pytest.raises(DataError, match="no DEAP files found"):
        deap.find_subjects(tmp_path)
    write_subject(tmp_path / "s01.dat", *small)
    write_subject(tmp_path / "s03.dat", *small)
    assert deap.find_subjects(tmp_path) == [1, 3]
    with pytest.raises(DataError, match="file not found"):
        deap.read_subject(tmp_path / "s09.dat")


def test_channel_names_and_selection():
    assert len(EEG_CHANNELS) == 32 and len(ALL_CHANNELS) == 40
    assert EEG_CHANNELS[0] == "Fp1" and EEG_CHANNELS[16] == "Fp2" and ALL_CHANNELS[36] == "GSR"
    assert select_channels("eeg") == list(range(32))
    assert select_channels(["fz", "Cz", "GSR"]) == [18, 23, 36]
    with pytest.raises(ConfigError, match="unknown channel 'Xx'"):
        select_channels(["Xx"])


def test_a_file_without_trials_is_called_empty_and_bytes_stays_restricted(tmp_path):
    path = tmp_path / "s01.dat"  # numpy pickles an empty array's data as bytes() (protocol 2)
    empty = {"data": np.zeros((0, 40, 8064)), "labels": np.zeros((0, 4))}
    path.write_bytes(pickle.dumps(empty, protocol=2))
    with pytest.raises(DataError, match=r"s01\.dat: 'data' is empty"):
        deap.read_subject(path)
    # bytes(...) with an argument (a size, say) is still refused.
    stream = io.BytesIO()
    stream.write(b"\x80\x02c__builtin__\nbytes\nK\x10\x85R.")  # bytes(16)
    path.write_bytes(stream.getvalue())
    with pytest.raises(DataError, match="refused bytes"):
        deap.read_subject(path)


def test_a_folder_named_like_a_deap_file_is_a_clear_error(tmp_path):
    (tmp_path / "s01.dat").mkdir()
    with pytest.raises(DataError, match=r"s01\.dat: is a folder, not a DEAP file"):
        deap.read_subject(tmp_path / "s01.dat")


def test_an_unreadable_file_is_a_clear_error(small):
    """A file without read permission, read as an ordinary user: in this process, or as root
    (who reads everything) in a child process run as the unprivileged user nobody."""
    folder = Path(tempfile.mkdtemp())  # pytest's own tmp_path is private to root
    try:
        folder.chmod(0o755)
        path = folder / "s01.dat"
        path.write_bytes(dumps_deap(*small))
        path.chmod(0o000)
        if os.geteuid() == 0:
            if not shutil.which("setpriv"):
                unavailable("setpriv (util-linux) is needed to read a file as nobody, as root")
            nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
            probe = [*nobody, sys.executable, "-c", "import eeg_emotion.data.readers.deap"]
            can = subprocess.run(probe, capture_output=True, text=True, cwd=ROOT)
            if can.returncode != 0:  # e.g. the checkout or Python in a home only root may enter
                unavailable(f"user nobody cannot run this Python here: {can.stderr[-500:]}")
            code = (
                "from eeg_emotion.data.readers import deap\n"
                "from eeg_emotion.errors import DataError\n"
                f"try:\n    deap.read_subject({str(path)!r})\n"
                "except DataError as exc:\n    print(exc)\n"
            )
            out = subprocess.run(
                [*nobody, sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT
            )
            message = out.stdout.strip() or out.stderr[-3000:]
        else:
            # A user who reads it anyway (CAP_DAC_OVERRIDE) cannot show the error.
            assert not os.access(path, os.R_OK), "this user reads files without permission"
            with pytest.raises(DataError) as refused:
                deap.read_subject(path)
            message = str(refused.value)
        assert message == f"{path}: cannot read it: permission denied"
    finally:
        shutil.rmtree(folder)
