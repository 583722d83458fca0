"""The signal steps of data.* (resampling, band-pass, notch, bad channels, reference), each
against MNE's own output on the same data; the defaults change nothing; every bad value is one
error with exit 2 and nothing written; a mixed-rate amplifier-like dataset trains end to end."""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np
import pytest
import yaml

from eeg_emotion.config import DataSettings, load_settings
from eeg_emotion.data.pipeline import cache_key
from eeg_emotion.data.preprocess import MONTAGE, preprocess
from eeg_emotion.data.readers.recording import Ratings, Recording
from eeg_emotion.errors import DataError
from tests.helpers.paths import ROOT
from tests.helpers.training import PY, command, run

CHANNELS = ("Fp1", "F3", "C3", "Cz", "C4", "P3", "Pz", "O1", "hEOG")  # the last is not EEG
EEG = list(range(8))


def recording(rate: float, seconds: float = 4.0, lead: float = 1.0, seed: int = 0) -> Recording:
    """Two trials of random signal with DC offsets and their baselines, at `rate` Hz."""
    rng = np.random.default_rng(seed)
    n, k = round(seconds * rate), round(lead * rate)
    trials = [rng.normal(0, 10, (len(CHANNELS), n)) + 300 for _ in range(2)]
    baselines = [rng.normal(0, 10, (len(CHANNELS), k)) + 300 for _ in range(2)]
    ratings = Ratings(("valence", "arousal"), np.array([[3.0, 7.0], [8.0, 2.0]]), 1.0, 9.0)
    return Recording(
        1, 1, trials, CHANNELS, rate, ratings, Path("/data/sub-01_eeg.edf"), [1, 2], baselines
    )


def settings(**values: object) -> DataSettings:
    return DataSettings(source="mne", root="/data", **values)  # type: ignore[arg-type]


def joined(rec: Recording, i: int) -> np.ndarray:
    """Trial i with its baseline in front, as one stretch of signal."""
    assert rec.baselines is not None
    return np.concatenate([rec.baselines[i], rec.trials[i]], axis=-1)


def raw_of(x: np.ndarray, rate: float) -> mne.io.RawArray:
    types = ["eeg"] * len(EEG) + ["eog"]
    return mne.io.RawArray(x, mne.create_info(list(CHANNELS), rate, types), verbose="error")


@pytest.mark.parametrize("rate", [512.0, 1000.0])
def test_resampling_matches_mne_raw_resample(rate):
    rec = recording(rate)
    out = preprocess(rec, settings(sampling_rate=128))
    assert out.sampling_rate == 128
    for i in range(2):
        expected = raw_of(joined(rec, i), rate).resample(128, method="polyphase", verbose="error")
        got = joined(out, i)
        assert got.shape == expected.get_data().shape
        np.testing.assert_allclose(got, expected.get_data(), atol=1e-6, rtol=0)
        assert out.baselines is not None and out.baselines[i].shape[-1] == 128  # 1 s


def test_band_pass_and_notch_match_mne_filter_data():
    rec = recording(256.0)
    out = preprocess(rec, settings(sampling_rate=256, filter=(1.0, 40.0), notch=50.0))
    for i in range(2):
        x = joined(rec, i)
        expected = mne.filter.filter_data(x, 256.0, 1.0, 40.0, picks=EEG, verbose="error")
        # the line frequency and its harmonic below Nyquist (128 Hz): 50 and 100 Hz
        expected = mne.filter.notch_filter(
            expected, 256.0, [50.0, 100.0], picks=EEG, verbose="error"
        )
        np.testing.assert_allclose(joined(out, i), expected, atol=1e-6, rtol=0)
        np.testing.assert_array_equal(joined(out, i)[8], x[8])  # not EEG: not filtered


