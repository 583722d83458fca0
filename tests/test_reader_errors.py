"""Each kind of bad file of every dataset format gives one DataError that names the file,
the trial and the problem."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.io

from eeg_emotion.data.readers import (
    make_reader,
)
from tests.helpers.readers import edit_mat, one_error

# ------------------------------------------------------------------------------ bad files

MAT_FILES = {
    "dreamer": ("dreamer", lambda root: root / "DREAMER.mat"),
    "seed": ("seed", lambda root: sorted((root / "Preprocessed_EEG").glob("1_*.mat"))[0]),
    "seed_iv": ("seed_iv", lambda root: sorted((root / "eeg_raw_data" / "1").glob("1_*.mat"))[0]),
    "amigos": ("amigos", lambda root: root / "Data_Preprocessed_P01.mat"),
}


def _read_first(source: str, root: Path) -> object:
    reader = make_reader(source)
    return reader.read(reader.find(root)[0])


@pytest.mark.parametrize("fmt", list(MAT_FILES))
def test_truncated_mat_file(fmt, copy_of):
    root = copy_of(fmt)
    source, target = MAT_FILES[fmt]
    path = target(root)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    one_error(lambda: _read_first(source, root), path, "truncated")


@pytest.mark.parametrize("fmt", list(MAT_FILES))
def test_matlab_v73_file_is_refused_by_name(fmt, copy_of):
    root = copy_of(fmt)
    source, target = MAT_FILES[fmt]
    path = target(root)
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5"
    path.write_bytes(header.ljust(116, b" ") + bytes(8) + b"\x00\x02IM" + bytes(384))
    one_error(lambda: _read_first(source, root), path, "MATLAB v7.3", "HDF5")


def test_real_hdf5_v73_file_is_refused(copy_of):
    h5py = pytest.importorskip("h5py")
    root = copy_of("dreamer")
    path = root / "DREAMER.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["DREAMER/noOfSubjects"] = np.array([[2.0]])
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5"
    with path.open("r+b") as f:
        f.write(header.ljust(116, b" ") + bytes(8) + b"\x00\x02IM")
    assert h5py.File(path, "r")["DREAMER/noOfSubjects"].shape == (1, 1)
    one_error(lambda: _read_first("dreamer", root), path, "MATLAB v7.3")


def _dreamer_person(mat: dict[str, Any], subject: int = 1) -> Any:
    return mat["DREAMER"][0, 0]["Data"][0, subject - 1][0, 0]


def _drop_field(struct: np.ndarray, name: str) -> np.ndarray:
    names = [n for n in struct.dtype.names if n != name]
    out = np.empty(struct.shape, dtype=[(n, object) for n in names])
    for n in names:
        out[0, 0][n] = struct[0, 0][n]
    return out


def _set(cell: np.ndarray, index: tuple[int, int], value: np.ndarray) -> None:
    cell[index] = value


def _without_arousal(mat: dict[str, Any]) -> np.ndarray:
    return _drop_field(mat["DREAMER"][0, 0]["Data"][0, 0], "ScoreArousal")


DREAMER_CASES = {
    "wrong top-level name": (
        lambda m: m.update(dreamer=m.pop("DREAMER")),
        ["no variable 'DREAMER'"],
    ),
    "missing field": (
        lambda m: _set(m["DREAMER"][0, 0]["Data"], (0, 0), _without_arousal(m)),
        ["participant 1", "no field 'ScoreArousal'"],
    ),
    "transposed trial": (
        lambda m: _set(
            _dreamer_person(m)["EEG"][0, 0]["stimuli"],
            (1, 0),
            _dreamer_person(m)["EEG"][0, 0]["stimuli"][1, 0].T.copy(),
        ),
        ["participant 1", "trial 2", "looks transposed"],
    ),
    "wrong channel count": (
        lambda m: _set(
            _dreamer_person(m)["EEG"][0, 0]["baseline"],
            (2, 0),
            _dreamer_person(m)["EEG"][0, 0]["baseline"][2, 0][:, :13].copy(),
        ),
        ["trial 3", "EEG.baseline", "expected (samples, 14)"],
    ),
    "NaN in the EEG": (
        lambda m: _dreamer_person(m)["EEG"][0, 0]["stimuli"][0, 0].__setitem__((5, 3), np.nan),
        ["trial 1", "non-finite", "channel FC5, sample 5"],
    ),
    "score off the scale": (
        lambda m: _dreamer_person(m)["ScoreArousal"].__setitem__((1, 0), 6.0),
        ["trial 2", "arousal rating is 6.0", "1..5"],
    ),
    "NaN score": (
        lambda m: _dreamer_person(m)["ScoreValence"].__setitem__((2, 0), np.nan),
        ["trial 3", "valence rating is nan"],
    ),
    "empty trial": (
        lambda m: _set(_dreamer_person(m)["EEG"][0, 0]["stimuli"], (0, 0), np.zeros((0, 14))),
        ["trial 1", "no samples"],
    ),
    "too few trials": (
        lambda m: m["DREAMER"][0, 0]["noOfVideoSequences"].__setitem__((0, 0), 4.0),
        ["EEG.stimuli has 3 entries; expected 4"],
    ),
}


@pytest.mark.parametrize("case", list(DREAMER_CASES))
def test_bad_dreamer_file(case, copy_of):
    edit, words = DREAMER_CASES[case]
    root = copy_of("dreamer")
    edit_mat(root / "DREAMER.mat", edit)
    one_error(lambda: _read_first("dreamer", root), root / "DREAMER.mat", *words)


def _seed_name(m: dict[str, Any], k: int) -> str:
    (name,) = [v for v in m if v.endswith(f"_eeg{k}")]
    return name


def _strip_initials(m: dict[str, Any]) -> None:
    for k in (1, 2, 3):
        m[f"eeg{k}"] = m.pop(_seed_name(m, k))


SEED_CASES = {
    "variables without initials": (
        _strip_initials,
        ["no variables named <initials>_eeg<k>", "eeg1"],
    ),
    "a trial missing": (lambda m: m.pop(_seed_name(m, 2)), ["trial 2 is missing"]),
    "a trial too many": (
        lambda m: m.update(zz_eeg30=m[_seed_name(m, 1)]),
        ["'zz_eeg30' names trial 30", "trials are 1.."],
    ),
    "transposed trial": (
        lambda m: m.update({_seed_name(m, 3): m[_seed_name(m, 3)].T.copy()}),
        ["trial 3", "looks transposed"],
    ),
    "61 channels": (
        lambda m: m.update({_seed_name(m, 1): m[_seed_name(m, 1)][:61].copy()}),
        ["trial 1", "expected (62, samples)"],
    ),
    "NaN in the EEG": (
        lambda m: m[_seed_name(m, 2)].__setitem__((61, 7), np.inf),
        ["trial 2", "non-finite", "channel CB2, sample 7"],
    ),
}


@pytest.mark.parametrize("source", ["seed", "seed_iv"])
@pytest.mark.parametrize("case", list(SEED_CASES))
def test_bad_seed_file(source, case, copy_of):
    edit, words = SEED_CASES[case]
    root = copy_of(source)
    path = MAT_FILES[source][1](root)
    edit_mat(path, edit)
    one_error(lambda: _read_first(source, root), path, *words)


def test_bad_seed_labels(copy_of):
    root = copy_of("seed")
    label = root / "Preprocessed_EEG" / "label.mat"
    scipy.io.savemat(label, {"label": np.array([[1.0, 0.0, 2.0]])})
    one_error(lambda: _read_first("seed", root), label, "trial 3", "label is 2.0")
    scipy.io.savemat(label, {"labels": np.array([[1.0, 0.0, -1.0]])})
    one_error(lambda: _read_first("seed", root), label, "no variable 'label'")
    (root / "Preprocessed_EEG" / "label.mat").unlink()
    one_error(lambda: make_reader("seed").find(root), root, "no label.mat")


def _amigos_row(m: dict[str, Any], k: int) -> np.ndarray:
    return m["labels_selfassessment"][0, k - 1]


AMIGOS_CASES = {
    "no labels": (
        lambda m: m.pop("labels_selfassessment"),
        ["no variable 'labels_selfassessment'"],
    ),
    "19 cells": (
        lambda m: m.update(joined_data=m["joined_data"][:, :19]),
        ["'joined_data' has 19 cells; expected 1x20"],
    ),
    "transposed trial": (
        lambda m: _set(m["joined_data"], (0, 4), m["joined_data"][0, 4].T.copy()),
        ["trial 5", "looks transposed"],
    ),
    "NaN in the EEG": (
        lambda m: m["joined_data"][0, 1].__setitem__((9, 0), np.nan),
        ["trial 2", "non-finite", "channel AF3, sample 9"],
    ),
    "rating off the scale": (
        lambda m: _amigos_row(m, 3).__setitem__((0, 1), 10.0),
        ["trial 3", "valence rating is 10.0", "1..9"],
    ),
    "NaN rating": (
        lambda m: _amigos_row(m, 4).__setitem__((0, 0), np.nan),
        ["trial 4", "arousal rating is nan"],
    ),
    "short label row": (
        lambda m: _set(m["labels_selfassessment"], (0, 5), _amigos_row(m, 6)[:, :5].copy()),
        ["trial 6", "expected (1, 12)"],
    ),
    "empty short video": (
        lambda m: _set(m["joined_data"], (0, 15), np.zeros((0, 0))),
        ["trial 16", "is empty"],
    ),
}


@pytest.mark.parametrize("case", list(AMIGOS_CASES))
def test_bad_amigos_file(case, copy_of):
    edit, words = AMIGOS_CASES[case]
    root = copy_of("amigos")
    path = root / "Data_Preprocessed_P01.mat"
    edit_mat(path, edit)
    one_error(lambda: _read_first("amigos", root), path, *words)


def test_amigos_nan_rating_can_skip_its_trial(copy_of, caplog):
    root = copy_of("amigos")
    path = root / "Data_Preprocessed_P01.mat"
    edit_mat(path, lambda m: _amigos_row(m, 4).__setitem__((0, 2), np.nan))
    reader = make_reader("amigos", {"nan_labels": "skip"})
    with caplog.at_level(logging.WARNING):
        rec = reader.read(reader.find(root)[0])
    assert rec.trial_numbers == [1, 2, 3, *range(5, 17)] and len(rec.trials) == 15
    assert not np.isnan(rec.targets.values).any()
    assert "trial 4 skipped: its dominance rating is NaN" in caplog.text
    # An empty long video is fine while long videos are dropped.
    edit_mat(path, lambda m: _set(m["joined_data"], (0, 18), np.zeros((0, 0))))
    assert len(reader.read(reader.find(root)[0]).trials) == 15


def _edit_events(root: Path, edit: Callable[[list[str]], list[str]]) -> Path:
    path = root / "sub-01_task-emotion_events.tsv"
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    return path


def _cell(line: str, column: int, value: str) -> str:
    cells = line.split("\t")
    cells[column] = value
    return "\t".join(cells)


MNE_TABLE_CASES = {
    "missing column": (
        lambda rows: [r.rsplit("\t", 3)[0] for r in rows],  # keeps onset..valence
        ["no column 'arousal'"],
    ),
    "rating off the scale": (
        lambda rows: [rows[0], rows[1], _cell(rows[2], 4, "12"), *rows[3:]],
        ["trial 2", "arousal rating is 12.0"],
    ),
    "missing rating": (
        lambda rows: [rows[0], _cell(rows[1], 3, "n/a"), *rows[2:]],
        ["trial 1", "valence rating is nan"],
    ),
    "no such trial": (
        lambda rows: [rows[0], _cell(rows[1], 0, "1.0"), *rows[2:]],
        ["line 2", "no annotation", "onset 1 s"],
    ),
    "bad onset": (
        lambda rows: [rows[0], _cell(rows[1], 0, "soon"), *rows[2:]],
        ["line 2", "onset is 'soon'"],
    ),
}


@pytest.mark.parametrize("case", list(MNE_TABLE_CASES))
def test_bad_mne_label_table(case, copy_of):
    edit, words = MNE_TABLE_CASES[case]
    root = copy_of("fif")
    path = _edit_events(root, edit)
    one_error(lambda: _read_first("mne", root), path, *words)


def test_bad_mne_recordings(copy_of):
    import mne

    root = copy_of("fif")
    events = root / "sub-01_task-emotion_events.tsv"
    events.rename(root / "elsewhere.tsv")
    recording = root / "sub-01_task-emotion_eeg.fif"
    one_error(lambda: _read_first("mne", root), recording, "no label table", events.name)
    (root / "elsewhere.tsv").rename(events)

    raw = mne.io.read_raw(recording, preload=True, verbose="error")
    raw._data[5, 400] = np.nan
    raw.save(recording, overwrite=True, verbose="error")
    one_error(lambda: _read_first("mne", root), recording, "trial 1", "non-finite", "FC1")

    edf_root = copy_of("edf")
    edf = edf_root / "sub-01_task-emotion_eeg.edf"
    edf.write_bytes(edf.read_bytes()[:200])
    one_error(lambda: _read_first("mne", edf_root), edf, "MNE cannot read it")
