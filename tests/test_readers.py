"""Every dataset reader: synthetic files in each real layout read back exactly; the writers
refuse to overwrite and are deterministic (bad files: test_reader_errors.py)."""

from __future__ import annotations

import logging
import shutil
from typing import Any

import numpy as np
import pytest
import scipy.io
from pydantic import TypeAdapter
from scipy.signal import welch

from eeg_emotion.data.channels import ALL_CHANNELS, EEG_CHANNELS
from eeg_emotion.data.readers import (
    Categories,
    ReaderOptions,
    SeedIVOptions,
    amigos,
    deap,
    dreamer,
    make_reader,
    read_all,
    seed,
    seed_iv,
)
from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic
from eeg_emotion.errors import ConfigError
from tests.helpers.readers import edit_mat, load_mat, one_error, read_every

# ---------------------------------------------------------------------------- round trips


def test_dreamer_layout_and_round_trip(roots):
    path = roots["dreamer"] / "DREAMER.mat"
    top = load_mat(path)["DREAMER"]
    assert top.shape == (1, 1) and top.dtype.names == dreamer.TOP_FIELDS
    data = top[0, 0]["Data"]
    assert data.shape == (1, 2) and data.dtype == object  # a cell, not a struct array
    person = data[0, 1]  # the peers' access path: ['Data'][0, s] then [0, 0]
    assert person.shape == (1, 1) and person.dtype.names == dreamer.SUBJECT_FIELDS
    eeg = person[0, 0]["EEG"][0, 0]
    assert eeg["stimuli"].shape == (3, 1) and eeg["baseline"].shape == (3, 1)
    assert eeg["stimuli"][0, 0].shape[1] == 14 and eeg["baseline"][0, 0].shape == (256, 14)
    assert person[0, 0]["ScoreValence"].shape == (3, 1)

    recordings = read_every("dreamer", roots["dreamer"])
    assert [(r.subject, r.session) for r in recordings] == [(1, 1), (2, 1)]
    rec = recordings[1]
    assert rec.channels == dreamer.CHANNELS and rec.sampling_rate == 128
    assert rec.trial_numbers == [1, 2, 3]
    for k in range(3):
        np.testing.assert_array_equal(rec.trials[k], eeg["stimuli"][k, 0].T)
        np.testing.assert_array_equal(rec.baselines[k], eeg["baseline"][k, 0].T)
    assert len({t.shape[1] for t in rec.trials}) == 3  # variable lengths kept
    assert rec.targets.names == ("valence", "arousal", "dominance")
    assert (rec.targets.low, rec.targets.high) == (1, 5)
    scores = [person[0, 0][f][:, 0] for f in dreamer.SCORE_FIELDS]
    np.testing.assert_array_equal(rec.targets.values, np.column_stack(scores))
    assert rec.trial_key(2) == "s02-1-t03"
    no_baselines = make_reader("dreamer", {"baselines": False})
    assert no_baselines.read(no_baselines.find(roots["dreamer"])[0]).baselines is None


def test_dreamer_data_as_a_struct_array_is_read_too(roots, copy_of):
    root = copy_of("dreamer")

    def to_struct_array(mat: dict[str, Any]) -> None:
        cells = mat["DREAMER"][0, 0]["Data"]
        array = np.empty(cells.shape, dtype=cells[0, 0].dtype)
        for i in range(cells.shape[1]):
            array[0, i] = cells[0, i][0, 0]
        mat["DREAMER"][0, 0]["Data"] = array

    edit_mat(root / "DREAMER.mat", to_struct_array)
    assert load_mat(root / "DREAMER.mat")["DREAMER"][0, 0]["Data"].dtype.names is not None
    for a, b in zip(
        read_every("dreamer", root), read_every("dreamer", roots["dreamer"]), strict=True
    ):
        assert a.subject == b.subject
        np.testing.assert_array_equal(a.trials[2], b.trials[2])
        np.testing.assert_array_equal(a.targets.values, b.targets.values)


