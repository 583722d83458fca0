"""predict needs trial spans, never ratings: a model trained on DEAP data predicts on an EDF,
and one trained with a CSV label table predicts on recordings whose table has no ratings, empty
ones, or no table at all. The label table is checked: a CSV that leaves out recordings under
the root, skipped trials reported by every build and reuse, a truncated recording named as
such, every row message with its recording and line."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from eeg_emotion.data.readers import make_reader
from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic
from tests.helpers.paths import ROOT
from tests.helpers.readers import one_error, read_every
from tests.helpers.training import PY, command, run

PREDICT = str(ROOT / "launch" / "predict.py")
TRIALS = 4
CSV_RUN = ["data.source=mne", "data.options.labels=labels.csv", "data.tokenizer.max_tokens=512"]


def _to_csv(root: Path, *, ratings: bool = True, drop: tuple[int, ...] = ()) -> Path:
    """The recordings' events tables as one labels.csv (without the rating columns, or
    without the recordings of the subjects in `drop`), the tables removed."""
    lines = ["file,onset,duration" + (",valence,arousal" if ratings else "")]
    for events in sorted(root.glob("sub-*_events.tsv")):
        name = events.name.replace("_events.tsv", "_eeg.edf")
        for row in events.read_text().splitlines()[1:]:
            cells = row.split("\t")
            if int(name[4:6]) not in drop:
                lines.append(",".join([name, *cells[:2], *(cells[3:5] if ratings else [])]))
        events.unlink()
    path = root / "labels.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def edf_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 subjects x 4 trials of 4-6 s at 128 Hz with DEAP's channel names, a CSV label table."""
    root = tmp_path_factory.mktemp("edf")
    write_synthetic("edf", root, FormatSpec(subjects=3, trials=TRIALS, seconds=(4, 6)))
    _to_csv(root)
    return root


