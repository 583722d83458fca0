"""Cross-dataset evaluation (a DEAP-trained band-power model on DREAMER-format data in one
command: channels matched by name, thresholds on each source's scale), predict with a
missing channel interpolated or refused, and the cross-dataset benchmark's small mode."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import mne
import numpy as np
import pytest

from eeg_emotion.config import load_settings
from eeg_emotion.data.channels import EEG_CHANNELS
from eeg_emotion.data.readers import dreamer, make_reader
from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic
from eeg_emotion.evaluation.cross_dataset import other_settings
from tests.helpers.paths import ROOT
from tests.helpers.training import PY, command, run

EVALUATE = str(ROOT / "launch" / "evaluate.py")
PREDICT = str(ROOT / "launch" / "predict.py")


@pytest.fixture(scope="module")
def dreamer_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dreamer")
    write_synthetic("dreamer", root, FormatSpec(subjects=2, trials=5, seconds=(6, 8)))
    return root


@pytest.fixture(scope="module")
def deap_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("deap-run") / "run"
    run(command(tiny_root, cache, run_dir, "train.epochs=1"))
    return run_dir


def test_thresholds_are_mapped_onto_each_sources_scale():
    deap = load_settings(ROOT / "configs" / "tiny.yaml").data
    other = other_settings(deap, ["source=dreamer", "root=x"])
    assert other.labels.threshold == 3.0 and other.labels.cuts == (2.33, 3.67)
    assert other.labels.targets == ["valence", "arousal"] and other.labels.high_if == ">"
    given = other_settings(deap, ["data.source=dreamer", "root=x", "labels.threshold=2.5"])
    assert given.labels.threshold == 2.5
    back = other_settings(other.model_copy(update={"source": "dreamer"}), ["source=deap", "root=x"])
    assert back.labels.threshold == 5.0


def test_a_deap_model_evaluates_on_dreamer_in_one_command(deap_run, dreamer_root, caplog):
    out = run([PY, EVALUATE, str(deap_run), "--data", "source=dreamer", f"root={dreamer_root}"])
    assert "cross-dataset" in out.stdout and "channels interpolated (18)" in out.stdout
    assert "lacks channels Fp1, FC1" in caplog.text  # the warning names them
    saved = json.loads((deap_run / "eval_cross_dreamer.json").read_text())
    cross = saved["cross_dataset"]
    assert cross["tested_on"]["source"] == "dreamer" and cross["trials"] == 10
    used = cross["channels"]["used"]
    assert sorted(used) == sorted(dreamer.CHANNELS)
    assert used == [c for c in EEG_CHANNELS if c in dreamer.CHANNELS]  # in the model's order
    assert cross["channels"]["interpolated"] == [c for c in EEG_CHANNELS if c not in used]
    assert cross["labels"]["valence"]["tested"] == "high if rating > 3 on dreamer's 1..5"
    # Every trial is scored, each labelled high where its DREAMER rating is above 3.
    recs = [r for r in (make_reader("dreamer").read(ref) for ref in _refs(dreamer_root))]
    for i, target in enumerate(("valence", "arousal")):
        ratings = np.concatenate([r.targets.column(target) for r in recs])
        matrix = np.asarray(saved["trial_level"][target]["confusion_matrix"])
        assert matrix.sum() == 10 and matrix[1].sum() == (ratings > 3).sum(), i
    assert not (deap_run / "eval_test.json").exists()


def _refs(root: Path) -> list:
    return make_reader("dreamer").find(root)


@pytest.fixture(scope="module")
def fif(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fif")
    write_synthetic("fif", root, FormatSpec(subjects=1, trials=2, seconds=(4, 5)))
    return next(root.glob("*_eeg.fif"))


def _keep(src: Path, out: Path, keep: list[str]) -> Path:
    raw = mne.io.read_raw_fif(src, preload=True, verbose="error").pick(keep)
    out.mkdir()
    raw.save(out / src.name, verbose="error")
    events = src.with_name(src.name.replace("_eeg.fif", "_events.tsv"))
    (out / events.name).write_text(events.read_text())
    return out / src.name


def test_a_band_power_model_predicts_with_a_channel_interpolated(deap_run, fif, tmp_path, caplog):
    rec = _keep(fif, tmp_path / "one", [c for c in EEG_CHANNELS if c != "Oz"])
    run([PY, PREDICT, str(deap_run), "--input", str(rec), "--out", str(tmp_path / "p.csv")])
    assert "lacks channel Oz that the model was trained on: interpolated" in caplog.text
    assert len((tmp_path / "p.csv").read_text().splitlines()) > 3
    # Too few channels to interpolate from: one line naming them, exit 2, nothing written.
    few = _keep(fif, tmp_path / "few", ["Fp1", "F3", "Cz"])
    refused = run(
        [PY, PREDICT, str(deap_run), "--input", str(few), "--out", str(tmp_path / "q.csv")],
        expect=2,
    )
    lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, refused.stderr
    assert "cannot interpolate missing trained channels AF3, F7" in lines[0]
    assert "only 3 other EEG channels" in lines[0]
    assert not (tmp_path / "q.csv").exists()


def test_the_benchmark_small_mode(tmp_path, in_process):
    spec = importlib.util.spec_from_file_location(
        "cross_bench", ROOT / "bench" / "cross_dataset.py"
    )
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--small", "--models", "lr", "--out", str(tmp_path)])
    rows = result["rows"]
    assert [(r["trained_on"], r["tested_on"]) for r in rows[::2]] == [
        ("deap", "dreamer"),
        ("dreamer", "deap"),
    ]
    for r in rows:
        assert 0 <= r["cross_on_all"] <= 1 and r["all_trials"] == 24 and "verdict" in r
    assert json.loads((tmp_path / "results.json").read_text())["rows"] == rows