def test_reference_and_interpolation_match_mne():
    rec = recording(128.0)
    s = settings(bad_channels={"sub-01_eeg.edf": ["C3"]}, reference="average")
    out = preprocess(rec, s)
    raw = raw_of(np.concatenate([joined(rec, i) for i in range(2)], axis=-1), 128.0)
    raw.set_montage(
        mne.channels.make_standard_montage(MONTAGE), match_case=False, on_missing="ignore"
    )
    raw.info["bads"] = ["C3"]
    raw.interpolate_bads(reset_bads=True, verbose="error")
    raw.set_eeg_reference("average", verbose="error")
    got = np.concatenate([joined(out, i) for i in range(2)], axis=-1)
    np.testing.assert_allclose(got, raw.get_data(), atol=1e-6, rtol=0)
    assert not np.allclose(got[2], joined(rec, 0)[2].mean())  # C3 was replaced
    named = preprocess(rec, settings(reference=["cz"]))  # any case
    np.testing.assert_allclose(named.trials[0][3], 0, atol=1e-9)
    np.testing.assert_allclose(named.trials[0][0], rec.trials[0][0] - rec.trials[0][3], atol=1e-9)


def test_bad_channels_from_a_bids_channels_table(tmp_path):
    from eeg_emotion.data.readers.mne_files import MneReader

    (tmp_path / "sub-01_task-x_channels.tsv").write_text(
        "name\ttype\tstatus\nFp1\tEEG\tgood\nC3\tEEG\tbad\n"
    )
    reader = MneReader()
    assert reader._bad_channels(tmp_path / "sub-01_task-x_eeg.edf") == ("C3",)
    assert reader._bad_channels(tmp_path / "sub-02_task-x_eeg.edf") == ()


def test_refusals_that_need_the_recording():
    rec = recording(128.0)
    with pytest.raises(DataError, match=r"data\.reference names Ref"):
        preprocess(rec, settings(reference=["Ref"]))
    with pytest.raises(DataError, match=r"hEOG has no standard 10-05 position"):
        preprocess(rec, settings(bad_channels={"sub-01_eeg.edf": ["hEOG"]}))
    with pytest.raises(DataError, match="bad channel 'X9' is not one of its channels"):
        preprocess(rec, settings(bad_channels={"sub-01_eeg.edf": ["X9"]}))


# Cache keys of each source's default settings and of two configs, computed before these
# settings existed: the defaults must leave every key, and so every cache, as it was.
KEYS_BEFORE = {
    "deap": "40dcf6b8aed0a45f80ed",
    "dreamer": "ed80216cf07043369036",
    "seed": "9529211ac1385c880515",
    "seed_iv": "24765e25e8cfcb89607a",
    "amigos": "40c272be496273340742",
    "mne": "2dd2385ede2db1ed330c",
    "tiny.yaml": "0bbdd7c4050052a3d328",
    "mne.yaml": "1c1982a1dc36f160c55a",
}


def test_defaults_change_nothing():
    for source in ("deap", "dreamer", "seed", "seed_iv", "amigos", "mne"):
        assert cache_key(DataSettings(source=source), []) == KEYS_BEFORE[source], source
    for config in ("tiny.yaml", "mne.yaml"):
        data = load_settings(ROOT / "configs" / config).data
        assert cache_key(data, []) == KEYS_BEFORE[config], config
        dumped = data.model_dump(mode="json")
        assert not {"filter", "notch", "reference", "bad_channels"} & set(dumped)
    rec = recording(128.0)
    assert preprocess(rec, settings()) is rec  # byte for byte: the very same arrays
    changed = load_settings(None, ["data.filter=[0.5,45]"]).data
    assert changed.model_dump(mode="json")["filter"] == [0.5, 45.0]
    assert cache_key(changed, []) != KEYS_BEFORE["deap"]


