"""Trials from a stim channel: a BioSemi-style BDF whose 24-bit Status channel marks each trial
with a start and an end code over the upper bits the amplifier keeps set. The reader's trials
are `mne.find_events`' (masked) events on the same file; such a dataset trains, evaluates and
predicts end to end; bad stim settings are one error naming the recording, exit 2, nothing
written."""

from __future__ import annotations

import shutil
from pathlib import Path

import edfio
import mne
import numpy as np
import pytest

from eeg_emotion.data.readers import make_reader
from eeg_emotion.errors import DataError
from tests.helpers.paths import ROOT
from tests.helpers.training import PY, command, run

SYNTHESIZE = str(ROOT / "launch" / "synthesize.py")
TRIALS, START, END = 6, 4, 5
STIM = [
    "data.source=mne",
    "data.options.trial_type=stimulus",
    f"data.options.stim.start=[{START}]",
    f"data.options.stim.end={END}",
    "data.tokenizer.max_tokens=512",
]


@pytest.fixture(scope="module")
def status_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 subjects at 256 Hz, 6 trials of 6 s each after 1 s of rest, marked only by Status."""
    root = tmp_path_factory.mktemp("status")
    run(
        [
            PY,
            SYNTHESIZE,
            *("--format", "bdf", "--out", str(root), "--subjects", "3"),
            *("--trials", str(TRIALS), "--seconds", "6", "6", "--baseline-seconds", "1"),
            *("--rate", "256", "--status", str(START), str(END), "--workers", "1"),
        ]
    )
    return root


def _options(**stim: object) -> dict:
    return {"trial_type": "stimulus", "stim": {"start": [START], "end": END, **stim}}


def test_trials_are_the_masked_find_events_of_the_status_channel(status_root):
    path = status_root / "sub-02_task-emotion_eeg.bdf"
    raw = mne.io.read_raw(path, infer_types=True, verbose="error")
    assert raw.annotations is None or len(raw.annotations) == 0  # the Status channel alone
    # Unmasked, the amplifier's upper bits hide every code (the known pitfall) ...
    plain = mne.find_events(raw, "Status", consecutive=True, shortest_event=1, verbose="error")
    assert START not in plain[:, 2] and (plain[:, 2] >= 2**16).all()
    # ... masked to BioSemi's 16 trigger bits, the codes are there.
    events = mne.find_events(
        raw, "Status", consecutive=True, shortest_event=1, mask=0xFFFF, verbose="error"
    )
    starts, ends = events[events[:, 2] == START, 0], events[events[:, 2] == END, 0]
    assert len(starts) == len(ends) == TRIALS
    reader = make_reader("mne", _options())
    ref = next(r for r in reader.find(status_root) if r.path == path)
    rec = reader.read(ref)
    assert rec.trial_numbers == list(range(1, TRIALS + 1)) and rec.sampling_rate == 256
    assert [t.shape[1] for t in rec.trials] == list(ends - starts)
    data = raw.get_data(picks="eeg") * 1e6
    for trial, start, end in zip(rec.trials, starts, ends, strict=True):
        np.testing.assert_allclose(trial, data[:, start:end])
    # The events table's ratings, matched by trial number or (without that column) by sample.
    table = path.with_name("sub-02_task-emotion_events.tsv")
    lines = [line.split("\t") for line in table.read_text().splitlines()]
    ratings = np.array([[float(c) for c in line[5:7]] for line in lines[1:]])
    np.testing.assert_array_equal(rec.targets.values, ratings)
    assert [int(line[2]) for line in lines[1:]] == list(starts)
    table.write_text("\n".join("\t".join(c[:3] + c[4:]) for c in lines) + "\n")
    try:
        by_sample = make_reader("mne", _options()).read(ref)
    finally:
        table.write_text("\n".join("\t".join(c) for c in lines) + "\n")
    assert by_sample.trial_numbers == rec.trial_numbers
    np.testing.assert_array_equal(by_sample.targets.values, ratings)
    # A fixed duration instead of the end code.
    fixed = make_reader("mne", {"stim": {"start": START, "seconds": 2.5}}).read(ref)
    assert [t.shape[1] for t in fixed.trials] == [640] * TRIALS


def test_a_status_bdf_trains_evaluates_and_predicts(status_root, tmp_path, cache):
    run_dir = tmp_path / "run"
    run(command(status_root, cache, run_dir, *STIM))
    out = run([PY, str(ROOT / "launch" / "evaluate.py"), str(run_dir), "--split", "test"])
    assert "balanced" in out.stdout.lower()
    predictions = tmp_path / "p.csv"
    recording = status_root / "sub-03_task-emotion_eeg.bdf"
    predict = str(ROOT / "launch" / "predict.py")
    run([PY, predict, str(run_dir), "--input", str(recording), "--out", str(predictions)])
    rows = predictions.read_text().splitlines()[1:]
    assert sum(",window," in r for r in rows) == TRIALS * 3
    assert sum(",trial," in r for r in rows) == TRIALS
    assert ",s03-1-t06," in "".join(rows)
    # --mne over the run's own reader options: 2 s trials from each start code, one window each.
    fixed = [*("--mne", "stim.end=null", "--mne", "stim.seconds=2")]
    run([PY, predict, str(run_dir), "--input", str(recording), "--out", str(predictions), *fixed])
    rows = predictions.read_text().splitlines()[1:]
    assert sum(",window," in r for r in rows) == sum(",trial," in r for r in rows) == TRIALS


def _drop_last_end(path: Path) -> None:
    """The recording's Status channel without its last end code."""
    bdf = edfio.read_bdf(path)
    status = bdf.signals[-1]
    digital = status.digital.copy()
    on = np.flatnonzero((digital & 0xFFFF) == END)
    digital[on[on >= on[-1] - 64]] &= ~0xFFFF
    bdf.drop_signals(["Status"])
    bdf.append_signals(
        edfio.BdfSignal.from_digital(
            digital, status.sampling_frequency, label="Status", digital_range=(-(2**23), 2**23 - 1)
        )
    )
    bdf.write(path)


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("data.options.stim.channel=Trig", ["no stim channel 'Trig'"]),
        ("data.options.stim.start=[9]", ["start code 9 never occurs", "Status"]),
        ("data.options.stim.end=7", ["end code 7 never occurs"]),
        ("data.options.stim.mask=null", ["start code 4 never occurs", "65540"]),
        (None, [f"trial {TRIALS}", f"no end code {END}", "the recording's end"]),
    ],
)
def test_bad_stim_settings_exit_2_naming_the_recording(status_root, tmp_path, override, words):
    root = tmp_path / "data"
    shutil.copytree(status_root, root)
    recording = root / "sub-01_task-emotion_eeg.bdf"
    if override is None:
        _drop_last_end(recording)
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    out = run(command(root, cache, run_dir, *STIM, *([override] if override else [])), expect=2)
    message = out.stderr + out.stdout
    assert str(recording) in message and all(w in message for w in words), message
    assert not run_dir.exists()
    assert not cache.exists() or not any(cache.iterdir())


