"""Synthetic EDF / BDF / FIF recordings as an amplifier writes them: their rates, DC offsets,
drift, line noise, online reference and dead channel, with the planted signal where it was."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pytest

from eeg_emotion.data.synthetic_amplifier import Amplifier
from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic
from tests.helpers.paths import ROOT
from tests.helpers.training import PY, run

SIZE = {"subjects": 2, "trials": 2, "seconds": (4.0, 4.0), "baseline_seconds": 1.0}
AMP = Amplifier(
    rates=(512, 1000),
    dc_offset=3000.0,
    drift=40.0,
    line_noise=30.0,
    reference="Ref",
    dead_channel="T7",
)


def read(path: Path) -> mne.io.BaseRaw:
    extra = {} if path.suffix == ".fif" else {"infer_types": True}
    return mne.io.read_raw(path, preload=True, verbose="error", **extra)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(clean, amplifier) FIF copies of the same 2 subjects."""
    clean, amp = tmp_path_factory.mktemp("clean"), tmp_path_factory.mktemp("amp")
    write_synthetic("fif", clean, FormatSpec(**SIZE))  # type: ignore[arg-type]
    write_synthetic("fif", amp, FormatSpec(**SIZE, amplifier=AMP))  # type: ignore[arg-type]
    return clean, amp


def test_rates_per_subject_and_the_same_trials(written):
    clean, amp = written
    for subject, rate in ((1, 512), (2, 1000)):
        name = f"sub-{subject:02d}_task-emotion_eeg.fif"
        a, c = read(amp / name), read(clean / name)
        assert a.info["sfreq"] == rate and c.info["sfreq"] == 128
        assert a.times[-1] == pytest.approx(c.times[-1], abs=1 / 128)
        np.testing.assert_allclose(a.annotations.onset, c.annotations.onset)
        np.testing.assert_allclose(a.annotations.duration, c.annotations.duration)
        events = f"sub-{subject:02d}_task-emotion_events.tsv"
        assert (amp / events).read_text() == (clean / events).read_text()


def test_artefacts_are_there(written):
    _, amp = written
    raw = read(amp / "sub-02_task-emotion_eeg.fif")
    x = raw.get_data(picks="eeg") * 1e6  # microvolts
    names = raw.copy().pick("eeg").ch_names
    assert names[-1] == "Ref" and len(names) == 33
    others = np.delete(x, [names.index("T7"), names.index("Ref")], axis=0)
    assert np.abs(others.mean(axis=1)).max() > 500  # DC offsets of up to 3 mV
    freqs = np.fft.rfftfreq(x.shape[1], 1 / 1000)
    power = np.abs(np.fft.rfft(others - others.mean(axis=1, keepdims=True), axis=1)) ** 2
    line = power[:, np.abs(freqs - 50) < 0.3].sum(1)
    near = power[:, (np.abs(freqs - 50) > 2) & (np.abs(freqs - 50) < 5)].sum(1)
    assert (line > 10 * near).all()  # the hum stands out of its neighbourhood
    # the dead channel: the offset, drift, hum and reference of the amplifier, no EEG
    band = mne.filter.filter_data(x - x[names.index("Ref")], 1000.0, 4.0, 40.0, verbose="error")
    eeg = np.delete(band, [names.index("T7"), names.index("Ref")], axis=0)
    assert np.std(band[names.index("T7")]) < 0.05 * np.std(eeg, axis=1).min()
    table = (amp / "sub-02_task-emotion_channels.tsv").read_text().splitlines()
    assert "T7\tEEG\tV\tbad" in table and "Fp1\tEEG\tV\tgood" in table


def test_the_planted_signal_stays_where_it_was(written):
    """Re-referenced to Ref, band-passed, notched and resampled back to 128 Hz with MNE, the
    amplifier's recording is the clean one."""
    clean, amp = written
    for subject in (1, 2):
        name = f"sub-{subject:02d}_task-emotion_eeg.fif"
        a, c = read(amp / name), read(clean / name)
        a.set_eeg_reference(["Ref"], verbose="error")
        a.filter(1.0, 45.0, picks="eeg", verbose="error").notch_filter(50.0, verbose="error")
        a.resample(128, method="polyphase", verbose="error")
        c.filter(1.0, 45.0, picks="eeg", verbose="error")
        keep = [ch for ch in c.copy().pick("eeg").ch_names if ch != "T7"]
        got, want = a.get_data(picks=keep), c.get_data(picks=keep)
        n = min(got.shape[1], want.shape[1])
        inner = slice(128 * 2, n - 128 * 2)  # away from the filters' edges
        error = np.abs(got[:, inner] - want[:, inner]).max() / np.abs(want[:, inner]).max()
        assert error < 0.05, (subject, error)


def test_bdf_and_edf_carry_the_rate(tmp_path):
    spec = FormatSpec(**SIZE, amplifier=Amplifier(rates=(256,), line_noise=5.0))  # type: ignore[arg-type]
    for fmt in ("bdf", "edf"):
        write_synthetic(fmt, tmp_path / fmt, spec)
        raw = read(tmp_path / fmt / f"sub-01_task-emotion_eeg.{fmt}")
        assert raw.info["sfreq"] == 256 and "Fp1" in raw.ch_names
        assert raw.get_channel_types(["Fp1"]) == ["eeg"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "seed", "--rate", "512"], "are for --format edf, bdf or fif"),
        (["--format", "edf", "--dead-channel", "X1"], "the dead channel 'X1' is not one of"),
        (["--format", "edf", "--reference", "Fp1"], "'Fp1' is already an EEG channel"),
        (
            ["--format", "edf", "--rate", "100", "--line-noise", "5", "--line-frequency", "60"],
            "needs rates above 120 Hz",
        ),
        (["--format", "edf", "--rate", "0"], "--rate"),
    ],
)
def test_refused_with_exit_2(tmp_path, args, message):
    out = tmp_path / "out"
    script = str(ROOT / "launch" / "synthesize.py")
    done = run([PY, script, "--out", str(out), "--subjects", "1", *args], expect=2)
    assert message in done.stderr + done.stdout
    assert not out.exists()
