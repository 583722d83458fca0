"""How hard is synthetic DEAP? Band-power + logistic regression at several effect strengths.

    python bench/synthetic_difficulty.py [--subjects 8] [--effects 0 0.4 1 2]
    python bench/synthetic_difficulty.py --small   # seconds: 2 subjects, effects 0 and 2

Uses the project's own pipeline (trial-disjoint `trial` split, training-only statistics) and the
band_power tokenizer's continuous differential-entropy features averaged over each window's
sub-windows; one logistic regression pooled over subjects per target. Prints one JSON object:
window-level and trial-level (mean probability over a trial's windows) balanced accuracy on
test, next to the majority baseline of the same split.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.preprocessing import StandardScaler

from eeg_emotion.baselines.band_power_lr import band_power_features
from eeg_emotion.config import load_settings
from eeg_emotion.data import pipeline
from eeg_emotion.data.synthetic import SyntheticSpec, synthesize

ROOT = Path(__file__).resolve().parents[1]


def evaluate(effect: float, subjects: int, work: Path) -> dict:
    root = work / f"effect-{effect}"
    synthesize(root, SyntheticSpec(subjects=subjects, effect=effect, seed=1), workers=2)
    settings = load_settings(
        ROOT / "configs" / "demo.yaml", [f"data.root={root}", f"data.cache_dir={work / 'cache'}"]
    )
    data = pipeline.build(settings.data, progress=False)
    x, y = band_power_features(settings, data), np.asarray(data.labels)
    part = np.asarray(data.part)
    train, test = part == 0, part == 2
    trials = data.rows[:, 0].astype(np.int64) * 1000 + data.rows[:, 1]
    result = {}
    for i, target in enumerate(data.targets):
        scaler = StandardScaler().fit(x[train])
        clf = LogisticRegression(C=0.1, max_iter=3000).fit(scaler.transform(x[train]), y[train, i])
        prob = clf.predict_proba(scaler.transform(x[test]))[:, 1]
        window_bacc = balanced_accuracy_score(y[test, i], prob > 0.5)
        ids, inverse = np.unique(trials[test], return_inverse=True)
        trial_prob = np.bincount(inverse, prob) / np.bincount(inverse)
        trial_y = np.zeros(len(ids), int)
        trial_y[inverse] = y[test, i]
        majority = np.bincount(y[train, i]).argmax()
        result[target] = {
            "window_balanced_accuracy": round(float(window_bacc), 3),
            "trial_balanced_accuracy": round(
                float(balanced_accuracy_score(trial_y, trial_prob > 0.5)), 3
            ),
            "majority_accuracy": round(float((y[test, i] == majority).mean()), 3),
            "majority_balanced_accuracy": 0.5,
            "test_trials": len(ids),
        }
    return result


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--subjects", type=int, default=8)
    p.add_argument("--effects", type=float, nargs="+", default=[0.0, 0.4, 1.0, 2.0])
    p.add_argument("--small", action="store_true", help="seconds: 2 subjects, effects 0 and 2")
    args = p.parse_args()
    if args.small:
        args.subjects, args.effects = 2, [0.0, 2.0]
    with tempfile.TemporaryDirectory() as tmp:
        report = {f"effect={e:g}": evaluate(e, args.subjects, Path(tmp)) for e in args.effects}
    print(json.dumps({"subjects": args.subjects, "split": "trial", **report}, indent=1))


if __name__ == "__main__":
    main()
