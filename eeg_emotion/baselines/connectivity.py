"""Connectivity + sparse logistic regression, told no site, pair or band of interest.

Per window and band (`baseline.connectivity.bands`) of the normalized signal windows: every
channel pair's zero-lag correlation and imaginary coherence, and every channel's log-envelope
spread (32 channels x 5 bands: 5,120 features). Standardized with training statistics, one
L1-penalized logistic regression per target; its inverse strength C is chosen per target by
cross-validation within the training rows, folds grouped by trial (no trial in both inner train
and inner val), then refitted on every training row. Val and test are only scored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.signal import butter, hilbert, sosfiltfilt
from sklearn.base import ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from eeg_emotion.baselines.recordings import recordings
from eeg_emotion.config import Settings
from eeg_emotion.data import pipeline
from eeg_emotion.errors import ConfigError, DataError

# A zero-phase Butterworth band-pass (4th order each way): stable on windows shorter than an FIR
# filter for the lowest band would be, and applied to every channel of every window at once.
ORDER = 4
TINY = 1e-12  # keeps log and division finite on a flat channel
TOP = 10  # features named in the results, by weight


def check_settings(settings: Settings) -> None:
    """Refuse, before any data is read, bands the sampling rate cannot hold."""
    bands = settings.baseline.connectivity.bands
    nyquist = settings.data.sampling_rate / 2
    if not bands:
        raise ConfigError("baseline.connectivity.bands is empty: give at least one band")
    for name, (low, high) in bands.items():
        if not low < high < nyquist:
            raise ConfigError(
                f"baseline.connectivity.bands.{name}=({low:g}, {high:g}) Hz: needs low < high < "
                f"{nyquist:g} Hz (half of data.sampling_rate={settings.data.sampling_rate})"
            )


def window_features(
    windows: np.ndarray, fs: float, bands: dict[str, tuple[float, float]]
) -> np.ndarray:
    """(rows, features) float32 from (rows, channels, samples) windows: per band, the channel
    pairs' zero-lag correlations, their imaginary coherences, then each channel's log-envelope
    spread (pairs in `np.triu_indices` order)."""
    _, channels, samples = windows.shape
    a, b = np.triu_indices(channels, 1)
    x = windows.astype(np.float64)
    out = []
    for low, high in bands.values():
        sos = (
            butter(ORDER, (low, high), btype="bandpass", fs=fs, output="sos")
            if low > 0
            else butter(ORDER, high, btype="lowpass", fs=fs, output="sos")
        )
        filtered = sosfiltfilt(sos, x, axis=-1)
        analytic = hilbert(filtered, axis=-1)
        centred = filtered - filtered.mean(-1, keepdims=True)
        # einsum, not batched matmul: many small products, where BLAS threads only contend.
        cov = np.einsum("rct,rdt->rcd", centred, centred)
        sd = np.sqrt(np.einsum("rcc->rc", cov)) + TINY
        corr = cov / (sd[:, :, None] * sd[:, None, :])
        # Coherency from the analytic signals: a zero-lag (volume-conducted) mixture has none
        # of the imaginary part, only a lagged coupling does.
        # Im(x conj y) = Im x Re y - Re x Im y, and Re x is the filtered signal.
        lagged = np.einsum("rct,rdt->rcd", analytic.imag, filtered)
        amplitude = np.sqrt((np.abs(analytic) ** 2).mean(-1)) + TINY
        icoh = (lagged - lagged.transpose(0, 2, 1)) / samples
        icoh /= amplitude[:, :, None] * amplitude[:, None, :]
        spread = np.log(np.abs(analytic) + TINY).std(-1)
        out += [corr[:, a, b], icoh[:, a, b], spread]
    return np.nan_to_num(np.concatenate(out, axis=1)).astype(np.float32)


def connectivity_features(settings: Settings, data: pipeline.TokenData) -> np.ndarray:
    """(rows, features) for every row of the dataset, in its row order: the windows EEGNet
    reads (normalized as the pipeline normalizes), one recording at a time."""
    pre = data.preprocessor
    fs = float(settings.data.sampling_rate)
    bands = settings.baseline.connectivity.bands
    return np.concatenate(
        [
            window_features(pre.signal(x, subject), fs, bands)
            for subject, x in recordings(settings, data)
        ]
    )


def feature_names(channels: Sequence[str], bands: Sequence[str]) -> list[str]:
    """A name per feature, in `window_features` order: "alpha icoh F3-P4", "alpha spread F3"."""
    a, b = np.triu_indices(len(channels), 1)
    pairs = [f"{channels[i]}-{channels[j]}" for i, j in zip(a.tolist(), b.tolist(), strict=True)]
    return [
        name
        for band in bands
        for name in (
            *(f"{band} corr {p}" for p in pairs),
            *(f"{band} icoh {p}" for p in pairs),
            *(f"{band} spread {c}" for c in channels),
        )
    ]


def trial_groups(rows: np.ndarray) -> np.ndarray:
    """One group id per row: its (subject, trial)."""
    return np.unique(np.asarray(rows)[:, :2], axis=0, return_inverse=True)[1].ravel()


def model(c: float, n_classes: int, class_weight: str | None, seed: int) -> Pipeline:
    """Standardization (fitted on the rows it is trained on) + L1 logistic regression."""
    lr = LogisticRegression(
        C=c,
        l1_ratio=1.0,
        solver="liblinear",
        max_iter=5000,
        class_weight=class_weight,
        random_state=seed,  # liblinear shuffles its coordinates
    )
    clf: ClassifierMixin = lr if n_classes <= 2 else OneVsRestClassifier(lr)
    return make_pipeline(StandardScaler(), clf)


def fit_predict(
    c: float,
    x_fit: np.ndarray,
    y_fit: np.ndarray,
    x: np.ndarray,
    n_classes: int,
    class_weight: str | None,
    seed: int,
) -> tuple[np.ndarray, Pipeline | None]:
    """(rows, n_classes) probabilities of `x` from a model fitted on x_fit, y_fit; rows of one
    class only give that class (a fold can hold one)."""
    probs = np.zeros((len(x), n_classes), np.float32)
    if len(np.unique(y_fit)) < 2:
        probs[:, y_fit[0]] = 1.0
        return probs, None
    fitted = model(c, n_classes, class_weight, seed).fit(x_fit, y_fit)
    probs[:, fitted.classes_] = fitted.predict_proba(x)
    return probs, fitted


def inner_splits(
    y: np.ndarray, groups: np.ndarray, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit rows, held-out rows) per inner fold: whole trials held out (a trial's windows
    overlap and share its state, so splitting one would leak), classes kept in proportion."""
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros((len(y), 1)), y, groups))


