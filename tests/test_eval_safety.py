"""The commands other than training never destroy files: predict, evaluate, report, aggregate
and baseline refuse impossible input up front with one message naming the path, publish their
outputs whole (a full disk, no permission or a file where a folder belongs leaves every earlier
file as it was), and say what they scored."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from eeg_emotion import fileio
from eeg_emotion.baselines import band_power_lr, runner
from eeg_emotion.cli import aggregate as aggregate_cli
from eeg_emotion.cli import predict as predict_cli
from eeg_emotion.cli import report as report_cli
from eeg_emotion.config import Settings, load_settings
from eeg_emotion.data import pipeline
from eeg_emotion.errors import ConfigError, DataError, StorageError
from eeg_emotion.evaluation import cv, inference, report, scoring
from tests.helpers.paths import ROOT
from tests.helpers.training import run

pytestmark = pytest.mark.slow
NOSPACE = os.strerror(errno.ENOSPC)
DENIED = os.strerror(errno.EACCES)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under `folder` (hidden ones too): a file's SHA-256, a folder's
    name only. Equal snapshots: nothing was changed, added or left behind."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = f"link to {os.readlink(path)}"
        elif path.is_dir():
            out[rel] = "folder"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def settings(root: Path, cache: Path, out: Path, *overrides: str) -> Settings:
    base = [f"data.root={root}", f"data.cache_dir={cache}", f"output_dir={out}"]
    return load_settings(ROOT / "configs" / "tiny.yaml", [*base, *overrides])


def fail_replace(monkeypatch: pytest.MonkeyPatch, name: str, code: int = errno.ENOSPC) -> None:
    """os.replace fails, as the real call does, when it would put a file named `name` in place."""
    real = os.replace

    def replace(src, dst, **kwargs) -> None:
        if Path(dst).name == name:
            raise OSError(code, os.strerror(code), str(src), None, str(dst))
        real(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


def fail_write_text(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Path.write_text of a file named `name` fails as a full disk does: no file named."""
    real = Path.write_text

    def write_text(self: Path, *args, **kwargs) -> int:
        if self.name == name:
            raise OSError(errno.ENOSPC, NOSPACE)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


def assert_refuses_a_folder_in_place_of(
    folder: Path, name: str, write: Callable[[], object]
) -> None:
    """With a folder where `write` puts the file `folder/name`, it fails naming the file and
    leaves `folder` as it was."""
    (folder / name).unlink()
    (folder / name).mkdir()
    before = snapshot(folder)
    with pytest.raises(StorageError) as info:
        write()
    assert f"{name}: cannot write it (it is a folder, not a file)" in str(info.value)
    assert snapshot(folder) == before