@pytest.fixture(scope="module")
def csv_run(edf_root: Path, tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("csv-run") / "run"
    run(command(edf_root, cache, run_dir, *CSV_RUN))
    return run_dir


def _predict(run_dir: Path, inputs: Path, out: Path) -> list[str]:
    run([PY, PREDICT, str(run_dir), "--input", str(inputs), "--out", str(out)])
    return out.read_text().splitlines()[1:]


def _trials(rows: list[str]) -> list[str]:
    return [r.split(",")[2] for r in rows if ",trial," in r]


def test_a_csv_run_predicts_with_and_without_ratings(csv_run, edf_root, tmp_path):
    # The training folder, its CSV read for the spans (not an internal error).
    rows = _predict(csv_run, edf_root / "sub-02_task-emotion_eeg.edf", tmp_path / "a.csv")
    assert _trials(rows) == [f"s02-1-t{n:02d}" for n in range(1, TRIALS + 1)]
    # A CSV without rating columns, one with empty ratings, and no table at all.
    new = tmp_path / "new"
    shutil.copytree(edf_root, new)
    _to_csv(new, ratings=False)
    assert len(_trials(_predict(csv_run, new, tmp_path / "b.csv"))) == 3 * TRIALS
    lines = (edf_root / "labels.csv").read_text().splitlines()
    empty = [lines[0], *(",".join([*line.split(",")[:3], "n/a", ""]) for line in lines[1:])]
    (new / "labels.csv").write_text("\n".join(empty) + "\n")
    assert _trials(_predict(csv_run, new, tmp_path / "c.csv")) == _trials(
        _predict(csv_run, edf_root, tmp_path / "d.csv")
    )
    (new / "labels.csv").unlink()  # the annotations are the trials
    assert len(_trials(_predict(csv_run, new, tmp_path / "e.csv"))) == 3 * TRIALS


def test_a_deap_run_predicts_on_an_edf(tiny_root, edf_root, tmp_path, cache):
    run_dir = tmp_path / "deap-run"
    run(command(tiny_root, cache, run_dir))
    rows = _predict(run_dir, edf_root / "sub-01_task-emotion_eeg.edf", tmp_path / "p.csv")
    assert _trials(rows) == [f"s01-1-t{n:02d}" for n in range(1, TRIALS + 1)]
    assert rows[0].startswith("sub-01_task-emotion_eeg.edf,window,s01-1-t01,0,")
    only = tmp_path / "only-edf"
    shutil.copytree(edf_root, only)
    assert len(_trials(_predict(run_dir, only, tmp_path / "q.csv"))) == 3 * TRIALS
    # DEAP files still as before: a trial is its index in the file.
    deap_rows = _predict(run_dir, tiny_root / "s01.dat", tmp_path / "r.csv")
    assert _trials(deap_rows)[:2] == ["0", "1"]


def test_a_csv_must_list_every_recording_unless_told(edf_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(edf_root, root)
    lines = (root / "labels.csv").read_text().splitlines()
    kept = [line for line in lines if not line.startswith("sub-03")]
    (root / "labels.csv").write_text("\n".join(kept) + "\n")
    reader = make_reader("mne", {"labels": "labels.csv"})
    one_error(lambda: reader.find(root), root / "labels.csv", "sub-03_task-emotion_eeg.edf")
    recs = read_every("mne", root, {"labels": "labels.csv", "listed_only": True})
    assert [r.subject for r in recs] == [1, 2]
    # A recording read by itself: the table is found in a folder above it.
    one = make_reader("mne", {"labels": "labels.csv"})
    rec = one.read(one.ref_of(root / "sub-02_task-emotion_eeg.edf"))
    assert rec.subject == 2 and rec.targets.values.shape == (TRIALS, 2)


def test_skipped_trials_reported_by_every_build_and_reuse(edf_root, tmp_path, caplog):
    root = tmp_path / "data"
    shutil.copytree(edf_root, root)
    lines = (root / "labels.csv").read_text().splitlines()
    lines[6] = ",".join([*lines[6].split(",")[:3], "n/a", "5.0"])  # sub-02's 2nd trial
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    preprocess = [PY, str(ROOT / "launch" / "preprocess.py"), "--config"]
    cmd = [*preprocess, str(ROOT / "configs" / "tiny.yaml"), f"data.root={root}"]
    cmd += [f"data.cache_dir={tmp_path / 'cache'}", *CSV_RUN, "data.options.nan_labels=skip"]
    for attempt in ("build", "reuse"):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            run(cmd)
        warned = [r.getMessage() for r in caplog.records if "trial skipped" in r.getMessage()]
        assert warned and all("line 7 (sub-02_task-emotion_eeg.edf)" in w for w in warned), (
            attempt,
            warned,
        )
        assert "no valence" in warned[0]
        assert ("loading cached" in caplog.text) == (attempt == "reuse")


def test_truncated_recordings_and_row_messages_name_what_is_wrong(edf_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(edf_root, root)
    options = {"labels": "labels.csv"}
    table = root / "labels.csv"
    lines = table.read_text().splitlines()
    lines[3] = ",".join([*lines[3].split(",")[:3], "12", "5.0"])  # sub-01's 3rd trial
    table.write_text("\n".join(lines) + "\n")
    one_error(
        lambda: read_every("mne", root, options),
        table,
        "line 4 (sub-01_task-emotion_eeg.edf): trial 3: valence rating is 12.0",
    )
    lines[2] = lines[2].replace(lines[2].split(",")[1], "soon", 1)
    table.write_text("\n".join(lines) + "\n")
    one_error(
        lambda: read_every("mne", root, options),
        table,
        "line 3 (sub-01_task-emotion_eeg.edf): onset is 'soon'",
    )
    table.write_text((edf_root / "labels.csv").read_text())
    recording = root / "sub-02_task-emotion_eeg.edf"
    recording.write_bytes(recording.read_bytes()[: recording.stat().st_size * 2 // 3])
    message = one_error(lambda: read_every("mne", root, options), recording, "truncated")
    assert "annotation" not in message
