"""Every data source trains, evaluates and predicts end to end: tiny synthetic DREAMER, SEED,
SEED-IV, AMIGOS and FIF (through MNE) files, each through configs/tiny.yaml with `data.source`
set. Checked by their effects: trial-disjoint splits, one row per window of trials of different
lengths, sessions in the trial keys, predictions that are the run's own on the same windows;
cross_session holds out whole sessions; predict refuses a recording without a channel the
model was trained on. The runs are shared by the checks (module-scoped fixtures)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from eeg_emotion.cli import evaluate as evaluate_cli
from eeg_emotion.cli import predict as predict_cli
from eeg_emotion.cli import train as train_cli
from eeg_emotion.config import load_settings
from eeg_emotion.data import pipeline
from eeg_emotion.data.readers import read_all
from eeg_emotion.data.splits import PARTS, SESSION_STRIDE, session_of
from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic
from eeg_emotion.errors import ConfigError
from tests.helpers.paths import ROOT

TINY = ROOT / "configs" / "tiny.yaml"
FEW = ["FP1", "FP2", "F3", "F4", "FZ", "CZ", "PZ", "T7", "T8", "O1", "O2"]  # of SEED's 62
# source -> (format written, its files, overrides of tiny.yaml); trials of 6..9 s, 2 s windows.
SOURCES = {
    "dreamer": (
        "dreamer",
        FormatSpec(subjects=3, trials=6, seconds=(6, 9), baseline_seconds=2),
        ["data.source=dreamer"],
    ),
    "seed": (
        "seed",
        FormatSpec(subjects=2, sessions=2, trials=6, seconds=(6, 9)),
        ["data.source=seed", f"data.channels=[{','.join(FEW)}]"],
    ),
    "seed_iv": (
        "seed_iv",
        FormatSpec(subjects=2, sessions=2, trials=8, seconds=(6, 9)),
        ["data.source=seed_iv", f"data.channels=[{','.join(FEW)}]"],
    ),
    "amigos": (
        "amigos",
        FormatSpec(subjects=3, seconds=(6, 9), long_seconds=(10, 12), baseline_seconds=2),
        ["data.source=amigos"],
    ),
    "mne": (
        "fif",
        FormatSpec(subjects=3, trials=6, seconds=(6, 9), baseline_seconds=2),
        ["data.source=mne"],
    ),
}
TARGETS = {
    "dreamer": ["valence", "arousal"],
    "seed": ["emotion"],
    "seed_iv": ["emotion"],
    "amigos": ["valence", "arousal"],
    "mne": ["valence", "arousal"],
}


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sources")
    out = {}
    for source, (fmt, spec, _) in SOURCES.items():
        write_synthetic(fmt, base / source, spec)
        out[source] = base / source
    return out


def overrides(source: str, roots: dict[str, Path], cache: Path, *extra: str) -> list[str]:
    return [*SOURCES[source][2], f"data.root={roots[source]}", f"data.cache_dir={cache}", *extra]


@pytest.fixture(scope="module")
def runs(roots: dict[str, Path], cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Each source trained (in this process: seconds each), evaluated on test, predicted on."""
    base = tmp_path_factory.mktemp("source-runs")
    out = {}
    for source in SOURCES:
        run = base / source
        argv = ["--config", str(TINY), *overrides(source, roots, cache), f"output_dir={run}"]
        assert train_cli.main(argv) == 0, source
        assert evaluate_cli.main([str(run), "--split", "test"]) == 0, source
        csv_path = base / f"{source}.csv"
        argv = [str(run), "--input", str(roots[source]), "--out", str(csv_path)]
        assert predict_cli.main(argv) == 0, source
        settings = load_settings(run / "config.yaml")
        out[source] = {
            "run": run,
            "settings": settings,
            "data": pipeline.build(settings.data, progress=False),
            "csv": list(csv.DictReader(csv_path.open())),
        }
    return out


def trial_name(subject: int, key: int) -> str:
    """What predict calls a trial: s<subject>-<session>-t<number>."""
    return f"s{subject:02d}-{session_of(key)}-t{key % SESSION_STRIDE + 1:02d}"


@pytest.mark.parametrize("source", list(SOURCES))
def test_the_split_is_trial_disjoint_and_every_window_is_a_row(runs, roots, source):
    run, data = runs[source]["run"], runs[source]["data"]
    split = json.loads((run / "splits.json").read_text())
    owner: dict[tuple[int, int], str] = {}
    for part in PARTS:
        assert split[part], part
        for s, t in split[part]:
            assert owner.setdefault((s, t), part) == part, f"trial {(s, t)} in two parts"
    rows, part_of = np.asarray(data.rows), np.asarray(data.part)
    for (s, t, _), p in zip(rows.tolist(), part_of.tolist(), strict=True):
        assert PARTS[p] == owner[(s, t)]  # every window in its trial's part
    # One row per window of each trial as the reader gives it (2 s windows, 2 s stride, the
    # baseline dropped): the trials differ in length, and so do their window counts.
    settings = runs[source]["settings"].data
    expected = {}
    for rec in read_all(source, roots[source], settings.reader_options()):
        for i, trial in enumerate(rec.trials):
            key = (rec.session - 1) * SESSION_STRIDE + rec.trial_numbers[i] - 1
            expected[(rec.subject, key)] = trial.shape[1] // round(2 * rec.sampling_rate)
    found: dict[tuple[int, int], int] = {}
    for s, t, _ in rows.tolist():
        found[(s, t)] = found.get((s, t), 0) + 1
    assert found == expected and len(set(expected.values())) > 1
    assert set(owner) == set(expected)
    if source in ("seed", "seed_iv"):  # two sessions: their trials have keys of their own
        assert {session_of(t) for _, t in expected} == {1, 2}


