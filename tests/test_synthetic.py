"""Synthetic DEAP is deterministic, DEAP-shaped, and carries physiological label effects."""

from __future__ import annotations

import dataclasses
import pickle

import numpy as np
import pytest
from scipy.signal import butter, hilbert, sosfiltfilt, welch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

from eeg_emotion.data.channels import EEG_CHANNELS
from eeg_emotion.data.readers.deap import read_subject
from eeg_emotion.data.synthetic import (
    EFFECT_KINDS,
    CouplingSite,
    SyntheticSpec,
    burst_design,
    coupling_design,
    subject_recording,
    synthesize,
)
from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic

FS = 128
BANDS = {"theta": (4, 8), "alpha": (8, 14), "beta": (14, 31), "gamma": (31, 45)}


def test_deterministic_per_seed(tmp_path):
    spec = SyntheticSpec(subjects=2, trials=2, samples=640, seed=3)
    a = synthesize(tmp_path / "a", spec)
    b = synthesize(tmp_path / "b", spec, workers=2)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    c = synthesize(tmp_path / "c", SyntheticSpec(subjects=2, trials=2, samples=640, seed=4))
    assert a[0].read_bytes() != c[0].read_bytes()
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["s01.dat", "s02.dat"]


def test_full_size_shape_and_signal_properties():
    data, labels = subject_recording(SyntheticSpec(subjects=1, trials=2), 1)
    assert data.shape == (2, 40, 8064) and data.dtype == np.float64
    assert labels.shape == (2, 4) and labels.min() >= 1 and labels.max() <= 9
    eeg = data[:, :32]
    # Common average reference: EEG channels sum to zero at every sample.
    assert np.abs(eeg.mean(axis=1)).max() < 1e-4 * eeg.std()
    # 4-45 Hz band-pass, and an alpha peak over posterior sites.
    f, p = welch(eeg, fs=FS, nperseg=256, axis=-1)
    p = p.mean(axis=0)
    in_band = p[:, (f >= 6) & (f <= 40)].sum()
    assert p[:, f <= 2].sum() < 1e-3 * in_band and p[:, f >= 50].sum() < 1e-3 * in_band
    o1 = EEG_CHANNELS.index("O1")
    alpha, beta = p[o1, (f >= 8) & (f <= 12)].mean(), p[o1, (f >= 20) & (f <= 25)].mean()
    assert alpha > 3 * beta
    assert 3 < eeg.std() < 60  # microvolts


def test_class_balance_is_deap_like():
    spec = SyntheticSpec(subjects=32, trials=40, samples=640)
    from eeg_emotion.data.synthetic import _ratings

    ratings = np.stack([_ratings(np.random.default_rng([0, s]), spec) for s in range(1, 33)])
    high = (ratings[..., :2] > 5).mean(axis=(0, 1))
    assert 0.45 < high[0] < 0.65 and 0.5 < high[1] < 0.7  # DEAP: 55 % and 58 %
    near_five = (np.abs(ratings[..., :2] - 5) <= 0.1).mean()
    assert 0.05 < near_five < 0.2  # DEAP: ~12 %


def _frontal_asymmetry(data: np.ndarray, start: int, stop: int) -> np.ndarray:
    f, p = welch(data[:, :32, start:stop], fs=FS, nperseg=256, axis=-1)
    alpha = np.log(p[:, :, (f >= 8) & (f <= 13)].mean(-1))
    right = [EEG_CHANNELS.index(c) for c in ("F4", "AF4", "F8")]
    left = [EEG_CHANNELS.index(c) for c in ("F3", "AF3", "F7")]
    return alpha[:, right].mean(1) - alpha[:, left].mean(1)


@pytest.mark.slow
def test_label_effects_follow_physiology_and_spare_the_baseline():
    spec = SyntheticSpec(subjects=1, trials=80, samples=384 + 20 * FS, effect=2.0, seed=1)
    data, labels = subject_recording(spec, 2)
    valence = labels[:, 0]
    stim = _frontal_asymmetry(data, 384 + FS, data.shape[-1])
    base = _frontal_asymmetry(data, 0, 384)
    # Higher valence: less left-frontal alpha, so right-minus-left alpha rises.
    assert np.corrcoef(valence, stim)[0, 1] > 0.3
    assert abs(np.corrcoef(valence, base)[0, 1]) < 0.3
    none = subject_recording(SyntheticSpec(**{**spec.__dict__, "effect": 0.0}), 2)[0]
    assert abs(np.corrcoef(valence, _frontal_asymmetry(none, 384 + FS, none.shape[-1]))[0, 1]) < 0.3