@pytest.fixture(scope="module")
def data(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's own copy of the tiny data (sizes and times kept), to change files in."""
    root = tmp_path_factory.mktemp("deap")
    for path in tiny_root.glob("*.dat"):
        shutil.copy2(path, root / path.name)
    return root


@pytest.fixture(scope="module")
def finished(data: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny LLM run on `data` (trained as users train)."""
    run_dir = tmp_path_factory.mktemp("llm") / "run"
    cmd = [sys.executable, "launch/train.py", "--config", "configs/tiny.yaml"]
    cmd += [f"data.root={data}", f"data.cache_dir={cache}", f"output_dir={run_dir}"]
    run([*cmd, "train.epochs=1"])
    return run_dir


@pytest.fixture(scope="module")
def group(data: Path, cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recorded 3-fold cross_trial CV group of the band_power_lr baseline."""
    folder = tmp_path_factory.mktemp("cv") / "cv"
    base = settings(data, cache, folder, "baseline.c_grid=[0.1]")
    cv.write_group(folder, "cross_trial", 3, base.model_dump(mode="json"), baseline="band_power_lr")
    for fold in range(3):
        split = ["data.split.protocol=cross_trial", "data.split.num_folds=3"]
        split.append(f"data.split.fold={fold}")
        runner.run(settings(data, cache, folder / f"fold-{fold}", "baseline.c_grid=[0.1]", *split))
    return folder


def copy_of(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / folder.name
    shutil.copytree(folder, target, symlinks=True)
    return target


# predict ----------------------------------------------------------------------------------------


def test_predict_refuses_an_out_that_is_one_of_its_inputs(finished, data, tmp_path, capsys):
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    for name in ("s01.dat", "s02.dat"):
        shutil.copy2(data / name, recordings / name)
    (tmp_path / "link.csv").symlink_to(recordings / "s01.dat")
    before = snapshot(tmp_path)
    cases = [
        (recordings / "s01.dat", recordings / "s01.dat", "is the input recording"),
        (recordings, recordings / "s02.dat", "is the input recording"),
        (recordings, tmp_path / "link.csv", "is the input recording"),  # the same file, resolved
        (recordings / "s01.dat", tmp_path / "new.dat", "ends in .dat"),
    ]
    for inputs, out, problem in cases:
        code = predict_cli.main([str(finished), "--input", str(inputs), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith(f"error: {out}: ") and problem in err and err.count("\n") == 1
        assert snapshot(tmp_path) == before  # no recording replaced, nothing written


def test_predict_output_faults_leave_the_earlier_csv(finished, data, tmp_path, monkeypatch):
    out = tmp_path / "pred.csv"
    rows = inference.predict_files(finished, data / "s01.dat", out)
    assert rows == 12 * 5 + 12
    before = snapshot(tmp_path)

    def predict() -> str:
        with pytest.raises(StorageError) as info:
            inference.predict_files(finished, data / "s01.dat", out)
        assert snapshot(tmp_path) == before  # earlier CSV intact, no temporary left
        return str(info.value)

    with monkeypatch.context() as m:
        fail_replace(m, "pred.csv")
        assert predict().startswith(f"{out}: cannot write it ({NOSPACE})")

    def no_temp(parent: Path, prefix: str):
        raise PermissionError(errno.EACCES, DENIED, str(parent / f"{prefix}x.tmp"))

    with monkeypatch.context() as m:
        m.setattr(fileio, "temp_file", no_temp)
        assert predict().startswith(f"{out}: cannot write it ({DENIED})")

    class FullDisk:  # the disk fills after the header
        def __init__(self, f) -> None:
            self.rows = 0

        def writerow(self, row) -> None:
            self.rows += 1
            if self.rows > 1:
                raise OSError(errno.ENOSPC, NOSPACE)

    with monkeypatch.context() as m:
        m.setattr(inference.csv, "writer", FullDisk)
        assert predict().startswith(f"{out}: cannot write it ({NOSPACE})")
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(DataError) as info:
        inference.predict_files(finished, data / "s01.dat", tmp_path / "afile" / "p.csv")
    assert f"{tmp_path / 'afile'} is a file, not a folder" in str(info.value)
    assert (tmp_path / "afile").read_text() == "keep me"


# evaluate ---------------------------------------------------------------------------------------


def test_evaluate_refuses_a_run_in_use_and_names_the_holder(finished, data, tmp_path):
    run = copy_of(finished, tmp_path)
    host = socket.gethostname()
    (run / ".lock").write_text(json.dumps({"host": host, "pid": os.getpid(), "since": "10:00"}))
    before = snapshot(run)
    with pytest.raises(ConfigError) as info:
        inference.evaluate_run(run, "test", [f"data.root={data}"])
    message = str(info.value)
    assert message.startswith(f"{run} is in use") and f"host {host}, PID {os.getpid()}" in message
    assert snapshot(run) == before  # no eval_test.json written under a live run


def test_evaluate_scores_an_unfinished_run_with_one_warning(finished, data, tmp_path, caplog):
    run = copy_of(finished, tmp_path)
    status = {"status": "stopped", "global_step": 7, "epoch": 1, "message": ""}
    (run / "status.json").write_text(json.dumps(status))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = json.dumps({"host": socket.gethostname(), "pid": gone.pid, "since": "10:00"})
    (run / ".lock").write_text(lock)  # left by a process that is gone: no refusal
    with caplog.at_level(logging.WARNING):
        metrics, table = inference.evaluate_run(run, "test", [f"data.root={data}"])
    warnings = [r.getMessage() for r in caplog.records if r.name == inference.__name__]
    assert len(warnings) == 1, warnings
    assert f"{run} is not a finished run (status stopped, step 7, epoch 1)" in warnings[0]
    test = json.loads((run / "results.json").read_text())["test"]
    assert metrics["valence"] == test["valence"] and f"test ({run})" in table
    assert json.loads((run / "eval_test.json").read_text()) == metrics
    assert (run / ".lock").read_text() == lock  # someone else's lock: not evaluate's to remove


def test_evaluate_refuses_changed_data_files_naming_them(finished, data, tmp_path):
    run, moved = copy_of(finished, tmp_path), tmp_path / "moved"
    moved.mkdir()
    for path in data.glob("*.dat"):
        shutil.copy2(path, moved / path.name)  # a faithful copy elsewhere is the same data
    faithful = load_settings(run / "config.yaml", [f"data.root={moved}"])
    assert inference.check_data_files(faithful, run) is None
    stamp = (moved / "s02.dat").stat().st_mtime + 60
    os.utime(moved / "s02.dat", (stamp, stamp))
    before = snapshot(run)
    with pytest.raises(DataError) as info:
        inference.evaluate_run(run, "test", [f"data.root={moved}"])
    message = str(info.value)
    assert message.startswith(f"{run / 'data_files.json'}: the data files in {moved} changed")
    assert "s02.dat" in message and "s01.dat" not in message
    assert snapshot(run) == before


def test_evaluate_and_predict_on_a_baseline_folder_point_at_its_results(group, data, tmp_path):
    fold = group / "fold-0"
    before = snapshot(fold)
    for call in (
        lambda: inference.evaluate_run(fold, "test", [f"data.root={data}"]),
        lambda: inference.predict_files(fold, data / "s01.dat", tmp_path / "p.csv"),
    ):
        with pytest.raises(DataError) as info:
            call()
        message = str(info.value)
        assert message.startswith(f"{fold}: is a baseline run folder (band_power_lr)")
        assert f"its results are in {fold / 'results.json'}" in message
    assert snapshot(fold) == before and not (tmp_path / "p.csv").exists()


def test_evaluate_gives_its_table_when_it_cannot_save_it(finished, data, tmp_path, monkeypatch):
    run = copy_of(finished, tmp_path)
    (run / "eval_test.json").write_text("earlier evaluation")
    # What the command does: score, print the table, then save (a failure: exit 2).
    metrics, table = inference.evaluate_run(run, "test", [f"data.root={data}"], save=False)
    assert "valence" in table and (run / "eval_test.json").read_text() == "earlier evaluation"
    before = snapshot(run)
    with monkeypatch.context() as m:
        fail_replace(m, "eval_test.json")
        with pytest.raises(StorageError) as info:
            inference.save_evaluation(run, "test", metrics)
    assert str(info.value).startswith(f"{run / 'eval_test.json'}: cannot write it ({NOSPACE})")
    assert snapshot(run) == before
    assert_refuses_a_folder_in_place_of(
        run, "eval_test.json", lambda: inference.save_evaluation(run, "test", metrics)
    )
    (run / "eval_test.json").rmdir()
    path = inference.save_evaluation(run, "test", metrics)
    assert json.loads(path.read_text()) == metrics


# report -----------------------------------------------------------------------------------------


def test_report_faults_leave_the_earlier_report(group, tmp_path, monkeypatch):
    run = copy_of(group / "fold-1", tmp_path)
    first = report.write_report(run)
    assert (run / "report.md").read_text() == first
    (run / "plots" / "per_subject.png").write_bytes(b"an earlier plot")  # a new one would differ
    before = snapshot(run)

    def refused() -> str:
        with pytest.raises(StorageError) as info:
            report.write_report(run)
        assert snapshot(run) == before  # the plots moved before the failure are put back
        return str(info.value)

    with monkeypatch.context() as m:
        fail_replace(m, "report.md")  # after every plot was moved in
        assert refused().startswith(f"{run / 'report.md'}: cannot write it ({NOSPACE})")
    with monkeypatch.context() as m:
        fail_write_text(m, "report.md")
        assert refused().startswith(f"{run / 'report.md'}: cannot write it ({NOSPACE})")

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, DENIED)

    with monkeypatch.context() as m:
        m.setattr(report.plots, "run_plots", denied)
        assert refused().startswith(f"{run / 'plots'}: cannot write it ({DENIED})")
    shutil.rmtree(run / "plots")
    (run / "plots").write_text("not a folder")
    before = snapshot(run)
    assert f"({run / 'plots'} is a file, not a folder)" in refused()


# aggregate and the CV group ---------------------------------------------------------------------


def test_cv_pools_only_the_folds_its_group_names(group, tmp_path):
    folder = copy_of(group, tmp_path)
    recorded = json.loads((folder / cv.GROUP_FILE).read_text())
    assert recorded["folds"] == ["fold-0", "fold-1", "fold-2"] and recorded["num_folds"] == 3
    assert recorded["protocol"] == "cross_trial" and recorded["baseline"] == "band_power_lr"
    assert recorded["settings"]["baseline"]["c_grid"] == [0.1]
    summary = cv.aggregate(folder)
    shutil.copytree(folder / "fold-0", folder / "other")  # an unrelated run in the folder
    shutil.copytree(folder / "fold-0", folder / "fold-3")
    again = cv.aggregate(folder)
    assert again["folds"] == ["fold-0", "fold-1", "fold-2"] and again == summary
    assert again["pooled"]["trials"]["valence"]["support"] == 36  # each trial tested once


def test_cv_names_every_missing_or_broken_fold_and_pools_none(group, tmp_path, capsys):
    folder = copy_of(group, tmp_path)
    assert aggregate_cli.main([str(folder)]) == 0
    capsys.readouterr()
    (folder / "fold-0" / "results.json").write_text('{"test": {"valence": ')  # cut short
    (folder / "fold-1" / "results.json").unlink()  # a deleted fold
    broken = json.loads((folder / "fold-2" / "results.json").read_text())
    del broken["test"]
    (folder / "fold-2" / "results.json").write_text(json.dumps(broken))
    before = snapshot(folder)
    for main in (aggregate_cli.main, report_cli.main):
        assert main([str(folder)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {folder}: cannot pool the CV group's 3 folds: fold-0: ")
        assert f"{folder / 'fold-0' / 'results.json'} is corrupt" in err
        assert f"fold-1: missing (no {folder / 'fold-1' / 'results.json'})" in err
        assert f"fold-2: {folder / 'fold-2' / 'results.json'} has no test part" in err
        assert "Traceback" not in err and err.count("\n") == 1
        assert snapshot(folder) == before  # cv_results.* and report.md as they were


def test_cv_rerun_with_fewer_folds_never_mixes_folds(group, data, cache, tmp_path, caplog):
    folder = copy_of(group, tmp_path)
    dump = settings(data, cache, folder, "baseline.c_grid=[0.1]").model_dump(mode="json")
    before = snapshot(folder)
    with pytest.raises(ConfigError) as info:
        cv.write_group(folder, "cross_trial", 2, dump, baseline="band_power_lr")
    assert str(info.value).startswith(f"{folder} holds another CV group: num_folds (3 -> 2)")
    with pytest.raises(ConfigError) as info:
        cv.write_group(folder, "cross_trial", 3, dump, baseline="eegnet")
    assert "baseline ('band_power_lr' -> 'eegnet')" in str(info.value)
    assert snapshot(folder) == before
    cv.write_group(folder, "cross_trial", 3, dump, baseline="band_power_lr")  # a relaunch
    assert snapshot(folder) == before
    # A group recorded for 2 folds over folds made for 3: none of them is pooled.
    (folder / cv.GROUP_FILE).unlink()
    cv.write_group(folder, "cross_trial", 2, dump, baseline="band_power_lr")
    with pytest.raises(DataError) as info:
        cv.aggregate(folder)
    assert "fold-0: made for another split (cross_trial, fold 0 of 3; the group is cross_trial" in (
        str(info.value)
    )
    assert "fold-2" not in str(info.value)
    # Without cv_group.json (a group made before it was recorded): the folds' own settings.
    (folder / cv.GROUP_FILE).unlink()
    with caplog.at_level(logging.WARNING):
        assert cv.aggregate(folder)["folds"] == ["fold-0", "fold-1", "fold-2"]
    warnings = [r.getMessage() for r in caplog.records if r.name == cv.__name__]
    assert len(warnings) == 1 and f"{folder} has no {cv.GROUP_FILE}" in warnings[0]
    shutil.copytree(folder / "fold-0", folder / "fold-3")
    config = yaml.safe_load((folder / "fold-3" / "config.yaml").read_text())
    config["data"]["split"].update(num_folds=4, fold=3)
    (folder / "fold-3" / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(DataError) as info:
        cv.aggregate(folder)
    assert "belong to different CV groups (cross_trial with 3 folds, cross_trial with 4" in (
        str(info.value)
    )
    (folder / "loose").mkdir()
    with pytest.raises(DataError) as info:
        cv.aggregate(folder / "loose")
    assert f"{folder / 'loose'}: not a CV group: no {cv.GROUP_FILE}" in str(info.value)


def test_aggregate_output_faults_leave_the_earlier_tables(group, tmp_path, monkeypatch):
    folder = copy_of(group, tmp_path)
    cv.write_cv_results(folder)
    before = snapshot(folder)
    with monkeypatch.context() as m:
        fail_write_text(m, "cv_results.md")  # cv_results.json was written first
        with pytest.raises(StorageError) as info:
            cv.write_cv_results(folder)
    assert str(info.value).startswith(f"{folder / 'cv_results.md'}: cannot write it ({NOSPACE})")
    assert snapshot(folder) == before
    assert_refuses_a_folder_in_place_of(
        folder, "cv_results.json", lambda: cv.write_cv_results(folder)
    )


# baseline ---------------------------------------------------------------------------------------


def test_a_baseline_folder_belongs_to_one_experiment(data, cache, tmp_path):
    out = tmp_path / "lr"
    first = runner.run(settings(data, cache, out, "baseline.c_grid=[0.1]"))
    again = runner.run(settings(data, cache, out, "baseline.c_grid=[0.1]", "train.epochs=9"))
    assert again["test"] == first["test"]  # the same settings: re-running is fine
    before = snapshot(out)
    for overrides, named in (
        (["baseline.c_grid=[0.1, 1.0]"], "baseline.c_grid ([0.1] -> [0.1, 1.0])"),
        (["baseline.c_grid=[0.1]", "data.window=1s"], "data.window ('2s' -> '1s')"),
    ):
        with pytest.raises(ConfigError) as info:
            runner.run(settings(data, cache, out, *overrides))
        assert str(info.value).startswith(f"{out} was ") and named in str(info.value)
        assert snapshot(out) == before


def test_a_baseline_writes_nothing_without_a_test_part(data, cache, tmp_path, monkeypatch):
    out = tmp_path / "lr"
    runner.run(settings(data, cache, out, "baseline.c_grid=[0.1]"))
    before = snapshot(out)
    real = pipeline.TokenData.indices

    def no_test(self, part: str):
        found = real(self, part)
        return found[:0] if part == "test" else found

    monkeypatch.setattr(pipeline.TokenData, "indices", no_test)
    for folder in (out, tmp_path / "new"):
        with pytest.raises(DataError) as info:
            runner.run(settings(data, cache, folder, "baseline.c_grid=[0.1]"))
        assert str(info.value).startswith(f"{folder}: the split has no test rows")
    assert snapshot(out) == before and not (tmp_path / "new" / "results.json").exists()


def test_baseline_output_faults_leave_the_earlier_run(data, cache, tmp_path, monkeypatch):
    out = tmp_path / "lr"
    again = settings(data, cache, out, "baseline.c_grid=[0.1]")
    runner.run(again)
    (out / "test_results.txt").write_text("an earlier table\n")  # a new one would differ
    before = snapshot(out)

    def refused(error: type[Exception] = StorageError) -> str:
        with pytest.raises(error) as info:
            runner.run(again)
        assert snapshot(out) == before
        return str(info.value)

    def full(*args, **kwargs) -> None:
        raise OSError(errno.ENOSPC, NOSPACE)

    with monkeypatch.context() as m:
        m.setattr(scoring.Predictions, "save", full)
        assert refused().startswith(f"{out / 'predictions_val.npz'}: cannot write it ({NOSPACE})")
    with monkeypatch.context() as m:
        fail_replace(m, "results.json", errno.EACCES)  # the last file to go in
        assert refused().startswith(f"{out / 'results.json'}: cannot write it ({DENIED})")

    def crash(*args, **kwargs):
        raise RuntimeError("the fit failed")

    with monkeypatch.context() as m:
        m.setattr(band_power_lr, "fit_with_importance", crash)
        assert refused(RuntimeError) == "the fit failed"
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(ConfigError) as info:  # before the data are read
        runner.run(settings(data, cache, tmp_path / "afile" / "lr", "baseline.c_grid=[0.1]"))
    assert f": {tmp_path / 'afile'} is a file, not a folder" in str(info.value)
    assert (tmp_path / "afile").read_text() == "keep me"