def test_seed_layout_sessions_by_date_and_round_trip(roots):
    folder = roots["seed"] / "Preprocessed_EEG"
    names = sorted(p.name for p in folder.iterdir())
    assert "label.mat" in names and "readme.txt" in names and len(names) == 2 * 2 + 2
    np.testing.assert_array_equal(load_mat(folder / "label.mat")["label"], [seed.LABELS[:3]])
    recordings = read_every("seed", roots["seed"])
    assert [(r.subject, r.session) for r in recordings] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    # Session 1 is the earlier date.
    dates = sorted(p.name for p in folder.glob("1_*.mat"))
    assert recordings[0].path.name == dates[0] and recordings[1].path.name == dates[1]
    rec = recordings[1]
    variables = load_mat(rec.path)
    assert sorted(variables) == [f"{next(iter(variables)).split('_')[0]}_eeg{k}" for k in (1, 2, 3)]
    for k, trial in zip(rec.trial_numbers, rec.trials, strict=True):
        (name,) = [v for v in variables if v.endswith(f"_eeg{k}")]
        assert variables[name].shape[0] == 62 and variables[name].dtype == np.float64
        np.testing.assert_array_equal(trial, variables[name])
    assert len({t.shape[1] for t in rec.trials}) == 3
    assert rec.channels == seed.CHANNELS and len(rec.channels) == 62 and rec.sampling_rate == 200
    assert isinstance(rec.targets, Categories) and rec.baselines is None
    assert rec.targets.names == ("negative", "neutral", "positive")
    np.testing.assert_array_equal(rec.targets.values, np.array(seed.LABELS[:3]) + 1)
    # Reading the folder itself works as well as its parent.
    assert len(make_reader("seed").find(folder)) == 4


def test_seed_trial_number_comes_from_the_variable_name(copy_of):
    root = copy_of("seed")
    path = sorted((root / "Preprocessed_EEG").glob("1_*.mat"))[0]
    original = load_mat(path)
    initials = next(iter(original)).split("_")[0]
    # Stored in reverse order, and trial 2 given a recognisable signal.
    marked = dict(reversed(list(original.items())))
    marked[f"{initials}_eeg2"] = np.full((62, 500), 7.0)
    scipy.io.savemat(path, marked)
    assert next(iter(load_mat(path))) == f"{initials}_eeg3"
    reader = make_reader("seed")
    rec = reader.read(reader.find(root)[0])
    assert rec.trial_numbers == [1, 2, 3]
    np.testing.assert_array_equal(rec.trials[0], original[f"{initials}_eeg1"])
    assert rec.trials[1].shape == (62, 500) and (rec.trials[1] == 7).all()


def test_seed_iv_sessions_labels_and_sampling_rate(roots, tmp_path):
    recordings = read_every("seed_iv", roots["seed_iv"])
    assert [(r.subject, r.session) for r in recordings] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    for rec in recordings:
        assert rec.path.parent.name == str(rec.session)
        assert rec.targets.names == ("neutral", "sad", "fear", "happy")
        np.testing.assert_array_equal(rec.targets.values, seed_iv.SESSION_LABELS[rec.session][:3])
        assert rec.sampling_rate == 200 and rec.channels == seed.CHANNELS
        variables = load_mat(rec.path)
        for k, trial in zip(rec.trial_numbers, rec.trials, strict=True):
            (name,) = [v for v in variables if v.endswith(f"_eeg{k}")]
            np.testing.assert_array_equal(trial, variables[name])
    # Session 1 and 2 have their own clips: different lengths.
    assert [t.shape[1] for t in recordings[0].trials] != [t.shape[1] for t in recordings[1].trials]

    fast = tmp_path / "fast"
    spec = FormatSpec(subjects=1, sessions=1, trials=2, seconds=(3.0, 3.5), sampling_rate=1000)
    write_synthetic("seed_iv", fast, spec)
    (rec,) = read_all("seed_iv", fast, SeedIVOptions(sampling_rate=1000))
    assert rec.sampling_rate == 1000
    assert all(3000 <= t.shape[1] <= 3500 for t in rec.trials)


