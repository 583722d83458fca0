"""How well the planted coupling and temporal effects can be read by a model told where they are:
the ceiling for bench/synthetic_benchmark.py's coupling and temporal rows.

    python bench/planted_ceiling.py [--work runs/cv-benchmark] [--data coupling temporal]
    python bench/planted_ceiling.py --small   # seconds: tiny data; prints JSON

Per trial, the statistic each planted site changes, from the generator's own design
(`synthetic.coupling_design`, `synthetic.burst_design`): for a coupled pair, the imaginary part
of its phase locking in its band; for a bursting neighbourhood, its band envelope's coefficient
of variation; each per 4 s window of the stimulus, averaged over the trial's windows. A logistic
regression on one target's sites, 5-fold CV over each subject's trials (stratified by subject),
pooled test trials: balanced accuracy with its bootstrap CI. No model in the benchmark is told
the sites or bands; this says what there is to find. Reads WORK/data/<data> (the benchmark's
files; written if missing), writes WORK/planted_ceiling.json.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import butter, hilbert, sosfiltfilt
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler

from eeg_emotion.data.readers.deap import RestrictedUnpickler
from eeg_emotion.data.synthetic import (
    BURST_BANDS,
    FS,
    SyntheticSpec,
    burst_design,
    coupling_design,
    synthesize,
)
from eeg_emotion.evaluation.metrics import balanced_accuracy, uncertainty

BANDS = {"theta": (4, 8), "alpha": (8, 14), "beta": (14, 31), "gamma": (31, 45)}
FULL = SyntheticSpec(subjects=8, trials=40, seed=0)  # bench/synthetic_benchmark.py's data
SMALL = SyntheticSpec(subjects=2, trials=10, samples=1664, seed=0)
WINDOW = 4 * FS
TARGETS = ("valence", "arousal")


def read(root: Path, spec: SyntheticSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stimulus EEG past the 1 s ramp (trials, 32, samples), ratings > 5 (trials, 2) and
    each trial's subject."""
    x, y, subjects = [], [], []
    for s in range(1, spec.subjects + 1):
        with (root / f"s{s:02d}.dat").open("rb") as f:
            d = RestrictedUnpickler(f, encoding="latin1").load()
        x.append(d["data"][:, :32, spec.onset + FS :].astype(np.float32))
        y.append(d["labels"][:, :2] > 5)
        subjects += [s] * len(d["labels"])
    return np.concatenate(x), np.concatenate(y).astype(np.int64), np.array(subjects)


def _analytic(x: np.ndarray, low: float, high: float) -> np.ndarray:
    sos = butter(4, [low, high], "band", fs=FS, output="sos")
    return np.asarray(hilbert(sosfiltfilt(sos, x, axis=-1), axis=-1))


def _windows(x: np.ndarray) -> np.ndarray:
    """(..., samples) -> (..., windows, WINDOW)."""
    n = x.shape[-1] // WINDOW
    return x[..., : n * WINDOW].reshape(*x.shape[:-1], n, WINDOW)


def site_features(kind: str, x: np.ndarray, spec: SyntheticSpec) -> dict[int, np.ndarray]:
    """Per target, (trials, sites) of the planted statistic."""
    out: dict[int, list[np.ndarray]] = {0: [], 1: []}
    if kind == "coupling":
        for pair in coupling_design(spec):
            a, b = (_analytic(x[:, c], *BANDS[pair.band]) for c in pair.channels)
            locking = _windows(np.exp(1j * (np.angle(a) - np.angle(b)))).mean(-1)
            out[pair.target].append(np.abs(locking.imag).mean(-1))
    elif kind == "temporal":
        for site in burst_design(spec):
            envelope = _windows(
                np.abs(_analytic(x[:, list(site.channels)], *BURST_BANDS[site.band]))
            )
            out[site.target].append((envelope.std(-1) / envelope.mean(-1)).mean((1, 2)))
    else:
        raise ValueError(f"no planted sites for {kind!r}: coupling or temporal")
    return {t: np.stack(v, 1) for t, v in out.items()}


def ceiling(kind: str, root: Path, spec: SyntheticSpec, folds: int) -> dict[str, Any]:
    """Pooled test balanced accuracy of a logistic regression on each target's planted sites."""
    x, y, subjects = read(root, spec)
    features = site_features(kind, x, spec)
    cv = StratifiedKFold(folds, shuffle=True, random_state=0)
    out: dict[str, Any] = {}
    for t, name in enumerate(TARGETS):
        pred = np.empty(len(y), np.int64)
        for train, test in cv.split(features[t], subjects):
            scale = StandardScaler().fit(features[t][train])
            model = LogisticRegression().fit(scale.transform(features[t][train]), y[train, t])
            pred[test] = model.predict(scale.transform(features[t][test]))
        u = uncertainty(y[:, t], pred, np.arange(len(y)), 2, 0, rows_are_trials=False)
        out[name] = {
            "balanced_accuracy": round(balanced_accuracy(y[:, t], pred, 2), 3),
            "ci95": [round(v, 3) for v in u["balanced_accuracy_ci95"]],
            "sites": int(features[t].shape[1]),
            "n": len(y),
        }
    return out


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--work", type=Path, default=Path("runs/cv-benchmark"))
    p.add_argument("--data", nargs="+", default=["coupling", "temporal"])
    p.add_argument("--small", action="store_true", help="seconds: tiny data")
    args = p.parse_args()
    spec, folds = (SMALL, 2) if args.small else (FULL, 5)
    result: dict[str, Any] = {"folds": folds}
    for kind in args.data:
        root = args.work / ("data-small" if args.small else "data") / kind
        kind_spec = replace(spec, effect=1.0, effect_kind=kind)
        if not (root / f"s{spec.subjects:02d}.dat").exists():
            synthesize(root, kind_spec, workers=2, overwrite=True)
        result[kind] = ceiling(kind, root, kind_spec, folds)
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "planted_ceiling.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