def inner_scores(
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    c_grid: list[float],
    folds: int,
    n_classes: int,
    class_weight: str | None,
    seed: int,
) -> dict[float, float]:
    """Per C: the balanced accuracy of the out-of-fold predictions over the training rows,
    folds grouped by trial and stratified by class."""
    splits = inner_splits(y, groups, folds, seed)
    scores = {}
    for c in c_grid:
        predicted = np.zeros(len(y), np.int64)
        for fit_rows, held in splits:
            probs, _ = fit_predict(
                c, x[fit_rows], y[fit_rows], x[held], n_classes, class_weight, seed
            )
            predicted[held] = probs.argmax(-1)
        scores[c] = float(balanced_accuracy_score(y, predicted))
    return scores


def fit(settings: Settings, data: pipeline.TokenData) -> tuple[np.ndarray, dict]:
    """Probabilities (rows, targets, classes) for every row, and what was chosen."""
    b = settings.baseline
    cfg = b.connectivity
    train = data.indices("train")
    groups = trial_groups(data.rows)[train]
    if len(np.unique(groups)) < cfg.inner_folds:
        raise DataError(
            settings.data.root,
            f"the training part holds {len(np.unique(groups))} trials, fewer than "
            f"baseline.connectivity.inner_folds={cfg.inner_folds}: C cannot be chosen by "
            "cross-validation over trials",
        )
    x = connectivity_features(settings, data)
    y = np.asarray(data.labels).astype(np.int64)
    n_classes = data.num_classes
    weight = "balanced" if b.class_weights == "balanced" else None
    probs = np.zeros((len(x), len(data.targets), n_classes), np.float32)
    chosen: dict[str, float] = {}
    per_c: dict[str, dict[str, float]] = {}
    nonzero: dict[str, int] = {}
    top: dict[str, list[str]] = {}
    names = feature_names(data.preprocessor.channels or (), list(cfg.bands))
    for i, target in enumerate(data.targets):
        scores = inner_scores(
            x[train],
            y[train, i],
            groups,
            cfg.c_grid,
            cfg.inner_folds,
            n_classes,
            weight,
            settings.seed,
        )
        # Ties go to the smaller C: the sparser model.
        best = max(sorted(scores), key=scores.__getitem__)
        chosen[target] = best
        per_c[target] = {str(c): round(s, 4) for c, s in scores.items()}
        probs[:, i], fitted = fit_predict(
            best, x[train], y[train, i], x, n_classes, weight, settings.seed
        )
        weights = np.zeros(x.shape[1]) if fitted is None else _weights(fitted)
        nonzero[target] = int((weights > 0).sum())
        order = np.argsort(-weights, kind="stable")[: min(TOP, nonzero[target])]
        top[target] = [names[k] for k in order]
    info = {
        "C": chosen,
        "inner_cv_balanced_accuracy_per_C": per_c,
        "inner_folds": cfg.inner_folds,
        "features": x.shape[1],
        "nonzero_features": nonzero,
        "top_features": top,
    }
    return probs, info


def _weights(fitted: Pipeline) -> np.ndarray:
    """Per feature, its largest absolute weight over the classes (on standardized features)."""
    clf = fitted[-1]
    estimators = clf.estimators_ if isinstance(clf, OneVsRestClassifier) else [clf]
    return np.max([np.abs(e.coef_).max(0) for e in estimators], axis=0)