def _band_power_lr(effect: float) -> list[float]:
    """Trial-disjoint (per subject, last 10 trials held out) band-power + LR balanced accuracy."""
    spec = SyntheticSpec(subjects=6, trials=40, samples=384 + 16 * FS, effect=effect, seed=2)
    feats, labels, test = [], [], []
    for subject in range(1, spec.subjects + 1):
        data, lab = subject_recording(spec, subject)
        x = data[:, :32, 384:]
        x = (x - x.mean(-1, keepdims=True)) / x.std(-1, keepdims=True)
        f, p = welch(x, fs=FS, nperseg=256, axis=-1)
        bands = [(4, 8), (8, 14), (14, 31), (31, 45)]
        de = np.stack([np.log(p[..., (f >= lo) & (f < hi)].mean(-1)) for lo, hi in bands], -1)
        de = de.reshape(len(x), -1)
        is_test = np.arange(40) >= 30
        # Centre on the subject's training trials, so the classifier cannot fall back on
        # recognising the subject and predicting its usual rating.
        feats.append(de - de[~is_test].mean(0))
        labels.append(lab[:, :2] > 5)
        test.append(is_test)
    x, y, is_test = np.concatenate(feats), np.concatenate(labels), np.concatenate(test)
    x = (x - x[~is_test].mean(0)) / x[~is_test].std(0)
    scores = []
    for target in range(2):
        clf = LogisticRegression(C=0.05, max_iter=2000).fit(x[~is_test], y[~is_test, target])
        scores.append(balanced_accuracy_score(y[is_test, target], clf.predict(x[is_test])))
    return scores


@pytest.mark.slow
def test_band_power_baseline_is_between_chance_and_perfect():
    default = _band_power_lr(effect=SyntheticSpec().effect)
    none = _band_power_lr(effect=0.0)
    assert all(0.6 < s < 0.95 for s in default), default
    assert all(s < 0.62 for s in none), none


# ------------------------------------------------------------ effects band power cannot see


def _with_and_without(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, SyntheticSpec]:
    """The stimulus part of one subject's EEG with a strong `kind` effect and with none (the
    same draws, so only the effect tells them apart), and the ratings. Subject 2 of seed 1
    responds normally (30 % of subjects respond weakly)."""
    spec = SyntheticSpec(1, 80, 384 + 8 * FS, seed=1, effect=2.0, effect_kind=kind)
    data, labels = subject_recording(spec, 2)
    none, _ = subject_recording(dataclasses.replace(spec, effect=0.0), 2)
    return data[:, :32, 384 + FS :], none[:, :32, 384 + FS :], labels, spec


def _band_power(x: np.ndarray) -> np.ndarray:
    """Mean power per trial, channel and band (trials, 32, 4)."""
    f, p = welch(x, fs=FS, nperseg=256, axis=-1)
    return np.stack([p[..., (f >= lo) & (f < hi)].mean(-1) for lo, hi in BANDS.values()], -1)


def _power_follows_rating(x: np.ndarray, none: np.ndarray, labels: np.ndarray) -> float:
    """The largest |correlation|, over channels, bands and both targets, between a rating and
    how much the effect changed that trial's band power. The paired change is free of the
    trial-to-trial gain noise, so even a small power effect shows. With no relation at all the
    largest of these 256 correlations over 80 trials is about 0.3."""
    change = np.log(_band_power(x) / _band_power(none)).reshape(len(x), -1)
    corr = [np.corrcoef(labels[:, target], col)[0, 1] for target in (0, 1) for col in change.T]
    return float(np.max(np.abs(corr)))


def _band_analytic(x: np.ndarray, band: str) -> np.ndarray:
    sos = butter(4, BANDS[band], btype="band", fs=FS, output="sos")
    return hilbert(sosfiltfilt(sos, x, axis=-1), axis=-1)


def _plv(x: np.ndarray, site: CouplingSite) -> np.ndarray:
    """Per trial, the phase locking value of the site's two channels in its band."""
    phase = np.angle(_band_analytic(x[:, list(site.channels)], site.band))
    return np.abs(np.exp(1j * (phase[:, 0] - phase[:, 1])).mean(-1))


def _high_minus_low(statistic: np.ndarray, rating: np.ndarray) -> float:
    """Mean of `statistic` over trials rated above 5 minus over the others, in units of its
    standard error."""
    high, low = statistic[rating > 5], statistic[rating <= 5]
    return float(
        (high.mean() - low.mean()) / np.sqrt(high.var() / high.size + low.var() / low.size)
    )


