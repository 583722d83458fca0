"""Synthetic DEAP is deterministic, DEAP-shaped, and carries physiological label effects."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import welch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

from eeg_emotion.data.channels import EEG_CHANNELS
from eeg_emotion.data.synthetic import SyntheticSpec, subject_recording, synthesize

FS = 128


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
