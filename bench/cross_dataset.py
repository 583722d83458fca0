"""Does a model trained on one dataset hold on another? Synthetic DEAP -> synthetic DREAMER and
back, band-power + LR and the LLM, each cross-dataset score paired with the within-dataset one.

    python bench/cross_dataset.py                 # 8 subjects x 20 trials per dataset; the table
    python bench/cross_dataset.py --small         # a tiny smoke run (configs/tiny.yaml); JSON
    python bench/cross_dataset.py --models lr     # band-power + LR only

Both datasets come from the same generator with the same planted effect (synthetic_formats:
the same physiology, DEAP's 32 channels or DREAMER's 14 Emotiv ones, ratings on 1..9 or 1..5).
For each direction A -> B and model: the model trained on A (its trial split) scores every
trial of B as `evaluate RUN --data` reads it (a DEAP-trained model on DREAMER reads its 14
channels and gets DEAP's other 18 interpolated; a DREAMER-trained one picks its 14 from DEAP's
32; ratings thresholded on each source's scale), and on B's test trials it is paired with
the model of the same kind trained on B (`compare.paired`: McNemar and a bootstrap CI of the
balanced-accuracy difference, per trial). Written to OUT/results.json after every row, so a
run stopped part way keeps what finished.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("deap", "dreamer")
MODELS = ("lr", "llm")
# (subjects, trials, seconds) of each synthetic dataset, and the run settings.
SIZES = {"small": (3, 8, 10.0), "full": (8, 20, 60.0)}
CONFIGS = {
    "small": ("tiny.yaml", []),
    # The demo's settings in fp32: bf16 is emulated (slow) on CPUs without AVX512-BF16.
    "full": ("demo.yaml", ["model.precision=fp32"]),
}


def write_data(out: Path, size: str) -> dict[str, Path]:
    from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic

    subjects, trials, seconds = SIZES[size]
    roots = {}
    for source in SOURCES:
        root = out / "data" / source
        if not root.exists():
            spec = FormatSpec(subjects, 1, trials, (seconds, seconds), baseline_seconds=3.0)
            write_synthetic(source, root, spec)
        roots[source] = root
    return roots


def overrides(size: str, source: str, roots: dict[str, Path], out: Path, name: str) -> list[str]:
    _, extra = CONFIGS[size]
    if source == "dreamer":  # a config's DEAP threshold (demo.yaml's 5) is DREAMER's 3
        extra = [*extra, "data.labels.threshold=3", "data.labels.cuts=[2.33, 3.67]"]
    return [
        f"data.source={source}",
        f"data.root={roots[source]}",
        f"data.cache_dir={out / 'cache'}",
        f"output_dir={out / 'runs' / name}",
        *extra,
    ]


def config(size: str) -> str:
    return str(ROOT / "configs" / CONFIGS[size][0])


def trials_of(probs: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> dict[tuple, tuple]:
    """Per trial (subject, key): its predicted classes and labels (mean window probability)."""
    from eeg_emotion.evaluation.metrics import trial_level

    t_probs, t_labels, keys = trial_level(probs, labels, rows)
    return {
        (int(k[0]), int(k[1])): (p, y)
        for k, p, y in zip(keys, t_probs.argmax(-1), t_labels, strict=True)
    }


def llm(size: str, source: str, other: str, roots: dict[str, Path], out: Path) -> tuple:
    """The LLM trained on `source`: its test trials, and every trial of `other`."""
    from eeg_emotion.cli import train
    from eeg_emotion.evaluation.cross_dataset import predict_other
    from eeg_emotion.evaluation.scoring import Predictions

    run_dir = out / "runs" / f"{source}-llm"
    if not (run_dir / "best" / "classifier.json").exists():
        code = train.main(
            ["--config", config(size), *overrides(size, source, roots, out, f"{source}-llm")]
        )
        if code != 0:
            raise SystemExit(f"training on {source} failed (exit {code}): {run_dir}/train.log")
    own = Predictions.load(run_dir / "predictions_test.npz")
    cross, _ = predict_other(run_dir, [f"source={other}", f"root={roots[other]}"])
    p = cross.pred
    return trials_of(own.probs, own.labels, own.rows), trials_of(p.probs, p.labels, p.rows)


def lr(size: str, source: str, other: str, roots: dict[str, Path], out: Path) -> tuple:
    """Band-power + LR fitted on `source`'s training split (C chosen on val): its test trials,
    and every trial of `other` (read as `evaluate --data` reads it)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from eeg_emotion.baselines import band_power_lr
    from eeg_emotion.config import load_settings
    from eeg_emotion.data import montage, pipeline
    from eeg_emotion.data.labels import discretize
    from eeg_emotion.data.readers import make_reader
    from eeg_emotion.data.splits import trial_key
    from eeg_emotion.data.tokenize import BandPowerTokenizer
    from eeg_emotion.evaluation.cross_dataset import other_settings

    names = overrides(size, source, roots, out, f"{source}-lr")
    settings = load_settings(config(size), [*names, "baseline.name=band_power_lr"])
    data = pipeline.build(settings.data, progress=False)
    probs, info = band_power_lr.fit(settings, data)
    test = data.indices("test")
    y = np.asarray(data.labels).astype(np.int64)
    own = trials_of(probs[test], y[test], data.rows[test])
    x = band_power_lr.band_power_features(settings, data)
    train = data.indices("train")
    scaler = StandardScaler().fit(x[train])
    weight = "balanced" if settings.baseline.class_weights == "balanced" else None
    models = [
        LogisticRegression(C=info["C"], max_iter=5000, class_weight=weight).fit(
            scaler.transform(x[train]), y[train, i]
        )
        for i in range(len(data.targets))
    ]
    target = other_settings(settings.data, [f"source={other}", f"root={roots[other]}"])
    pre = data.preprocessor
    tok = BandPowerTokenizer(settings.data, pre.num_channels, pre.window)
    reader = make_reader(other, target.reader_options())
    parts = []
    for ref in reader.find(target.root):
        rec = reader.read(ref)
        fitted = montage.match(pre.channels or (), rec.channels, patch=False, where=rec.path)
        trials = pre.prepare(montage.complete(rec, fitted))
        feats = pre.features(trials, None, tokenizer=tok)
        xs = scaler.transform(feats.mean(axis=1).reshape(len(feats), -1))
        p = np.zeros((len(xs), len(models), data.num_classes), np.float32)
        for i, clf in enumerate(models):
            p[:, i][:, clf.classes_] = clf.predict_proba(xs)
        counts = pre.window_counts(trials)
        labels = discretize(rec.targets.values, target.labels, rec.targets.names)
        keys = [trial_key(rec, i) for i in range(len(rec.trials))]
        windows = np.concatenate([np.arange(c) for c in counts])
        rows = np.stack([np.full(len(windows), rec.subject), np.repeat(keys, counts), windows], 1)
        parts.append((p, np.repeat(labels, counts, 0), rows))
    cross = [np.concatenate(a) for a in zip(*parts, strict=True)]
    return own, trials_of(*cross)