def test_coupling_changes_phase_locking_and_not_band_power():
    x, none, labels, spec = _with_and_without("coupling")
    sites = coupling_design(spec)
    coupled = [c for site in sites for c in site.channels]
    assert len(set(coupled)) == len(coupled) == 8 and {s.target for s in sites} == {0, 1}
    assert coupling_design(dataclasses.replace(spec, seed=2)) != sites  # drawn per seed
    # Each coupled pair's phase locking value follows its target, clearly (theta, with few
    # cycles per window, least) ...
    contrasts = [_high_minus_low(_plv(x, site), labels[:, site.target]) for site in sites]
    assert min(contrasts) > 2 and np.mean(contrasts) > 4, contrasts
    for site in sites:
        assert abs(_high_minus_low(_plv(none, site), labels[:, site.target])) < 2.5, site
    # ... while no channel's band power does (in-phase coupling, which the common average
    # reference turns into a power change, would reach 0.75 here).
    assert _power_follows_rating(x, none, labels) < 0.5
    assert _power_follows_rating(*_with_and_without("spectral")[:3]) > 0.6  # the check sees it


def test_temporal_changes_burstiness_and_not_mean_band_power():
    x, none, labels, spec = _with_and_without("temporal")
    sites = burst_design(spec)
    grouped = [c for site in sites for c in site.channels]
    assert len(set(grouped)) == len(grouped) and {s.target for s in sites} == {0, 1}
    for site in sites:
        for signal, bursty in ((x, True), (none, False)):
            envelope = np.abs(_band_analytic(signal[:, list(site.channels)], site.band))
            # Burstiness: the coefficient of variation of the band's envelope over time.
            variation = (envelope.std(-1) / envelope.mean(-1)).mean(1)
            contrast = _high_minus_low(variation, labels[:, site.target])
            assert contrast > 3 if bursty else abs(contrast) < 2.5, (site, bursty, contrast)
        # The mean power over the window stays the same (bursts losing 20 % power: 0.7).
        power = _band_power(x)[:, list(site.channels), list(BANDS).index(site.band)]
        ratio = power / _band_power(none)[:, list(site.channels), list(BANDS).index(site.band)]
        high = labels[:, site.target] > 5
        assert abs(np.log(ratio[high].mean() / ratio[~high].mean())) < 0.03
    assert _power_follows_rating(x, none, labels) < 0.5


