"""Band-power + logistic regression: differential entropy per band and channel (the band_power
tokenizer's continuous features, averaged over a window's sub-windows), standardized on the
training rows, one logistic regression per target, the inverse regularization strength C chosen
on val. Its coefficients per channel and band (`Importance`) are what its scalp maps show.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from eeg_emotion.baselines.recordings import recordings
from eeg_emotion.config import Settings
from eeg_emotion.data import pipeline
from eeg_emotion.data.tokenize import BandPowerTokenizer
from eeg_emotion.evaluation.metrics import split_metrics
from eeg_emotion.evaluation.scalp_maps import Importance
from eeg_emotion.evaluation.scoring import Majorities


def band_power_features(settings: Settings, data: pipeline.TokenData) -> np.ndarray:
    """(rows, channels * bands) differential entropy, normalized like the tokens."""
    pre = data.preprocessor
    tok = BandPowerTokenizer(settings.data, pre.num_channels, pre.window)
    out = []
    for subject, x in recordings(settings, data):
        de = pre.features(x, subject, tokenizer=tok)  # (n, n_sub, ch, bands)
        out.append(de.mean(axis=1).reshape(len(de), -1))
    return np.concatenate(out)


def fit(settings: Settings, data: pipeline.TokenData) -> tuple[np.ndarray, dict]:
    """Probabilities (rows, targets, classes) for every row, and what was chosen."""
    probs, info, _ = fit_with_importance(settings, data)
    return probs, info


def fit_with_importance(
    settings: Settings, data: pipeline.TokenData
) -> tuple[np.ndarray, dict, Importance]:
    """`fit`, and the chosen models' coefficients per channel and band."""
    b = settings.baseline
    x = band_power_features(settings, data)
    y = np.asarray(data.labels).astype(np.int64)
    train, val = data.indices("train"), data.indices("val")
    scaler = StandardScaler().fit(x[train])  # training rows only
    xs = scaler.transform(x)
    n_classes = data.num_classes
    majority = Majorities.of(data).overall
    weight = "balanced" if b.class_weights == "balanced" else None
    best: tuple[float, float, np.ndarray, list[np.ndarray]] | None = None
    scores = {}
    for c in b.c_grid:
        probs = np.zeros((len(x), len(data.targets), n_classes), np.float32)
        coefficients = []
        for i in range(len(data.targets)):
            clf = LogisticRegression(C=c, max_iter=5000, class_weight=weight)
            clf.fit(xs[train], y[train, i])
            probs[:, i][:, clf.classes_] = clf.predict_proba(xs)
            # Towards the highest class: binary models have one row; multinomial ones the
            # highest class's row against the lowest's.
            coef = clf.coef_
            coefficients.append(coef[0] if len(coef) == 1 else coef[-1] - coef[0])
        val_score = (
            split_metrics(y[val], probs[val].argmax(-1), data.targets, n_classes, majority)[
                "mean_balanced_accuracy"
            ]
            if len(val)
            else 0.0
        )
        scores[str(c)] = round(val_score, 4)
        if best is None or val_score > best[1]:
            best = (c, val_score, probs, coefficients)
    assert best is not None
    info = {"C": best[0], "val_mean_balanced_accuracy_per_C": scores, "features": x.shape[1]}
    return best[2], info, coefficient_map(settings, data, best[3])


def coefficient_map(
    settings: Settings, data: pipeline.TokenData, coefficients: list[np.ndarray]
) -> Importance:
    """Each target's coefficients (on standardized features) as (channels, bands)."""
    channels = list(data.preprocessor.channels or ())
    bands = list(settings.data.tokenizer.bands)
    return Importance(
        method="LR coefficient (standardized)",
        channels=channels,
        bands=bands,
        values={
            t: np.asarray(coef).reshape(len(channels), len(bands)).round(5).tolist()
            for t, coef in zip(data.targets, coefficients, strict=True)
        },
    )