def compare(
    within: dict, cross: dict, targets: list[str], num_classes: int, a: str, b: str
) -> list[dict]:
    """Per target: the within-dataset model (trained on b) and the cross-dataset one (trained
    on a) on b's test trials, paired; and the cross-dataset score on every trial of b."""
    from eeg_emotion.evaluation.compare import paired, verdict
    from eeg_emotion.evaluation.metrics import balanced_accuracy

    keys = sorted(within)
    out = []
    for i, target in enumerate(targets):
        truth = np.array([within[k][1][i] for k in keys])
        mine = np.array([within[k][0][i] for k in keys])
        theirs = np.array([cross[k][0][i] for k in keys])
        assert (truth == np.array([cross[k][1][i] for k in keys])).all(), "labels disagree"
        result = paired(truth, theirs, mine, num_classes=num_classes, seed=0)
        every_y = np.array([v[1][i] for v in cross.values()])
        every_p = np.array([v[0][i] for v in cross.values()])
        out.append(
            {
                "target": target,
                "test_trials": len(keys),
                "within": round(result["balanced_accuracy_b"], 3),
                "cross_on_test": round(result["balanced_accuracy_a"], 3),
                "cross_on_all": round(balanced_accuracy(every_y, every_p, num_classes), 3),
                "all_trials": len(cross),
                "difference_ci95": [
                    round(v, 3) for v in result["balanced_accuracy_difference_ci95"]
                ],
                "p_mcnemar": round(result["p_value_mcnemar"], 4),
                "verdict": verdict(result, f"{a}->{b}", f"{b}->{b}"),
            }
        )
    return out


def table(rows: list[dict]) -> str:
    lines = [
        "| trained -> tested | model | target | within (test trials) | cross (same trials) | "
        "cross (every trial) | paired verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['trained_on']} -> {r['tested_on']} | {r['model']} | {r['target']} | "
            f"{r['within']:.3f} ({r['test_trials']}) | {r['cross_on_test']:.3f} | "
            f"{r['cross_on_all']:.3f} ({r['all_trials']}) | {r['verdict']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--small", action="store_true", help="tiny data and configs/tiny.yaml")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument(
        "--out", type=Path, default=None, help="default: bench-out/cross-dataset[-small]"
    )
    args = p.parse_args(argv)
    size = "small" if args.small else "full"
    out = args.out or ROOT / "bench-out" / f"cross-dataset{'-small' if args.small else ''}"
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    roots = write_data(out, size)
    from eeg_emotion.config import load_settings

    labels = load_settings(config(size)).data.labels
    got = {}  # (model, source) -> (its own test trials, every trial of the other)
    rows: list[dict] = []
    for model in args.models:
        for source, other in zip(SOURCES, SOURCES[::-1], strict=True):
            run = llm if model == "llm" else lr
            got[model, source] = run(size, source, other, roots, out)
        for a, b in zip(SOURCES, SOURCES[::-1], strict=True):
            within, cross = got[model, b][0], got[model, a][1]
            for r in compare(within, cross, labels.targets, labels.num_classes, a, b):
                rows.append({"trained_on": a, "tested_on": b, "model": model, **r})
            result = {"size": size, "rows": rows, "seconds": round(time.perf_counter() - start)}
            (out / "results.json").write_text(json.dumps(result, indent=1))
    print(table(rows))
    result = {"size": size, "rows": rows, "seconds": round(time.perf_counter() - start)}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