def test_spectral_is_the_default_and_the_other_kinds_only_add(tmp_path, capsys):
    from eeg_emotion.cli import synthesize as cli

    assert cli.EFFECT_KINDS == EFFECT_KINDS
    base = ["--subjects", "2", "--trials", "2", "--seed", "3", "--workers", "1"]
    runs = {
        "default": [],
        "explicit": [
            "--effect-kind",
            "spectral",
            "--baseline-seconds",
            "3",
            "--seconds",
            "60",
            "60",
        ],
        "coupling": ["--effect-kind", "coupling"],
        "temporal": ["--effect-kind", "temporal"],
    }
    files = {}
    for name, extra in runs.items():
        assert cli.main(["--out", str(tmp_path / name), *base, *extra]) == 0
        files[name] = [(tmp_path / name / f"s0{i}.dat").read_bytes() for i in (1, 2)]
    assert files["explicit"] == files["default"]
    assert files["coupling"][0] != files["default"][0] != files["temporal"][0]
    with pytest.raises(ValueError, match="effect_kind"):
        SyntheticSpec(effect_kind="bursts")
    wrong = {
        "same length": ["--seconds", "10", "20"],
        "AMIGOS": ["--long-seconds", "100", "200"],
    }
    for problem, argv in wrong.items():
        with pytest.raises(SystemExit) as exit_:
            cli.main(["--out", str(tmp_path / "bad"), *argv])
        assert exit_.value.code == 2 and problem in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def _read_fif(tmp_path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """`launch/synthesize.py --format fif --effect-kind kind` read back by the project's
    reader: (trials, 32, samples) in DEAP's channel order past the 1 s ramp, and the
    (trials, 2) valence and arousal ratings."""
    from eeg_emotion.cli import synthesize as cli
    from eeg_emotion.data.readers import read_all

    out = tmp_path / kind
    argv = ["--format", "fif", "--out", str(out), "--subjects", "1", "--trials", "60"]
    argv += ["--seconds", "8", "8", "--effect", "2", "--seed", "1", "--effect-kind", kind]
    assert cli.main(argv) == 0
    (recording,) = read_all("mne", out)
    pick = [list(recording.channels).index(c) for c in EEG_CHANNELS]
    x = np.stack([t[pick, FS:] for t in recording.trials])
    ratings = np.column_stack([recording.targets.column(n) for n in ("valence", "arousal")])
    return x, ratings


def test_effect_kinds_reach_the_other_formats(tmp_path):
    """The coupling and temporal effects drive a non-DEAP format's files too, as read back by
    the reader: the coupled pairs' phase locking and the bursting sites' burstiness follow
    the ratings there, and not in the spectral files of the same draws."""
    x = {kind: _read_fif(tmp_path, kind) for kind in EFFECT_KINDS}
    spec = SyntheticSpec(seed=1)
    for kind in ("coupling", "spectral"):
        signal, ratings = x[kind]
        plv = [
            _high_minus_low(_plv(signal, s), ratings[:, s.target]) for s in coupling_design(spec)
        ]
        assert np.mean(plv) > 3 if kind == "coupling" else abs(np.mean(plv)) < 1.5, (kind, plv)
    for kind in ("temporal", "spectral"):
        signal, ratings = x[kind]
        contrasts = []
        for site in burst_design(spec):
            envelope = np.abs(_band_analytic(signal[:, list(site.channels)], site.band))
            variation = (envelope.std(-1) / envelope.mean(-1)).mean(1)
            contrasts.append(_high_minus_low(variation, ratings[:, site.target]))
        assert min(contrasts) > 2 if kind == "temporal" else max(map(abs, contrasts)) < 2.5, (
            kind,
            contrasts,
        )


@pytest.mark.parametrize("kind", EFFECT_KINDS)
def test_baseline_seconds_moves_the_onset_and_is_label_free(tmp_path, kind):
    from eeg_emotion.cli import synthesize as cli

    argv = ["--out", str(tmp_path), "--subjects", "1", "--trials", "40", "--workers", "1"]
    argv += ["--baseline-seconds", "5", "--seconds", "10", "10", "--effect-kind", kind]
    assert cli.main(argv) == 0
    with open(tmp_path / "s01.dat", "rb") as f:
        assert pickle.load(f, encoding="latin1")["data"].shape == (40, 40, 15 * FS)
    # The label effect starts after the 5 s baseline: with and without it, the EEG is the
    # same until then and differs after it (bar the band-pass filter's short reach, which
    # also wraps round from the trial's end into its first half second).
    spec = SyntheticSpec(1, 40, 15 * FS, effect_kind=kind, baseline_seconds=5, effect=2.0)
    with_effect = subject_recording(spec, 1)[0][:, :32]
    without = subject_recording(dataclasses.replace(spec, effect=0.0), 1)[0][:, :32]
    # Per sample, the largest change over channels (each kind has its own sites).
    change = ((with_effect - without).std(axis=0) / without.std()).max(axis=0)
    assert change[FS : 9 * FS // 2].max() < 0.005 and change[6 * FS :].mean() > 0.03, kind


def test_the_deap_writer_starts_the_effects_after_the_baseline_it_is_given(tmp_path):
    """write_synthetic's DEAP files and launch/synthesize.py's come from one writer: a 5 s
    baseline gives 15 s trials whose label effects start at 5 s, not at DEAP's usual 3 s."""
    from eeg_emotion.cli import synthesize as cli

    eeg = {}
    for effect in (2.0, 0.0):
        spec = FormatSpec(1, trials=12, seconds=(10, 10), baseline_seconds=5, effect=effect)
        (path,) = write_synthetic("deap", tmp_path / str(effect), spec)
        eeg[effect] = read_subject(path).data[:, :32]
    assert eeg[0.0].shape == (12, 32, 15 * FS)
    # Per sample, the largest change over channels; the band-pass filter reaches a little
    # before the onset (and wraps round into the first half second).
    change = ((eeg[2.0] - eeg[0.0]).std(axis=0) / eeg[0.0].std()).max(axis=0)
    assert change[FS : 9 * FS // 2].max() < 0.005 and change[6 * FS :].mean() > 0.03
    argv = ["--out", str(tmp_path / "cli"), "--subjects", "1", "--trials", "12", "--seed", "0"]
    argv += ["--seconds", "10", "10", "--baseline-seconds", "5", "--effect", "2", "--workers", "1"]
    assert cli.main(argv) == 0
    assert (tmp_path / "cli" / "s01.dat").read_bytes() == (
        tmp_path / "2.0" / "s01.dat"
    ).read_bytes()