@pytest.mark.parametrize("source", list(SOURCES))
def test_evaluate_and_predict_give_the_runs_own_predictions(runs, source):
    run, data, rows = runs[source]["run"], runs[source]["data"], runs[source]["csv"]
    results = json.loads((run / "results.json").read_text())
    evaluated = json.loads((run / "eval_test.json").read_text())
    targets = TARGETS[source]
    assert data.targets == targets
    for t in targets:
        assert evaluated[t] == results["test"][t]
        assert results["test"][t]["support"] == len(data.indices("test"))
    # predict: one row per window and per trial of every recording in the folder, with the
    # class names of the source (SEED: its emotions), the probabilities of the run's model.
    windows = [r for r in rows if r["level"] == "window"]
    assert len(windows) == len(data.rows)
    trial_rows = {r["trial"] for r in rows if r["level"] == "trial"}
    assert trial_rows == {trial_name(s, t) for s, t, _ in np.asarray(data.rows).tolist()}
    names = data.class_names
    if source == "seed":
        assert names == ["negative", "neutral", "positive"]
    if source == "seed_iv":
        assert names == ["neutral", "sad", "fear", "happy"]
    saved = np.load(run / "predictions_test.npz")
    by_window = {(r["trial"], int(r["window"])): r for r in windows}
    for probs, (s, t, w) in zip(saved["probs"], saved["rows"].tolist(), strict=True):
        line = by_window[(trial_name(s, t), w)]
        for i, target in enumerate(targets):
            csv_probs = [float(line[f"{target}_p_{c}"]) for c in names]
            np.testing.assert_allclose(csv_probs, probs[i], atol=2e-4)


def test_cross_session_tests_on_a_held_out_session(roots, tmp_path):
    for fold, held in ((0, 1), (1, 2)):
        extra = ["data.split.protocol=cross_session", f"data.split.fold={fold}"]
        settings = load_settings(TINY, overrides("seed", roots, tmp_path, *extra)).data
        split = pipeline.build(settings, progress=False).split
        sessions = {p: {session_of(t) for _, t in split[p]} for p in PARTS}
        assert sessions["test"] == {held}
        assert sessions["train"] == sessions["val"] == {3 - held}
        assert {s for s, _ in split["test"]} == {s for s, _ in split["train"]} == {1, 2}
        assert len(split["test"]) == 2 * 6  # every trial of the held-out session
    settings = load_settings(
        TINY, overrides("seed", roots, tmp_path, extra[0], "data.split.fold=2")
    )
    with pytest.raises(ConfigError, match="fold=2 but only 2 sessions"):
        pipeline.build(settings.data, progress=False)
    # One session per subject: refused, by the settings or (mne) by the files.
    with pytest.raises(ConfigError, match=r"cross_session needs several sessions.*dreamer has one"):
        load_settings(TINY, overrides("dreamer", roots, tmp_path, extra[0]))
    settings = load_settings(TINY, overrides("mne", roots, tmp_path, extra[0])).data
    with pytest.raises(ConfigError, match="at least 2 sessions; these are all of session 1"):
        pipeline.build(settings, progress=False)


def test_predict_interpolates_the_trained_channels_a_recording_lacks(runs, roots, tmp_path, caplog):
    """A band-power model on a recording without two of its channels: both interpolated from
    standard positions, with a warning naming them (refusals: tests/test_montage.py)."""
    import mne

    folder = tmp_path / "fewer"
    folder.mkdir()
    name = "sub-01_task-emotion"
    raw = mne.io.read_raw_fif(roots["mne"] / f"{name}_eeg.fif", preload=True, verbose="error")
    raw.drop_channels(["Cz", "O2"]).save(folder / f"{name}_eeg.fif", verbose="error")
    shutil.copy(roots["mne"] / f"{name}_events.tsv", folder)
    out = tmp_path / "p.csv"
    code = predict_cli.main([str(runs["mne"]["run"]), "--input", str(folder), "--out", str(out)])
    assert code == 0 and out.exists()
    assert "lacks channels Cz, O2 that the model was trained on: interpolated" in caplog.text


def test_targets_and_label_scales_are_the_sources(roots, tmp_path):
    with pytest.raises(ConfigError, match=r"Input should be 'emotion', the targets of data\."):
        load_settings(TINY, ["data.source=seed", "data.labels.targets=[valence]"])
    dreamer = {
        high_if: pipeline.build(
            load_settings(
                TINY, overrides("dreamer", roots, tmp_path, f"data.labels.high_if='{high_if}'")
            ).data,
            progress=False,
        )
        for high_if in (">", ">=")
    }
    for high_if, data in dreamer.items():
        assert data.settings.labels.threshold == 3.0  # the middle of DREAMER's 1..5
        ratings = np.asarray(data.ratings)[:, :2]  # valence, arousal: the first two scores
        expected = ratings > 3 if high_if == ">" else ratings >= 3
        np.testing.assert_array_equal(np.asarray(data.labels), expected.astype(np.int8))
    assert (np.asarray(dreamer[">"].ratings)[:, :2] == 3).any()  # the conventions differ here