def test_stim_settings_and_synthesize_refusals(tmp_path):
    for stim, word in [
        ({"start": [1]}, "either end"),
        ({"start": [1], "end": 2, "seconds": 3}, "either end"),
        ({"start": [], "end": 2}, "at least one"),
        ({"start": [1], "end": 1}, "also a start code"),
    ]:
        with pytest.raises(Exception, match=word):
            make_reader("mne", {"stim": stim})
    out = tmp_path / "x"
    edf = [PY, SYNTHESIZE, "--format", "edf", "--out", str(out), "--status", "1", "2"]
    assert "--status is for --format bdf" in run(edf, expect=2).stderr
    same = [PY, SYNTHESIZE, "--format", "bdf", "--out", str(out), "--status", "3", "3"]
    assert "two different" in run(same, expect=2).stderr
    assert not out.exists()
    with pytest.raises(DataError):
        make_reader("mne", _options()).find(tmp_path / "none")


def test_spans_alone_come_from_stim_events_without_a_table(status_root, tmp_path):
    from eeg_emotion.data.readers.mne_files import MneReader
    from eeg_emotion.data.source_options import MneOptions
    from tests.helpers.readers import one_error

    path = tmp_path / "sub-01_task-emotion_eeg.bdf"
    shutil.copy(status_root / path.name, path)
    plain = MneReader(labelled=False)
    one_error(lambda: plain.read(plain.ref_of(path)), path, "no trials", "data.options.stim")
    spans = MneReader(MneOptions.model_validate(_options()), labelled=False)
    rec = spans.read(spans.ref_of(path))
    assert rec.trial_numbers == list(range(1, TRIALS + 1))
    assert np.isnan(rec.targets.values).all()


def test_predict_gives_a_model_of_another_source_the_stim_settings(status_root, tmp_path):
    """`predict --mne`: a DEAP-trained model's run (DataSettings' defaults) reads a BDF's trials
    from its Status channel; the options checked before anything is read."""
    from eeg_emotion.config import DataSettings
    from eeg_emotion.errors import ConfigError
    from eeg_emotion.evaluation.predict_inputs import input_recordings
    from tests.helpers.readers import one_error

    path = tmp_path / "sub-01_task-emotion_eeg.bdf"
    shutil.copy(status_root / path.name, path)
    deap = DataSettings()
    assert deap.source == "deap"
    [(plain, ref)] = input_recordings(path, deap)  # annotations: there are none
    one_error(lambda: plain.read(ref), path, "no trials", "data.options.stim")
    mne = [f"stim.start=[{START}]", f"stim.end={END}"]
    [(reader, ref)] = input_recordings(path, deap, mne)
    rec = reader.read(ref)
    assert rec.trial_numbers == list(range(1, TRIALS + 1)) and rec.sampling_rate == 256
    assert [t.shape[1] for t in rec.trials] == [6 * 256] * TRIALS
    # On top of the run's own: a fixed duration in place of the end code.
    own = DataSettings.model_validate({"source": "mne", "options": _options()})
    [(reader, ref)] = input_recordings(path, own, ["stim.end=null", "stim.seconds=2"])
    assert [t.shape[1] for t in reader.read(ref).trials] == [512] * TRIALS
    with pytest.raises(ConfigError, match=r"^--mne: stim: give either end"):
        input_recordings(tmp_path / "missing.bdf", deap, ["stim.start=[4]"])
    with pytest.raises(ConfigError, match=r"unknown key 'stimm'"):
        input_recordings(path, deap, ["stimm.start=[4]"])