def test_amigos_layout_options_and_round_trip(roots, caplog):
    path = roots["amigos"] / "Data_Preprocessed_P01.mat"
    mat = load_mat(path)
    cells, rows = mat["joined_data"], mat["labels_selfassessment"]
    assert cells.shape == (1, 20) and rows.shape == (1, 20) and cells.dtype == object
    assert cells[0, 0].shape[1] == 17 and rows[0, 0].shape == (1, 12)
    assert load_mat(roots["amigos"] / "Data_Preprocessed_P03.mat")["joined_data"][0, 19].size == 0

    recs = read_every("amigos", roots["amigos"])
    assert [r.subject for r in recs] == [1, 2, 3]
    rec = recs[0]
    assert rec.trial_numbers == list(range(1, 17))  # long videos left out by default
    assert rec.channels == dreamer.CHANNELS and rec.sampling_rate == 128
    for k in (1, 16):
        full = cells[0, k - 1].T
        np.testing.assert_array_equal(rec.baselines[k - 1], full[:14, :640])
        np.testing.assert_array_equal(rec.trials[k - 1], full[:14, 640:])
    assert rec.targets.names[:2] == ("arousal", "valence")
    np.testing.assert_array_equal(rec.targets.column("arousal"), [r[0, 0] for r in rows[0, :16]])
    np.testing.assert_array_equal(rec.targets.column("valence"), [r[0, 1] for r in rows[0, :16]])
    assert len({t.shape[1] for t in rec.trials}) > 1

    options = {"long_videos": "when_present", "channels": "all", "baseline_seconds": 0}
    with caplog.at_level(logging.WARNING):
        full = read_every("amigos", roots["amigos"], options)
    assert full[0].trial_numbers == list(range(1, 21)) and full[2].trial_numbers == list(
        range(1, 17)
    )
    assert full[0].channels == amigos.ALL_CHANNELS and full[0].baselines is None
    np.testing.assert_array_equal(full[0].trials[19], cells[0, 19].T)
    assert "Data_Preprocessed_P03.mat: trial 17" in caplog.text
    reader = make_reader("amigos", {"long_videos": "required"})
    one_error(lambda: reader.read(reader.find(roots["amigos"])[2]), roots["amigos"], "trial 17")
    assert [r.subject for r in make_reader("amigos", {"excluded": [2]}).find(roots["amigos"])] == [
        1,
        3,
    ]


def test_amigos_default_exclusions_are_torcheeg_s(copy_of):
    root = copy_of("amigos")
    shutil.copy(root / "Data_Preprocessed_P01.mat", root / "Data_Preprocessed_P09.mat")
    (root / "P33").mkdir()
    shutil.copy(root / "Data_Preprocessed_P01.mat", root / "P33" / "Data_Preprocessed_P33.mat")
    assert [r.subject for r in make_reader("amigos").find(root)] == [1, 2, 3]
    everyone = make_reader("amigos", {"excluded": []}).find(root)
    assert [r.subject for r in everyone] == [1, 2, 3, 9, 33]  # found below the root too