def test_defaults_leave_a_built_dataset_byte_identical(tiny_root, tmp_path):
    """A DEAP build with the steps at their defaults, and with them given at their default
    values explicitly, write the same arrays (and the same key)."""
    from eeg_emotion.data.pipeline import build

    base = load_settings(ROOT / "configs" / "tiny.yaml", [f"data.root={tiny_root}"]).data
    same = base.model_copy(update={"cache_dir": str(tmp_path / "b"), "reference": "none"})
    a = build(base.model_copy(update={"cache_dir": str(tmp_path / "a")}), progress=False)
    b = build(same, progress=False)
    assert a.path.name == b.path.name
    for name in ("tokens.npy", "values.npy", "rows.npy", "labels.npy"):
        if (a.path / name).exists():
            assert (a.path / name).read_bytes() == (b.path / name).read_bytes()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.sampling_rate=0", "data.sampling_rate"),
        ("data.filter=[0.5,70]", "Nyquist frequency 64 Hz"),
        ("data.filter=[45,0.5]", "the low edge 45 Hz must be below"),
        ("data.notch=64", "data.notch: 64 Hz is not below the Nyquist"),
        ("data.reference=[]", "data.reference"),
    ],
)
def test_bad_settings_exit_2_with_nothing_written(tmp_path, capsys, override, message):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    out = run(command(tmp_path / "none", cache, run_dir, override), expect=2)
    assert message in out.stderr + out.stdout
    assert not run_dir.exists() and not cache.exists()


@pytest.fixture(scope="module")
def amplifier_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 subjects as an amplifier records them: 512, 1000 and 512 Hz, DC offsets, drift, 50 Hz
    line noise, an online reference (channel Ref) and a dead T7, marked bad."""
    root = tmp_path_factory.mktemp("amplifier")
    run(
        [
            PY,
            str(ROOT / "launch" / "synthesize.py"),
            *("--format", "edf", "--out", str(root), "--subjects", "3", "--trials", "8"),
            *("--seconds", "6", "6", "--baseline-seconds", "1", "--rate", "512", "1000"),
            *("--dc-offset", "2000", "--drift", "40", "--line-noise", "30"),
            *("--reference", "Ref", "--dead-channel", "T7", "--workers", "1"),
        ]
    )
    return root


MNE_TINY = [
    "data.source=mne",
    "data.options.trial_type=stimulus",
    "data.tokenizer.max_tokens=512",
]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.reference=[M1]", "data.reference names M1"),
        ("data.bad_channels={sub-01_task-emotion_eeg.edf: [Ref]}", "Ref has no standard 10-05"),
        (  # a key naming no recording (here a misspelt one) would leave T7 in silently
            "data.bad_channels={sub-1_task-emotion_eeg.edf: [T7]}",
            "data.bad_channels names 'sub-1_task-emotion_eeg.edf', not a recording here "
            "(recordings: sub-01_task-emotion_eeg.edf, sub-02",
        ),
    ],
)
def test_bad_data_exit_2_with_nothing_written(amplifier_root, tmp_path, override, message):
    run_dir, cache = tmp_path / "run", tmp_path / "cache"
    out = run(command(amplifier_root, cache, run_dir, *MNE_TINY, override), expect=2)
    assert message in out.stderr + out.stdout
    assert not run_dir.exists()
    assert not cache.exists() or not any(cache.iterdir())


def test_mixed_rates_train_end_to_end(amplifier_root, tmp_path, cache):
    run_dir = tmp_path / "run"
    steps = ["data.filter=[1,45]", "data.notch=50", "data.reference=average"]
    run(command(amplifier_root, cache, run_dir, *MNE_TINY, *steps))
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())["data"]
    assert saved["filter"] == [1.0, 45.0] and saved["notch"] == 50.0
    assert saved["reference"] == "average" and saved["sampling_rate"] == 128
    best = yaml.safe_load((run_dir / "best" / "preprocessor.json").read_text())["data"]
    assert best["filter"] == [1.0, 45.0] and best["reference"] == "average"
    # every recording at 128 Hz: 3 subjects x 8 trials x 3 windows of 2 s
    (meta,) = [yaml.safe_load(p.read_text()) for p in cache.glob("mne-*/meta.json")]
    assert meta["num_rows"] == 72 and meta["settings"]["notch"] == 50.0
    # predict does what training did: a 1000 Hz recording gives 128 Hz windows
    out = tmp_path / "p.csv"
    recording = amplifier_root / "sub-02_task-emotion_eeg.edf"
    predict = str(ROOT / "launch" / "predict.py")
    run([PY, predict, str(run_dir), "--input", str(recording), "--out", str(out)])
    rows = out.read_text().splitlines()[1:]
    assert sum(",window," in r for r in rows) == 8 * 3 and sum(",trial," in r for r in rows) == 8
