"""The project's own JSON files are read back through one reader, `fileio.read_json`."""

from __future__ import annotations

import pytest

from eeg_emotion import fileio
from eeg_emotion.errors import DataError


def test_a_missing_file_takes_the_default_and_a_corrupt_one_is_named(tmp_path):
    path = tmp_path / "status.json"
    assert fileio.read_json(path, default={}) == {}
    with pytest.raises(DataError, match=r"status\.json: cannot read it \(.*No such file"):
        fileio.read_json(path)
    path.write_text("")  # an empty file is cut short, not missing: no default
    with pytest.raises(DataError, match=r"status\.json: cannot read it"):
        fileio.read_json(path, default={})
    path.write_text('{"status": "running"')
    with pytest.raises(DataError, match=r"status\.json: cannot read it"):
        fileio.read_json(path)
    path.write_text('{"status": "running"}')
    assert fileio.read_json(path) == {"status": "running"}


def test_load_json_leaves_the_wording_to_the_caller(tmp_path):
    with pytest.raises(FileNotFoundError):
        fileio.load_json(tmp_path / "missing.json")
    assert fileio.load_json(tmp_path / "missing.json", default=None) is None
    (tmp_path / "afile").write_text("")
    assert fileio.load_json(tmp_path / "afile" / "status.json", default=None) is None
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError):
        fileio.load_json(tmp_path / "bad.json", default={})