def test_edf_and_fif_through_mne(roots):
    edf = read_every("mne", roots["edf"])
    fif = read_every("mne", roots["fif"], {"baseline_seconds": 3})
    assert [(r.subject, r.session) for r in fif] == [(1, 1), (2, 1)]
    for a, b in zip(edf, fif, strict=True):
        assert a.channels == b.channels == EEG_CHANNELS  # hEOG (eog), GSR (misc) dropped
        assert a.sampling_rate == b.sampling_rate == 128
        assert [t.shape for t in a.trials] == [t.shape for t in b.trials]
        for x, y in zip(a.trials, b.trials, strict=True):  # EDF stores 16-bit integers
            np.testing.assert_allclose(x, y, atol=1e-3 * y.std())
        np.testing.assert_array_equal(a.targets.values, b.targets.values)
    rec = fif[0]
    rows = (roots["fif"] / "sub-01_task-emotion_events.tsv").read_text().splitlines()
    table = np.array([line.split("\t") for line in rows[1:]])
    np.testing.assert_array_equal(rec.targets.values, table[:, 3:5].astype(float))
    lengths = np.round(table[:, 1].astype(float) * 128).astype(int)
    assert [t.shape[1] for t in rec.trials] == list(lengths) and len(set(lengths)) == 3
    assert all(b.shape == (32, 384) for b in rec.baselines)
    # The recording is rest, stimulus, rest, stimulus...: a baseline ends where its trial starts.
    import mne

    raw = mne.io.read_raw(rec.path, verbose="error")
    start = round(float(table[1, 0]) * 128)
    whole = raw.get_data(picks="eeg") * 1e6
    np.testing.assert_allclose(rec.trials[1], whole[:, start : start + lengths[1]])
    np.testing.assert_allclose(rec.baselines[1], whole[:, start - 384 : start])
    picked = read_every("mne", roots["edf"], {"channels": ["Fp1", "hEOG", "GSR"]})[0]
    assert picked.channels == ("Fp1", "hEOG", "GSR")
    np.testing.assert_allclose(picked.trials[0][0], edf[0].trials[0][0])
    assert np.abs(picked.trials[0][1]).max() < 1e-2  # EOG stays in volts


def test_mne_csv_table_with_categories(copy_of):
    root = copy_of("fif")
    lines = ["file,onset,duration,emotion"]
    for subject in (1, 2):
        events = (root / f"sub-{subject:02d}_task-emotion_events.tsv").read_text().splitlines()
        for i, row in enumerate(events[1:]):
            onset, duration = row.split("\t")[:2]
            emotion = ("calm", "joy", "fear")[i % 3]
            lines.append(f"sub-{subject:02d}_task-emotion_eeg.fif,{onset},{duration},{emotion}")
        (root / f"sub-{subject:02d}_task-emotion_events.tsv").unlink()
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    options = {"labels": "labels.csv", "category": "emotion", "classes": ["fear", "calm", "joy"]}
    recs = read_every("mne", root, options)
    assert [r.subject for r in recs] == [1, 2]
    assert recs[0].targets.names == ("fear", "calm", "joy")
    np.testing.assert_array_equal(recs[0].targets.values, [1, 2, 0])
    assert len(recs[1].trials) == 3
    lines[2] = lines[2].replace(",joy", ",anger")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    reader = make_reader("mne", options)
    one_error(lambda: reader.read(reader.find(root)[0]), root / "labels.csv", "line 3", "anger")


def test_deap_reader_yields_recordings_through_read_subject(roots):
    root = roots["deap"]
    rec = read_every("deap", root)[1]
    old = deap.read_subject(deap.subject_file(root, 2))
    assert rec.subject == 2 and rec.channels == EEG_CHANNELS and rec.sampling_rate == 128
    np.testing.assert_array_equal(rec.trials[2], old.data[2, :32, 384:])
    np.testing.assert_array_equal(rec.baselines[2], old.data[2, :32, :384])
    np.testing.assert_array_equal(rec.targets.values, old.labels)
    assert rec.targets.names == ("valence", "arousal", "dominance", "liking")
    whole = read_every("deap", root, {"channels": "all", "baseline_seconds": 0})[1]
    assert whole.channels == ALL_CHANNELS and whole.baselines is None
    np.testing.assert_array_equal(whole.trials[0], old.data[0])


