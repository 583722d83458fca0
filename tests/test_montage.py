"""Other montages: channel names compared by one key, the trained channels a recording lacks
interpolated (as MNE's own interpolate_bads does) or, for a patch model, read without, and
the refusals where neither is possible."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pytest

from eeg_emotion.config import DataSettings
from eeg_emotion.data import montage
from eeg_emotion.data.channels import EEG_CHANNELS, channel_key, electrode_ids, pick_names
from eeg_emotion.data.preprocess import MONTAGE, preprocess
from eeg_emotion.data.readers import Ratings, Recording
from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic
from eeg_emotion.errors import DataError
from tests.helpers.paths import ROOT
from tests.helpers.training import PY, command, run

PREDICT = str(ROOT / "launch" / "predict.py")
PATCH = ["data.tokenizer.kind=patch", "data.tokenizer.patch=0.5s", "train.epochs=1"]


def test_channel_names_compare_by_one_key():
    same = ["Fp1", "FP1", "fp1", " EEG Fp1", "EEG FP1-REF", "EEG Fp1-Ref", "Fp1-LE", "eeg fp1-a1"]
    assert {channel_key(n) for n in same} == {"fp1"}
    assert channel_key("T3") == channel_key("EEG T7-Ref") == "t7"
    assert channel_key("Fp1-F7") == "fp1-f7"  # a bipolar derivation stays one
    assert channel_key("ECG ECG1") == "ecg1"
    assert pick_names(["fp1", "EEG CZ-REF"], ("FP1", "Cz"), "mne") == ("FP1", "Cz")
    assert electrode_ids(["EEG FP1-REF"]) == electrode_ids(["Fp1"])


def _recording(channels: tuple[str, ...], seed: int = 0) -> Recording:
    rng = np.random.default_rng(seed)
    trials = [rng.standard_normal((len(channels), 256)) * 10 for _ in range(2)]
    ratings = Ratings(("valence", "arousal"), np.full((2, 2), 5.0), 1, 9)
    return Recording(1, 1, trials, channels, 128.0, ratings, Path("rec.edf"), [1, 2])


def test_a_missing_channel_is_interpolated_as_mne_does():
    have = tuple(c.upper() for c in EEG_CHANNELS if c not in ("Fp1", "Oz"))  # FP1 vs Fp1
    rec = _recording(("EEG " + have[0] + "-Ref", *have[1:]))
    fitted = montage.match(EEG_CHANNELS, rec.channels, patch=False, where=rec.path)
    assert fitted.interpolated == ("Fp1", "Oz") and not fitted.extra
    assert "Fp1, Oz" in (fitted.warning() or "")
    out = preprocess(montage.complete(rec, fitted), DataSettings())
    # MNE's own interpolate_bads on the same data, named as the montage names them.
    names = [*have, "Fp1", "Oz"]
    x = np.concatenate([rec.trials[0], rec.trials[1]], axis=-1)
    x = np.concatenate([x, np.zeros((2, x.shape[-1]))])
    raw = mne.io.RawArray(x, mne.create_info(names, 128.0, "eeg"), verbose="error")
    raw.set_montage(mne.channels.make_standard_montage(MONTAGE), match_case=False)
    raw.info["bads"] = ["Fp1", "Oz"]
    raw.interpolate_bads(reset_bads=True, mode="accurate", origin="auto", verbose="error")
    expected = raw.get_data()
    got = np.concatenate(out.trials, axis=-1)
    np.testing.assert_allclose(got[-2:], expected[-2:], rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(got[:-2], x[:-2])  # the recorded channels as they were


def test_what_cannot_be_interpolated_is_refused_naming_it():
    rec = _recording(("AF3", "F3", "F7", "FC5", "T7"))
    with pytest.raises(DataError, match=r"missing trained channel CB1 has no standard 10-05"):
        montage.match(("AF3", "CB1"), rec.channels, patch=False, where=rec.path)
    few = _recording(("AF3", "F3", "GSR"))
    with pytest.raises(DataError, match=r"cannot interpolate missing trained channel Fp1: only 2"):
        montage.match(("AF3", "Fp1"), few.channels, patch=False, where=few.path)
    # A patch model reads the channels it has, however few: none is refused.
    assert montage.match(("AF3", "Fp1"), few.channels, patch=True, where="x").dropped == ("Fp1",)
    with pytest.raises(DataError, match=r"has none of the channels the model was trained on"):
        montage.match(("Fp1",), few.channels, patch=True, where=few.path)


@pytest.fixture(scope="module")
def fif_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fif")
    write_synthetic("fif", root, FormatSpec(subjects=1, trials=2, seconds=(4, 5)))
    return root


def _without(src: Path, out: Path, keep: list[str]) -> Path:
    """The FIF recording `src` with only the channels `keep`, renamed EEG <NAME>-REF."""
    raw = mne.io.read_raw_fif(src, preload=True, verbose="error").pick(keep)
    raw.rename_channels({c: f"EEG {c.upper()}-REF" for c in keep})
    out.mkdir()
    raw.save(out / src.name, verbose="error")
    events = src.with_name(src.name.replace("_eeg.fif", "_events.tsv"))
    (out / events.name).write_text(events.read_text())
    return out / src.name


@pytest.fixture(scope="module")
def patch_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    run_dir = tmp_path_factory.mktemp("patch") / "run"
    run(command(tiny_root, cache, run_dir, *PATCH))
    return run_dir


def test_a_patch_model_reads_the_channels_a_recording_has(patch_run, fif_root, tmp_path, caplog):
    src = next(fif_root.glob("*_eeg.fif"))
    keep = [c for c in EEG_CHANNELS if c not in ("Fp1", "Cz")]
    fif = _without(src, tmp_path / "rec", keep)
    out = tmp_path / "p.csv"
    run([PY, PREDICT, str(patch_run), "--input", str(fif), "--out", str(out)])
    rows = out.read_text().splitlines()
    assert len(rows) > 3 and all("nan" not in r for r in rows)
    assert "channels Fp1, Cz that the model was trained on: the patch model reads the 30" in (
        caplog.text
    )
    # None of its channels: one line naming them, exit 2, nothing written.
    bare = _without(src, tmp_path / "bare", ["Fp1"])
    raw = mne.io.read_raw_fif(bare, preload=True, verbose="error")
    raw.rename_channels({"EEG FP1-REF": "X1"})
    raw.save(bare, overwrite=True, verbose="error")
    refused = run(
        [PY, PREDICT, str(patch_run), "--input", str(bare), "--out", str(tmp_path / "q.csv")],
        expect=2,
    )
    lines = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "has none of the channels the model was trained on" in lines[0]
    assert not (tmp_path / "q.csv").exists()