def test_registry_and_options():
    adapter = TypeAdapter(ReaderOptions)
    options = adapter.validate_python({"source": "seed_iv", "sampling_rate": 1000})
    assert isinstance(options, SeedIVOptions) and options.sampling_rate == 1000
    with pytest.raises(ConfigError, match="unknown data source"):
        make_reader("mahnob")
    with pytest.raises(ConfigError, match="sampling_rate"):
        make_reader("seed_iv", {"sampling_rate": 500})
    with pytest.raises(ConfigError, match="takes SeedIVOptions"):
        make_reader("seed_iv", amigos.AmigosOptions())
    with pytest.raises(ConfigError, match="classes"):
        make_reader("mne", {"category": "emotion"})
    assert make_reader("amigos").options.excluded == [9, 12, 21, 22, 23, 24, 33]


# ----------------------------------------------------------------------- writing the data


def test_writers_refuse_to_overwrite_unless_told(tmp_path):
    out = tmp_path / "seed"
    write_synthetic("seed", out, FormatSpec(subjects=2, sessions=1, trials=2, seconds=(2, 3)))
    (out / "notes.txt").write_text("mine")
    one_error(
        lambda: write_synthetic("seed", out, FormatSpec(subjects=1, sessions=1, trials=2)),
        out,
        "already holds",
        "overwrite",
    )
    spec = FormatSpec(subjects=1, sessions=1, trials=2, seconds=(2, 3), seed=1)
    written = write_synthetic("seed", out, spec, overwrite=True)
    files = sorted(p.name for p in (out / "Preprocessed_EEG").iterdir())
    assert files == sorted(p.name for p in written) and len(files) == 3  # subject 2 removed
    assert (out / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="20 videos"):
        write_synthetic("amigos", tmp_path / "a", FormatSpec(trials=3))


def test_writers_are_deterministic(tmp_path):
    spec = FormatSpec(subjects=1, trials=2, seconds=(2.5, 3.0), baseline_seconds=1.0)
    a = write_synthetic("dreamer", tmp_path / "a", spec)
    b = write_synthetic("dreamer", tmp_path / "b", spec, workers=2)
    ra, rb = read_every("dreamer", a[0].parent)[0], read_every("dreamer", b[0].parent)[0]
    for x, y in zip(ra.trials + ra.baselines, rb.trials + rb.baselines, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(ra.targets.values, rb.targets.values)


def _frontal_alpha_asymmetry(rec) -> np.ndarray:
    names = [c.upper() for c in rec.channels]
    out = []
    for x in rec.trials:
        f, p = welch(x, fs=rec.sampling_rate, nperseg=int(2 * rec.sampling_rate), axis=-1)
        alpha = np.log(p[:, (f >= 8) & (f <= 13)].mean(-1))
        right = np.mean([alpha[names.index(c)] for c in ("F4", "AF4", "F8")])
        left = np.mean([alpha[names.index(c)] for c in ("F3", "AF3", "F7")])
        out.append(right - left)
    return np.array(out)


@pytest.mark.parametrize("fmt", ["seed", "dreamer"])
def test_targets_drive_the_planted_physiology(fmt, tmp_path):
    """Frontal alpha asymmetry follows valence (SEED: the class), as in synthetic DEAP."""
    corr = {}
    for effect in (1.0, 0.0):
        if fmt == "seed":
            spec = FormatSpec(subjects=1, sessions=3, seconds=(6, 8), effect=effect)
        else:
            spec = FormatSpec(subjects=3, seconds=(8, 10), baseline_seconds=2, effect=effect)
        write_synthetic(fmt, tmp_path / str(effect), spec)
        x, y = [], []
        for rec in read_all(fmt, tmp_path / str(effect)):
            a = _frontal_alpha_asymmetry(rec)
            v = rec.targets.values if fmt == "seed" else rec.targets.column("valence")
            x.append(a - a.mean())
            y.append(v - v.mean())
        corr[effect] = np.corrcoef(np.concatenate(x), np.concatenate(y))[0, 1]
    assert corr[1.0] > 0.4 and corr[1.0] > corr[0.0] + 0.3, corr
