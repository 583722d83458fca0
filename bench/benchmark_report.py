"""What bench/synthetic_benchmark.py reads back from its finished CV groups (pooled test trials,
windows per trial, seed spreads and ensembles, the no-EEG rows), its paired verdicts with their
Holm correction, and the markdown table it prints."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from eeg_emotion.evaluation import compare
from eeg_emotion.evaluation.metrics import (
    balanced_accuracy,
    majority_classes,
    subject_majorities,
    trial_level,
    uncertainty,
)
from eeg_emotion.evaluation.scoring import Predictions

SUBJECT, MAJORITY = "subject majority (no EEG)", "majority"
SEED0, ENSEMBLE = "seed 0", "seed ensemble"


def trial_probs(group: Path) -> tuple[np.ndarray, np.ndarray]:
    """A CV group's pooled test trials: keys (m, 2) and mean window probabilities (m, targets,
    classes), in `compare.load_trials`' order (by subject and trial, each tested once)."""
    from eeg_emotion.evaluation import cv

    keys, probs = [], []
    for fold in cv.read_group(group).folds:
        pred = Predictions.load(group / fold / "predictions_test.npz")
        p, _, k = trial_level(pred.probs, pred.labels, pred.rows)
        keys.append(k)
        probs.append(p)
    all_keys = np.concatenate(keys).astype(np.int64)
    order = np.lexsort((all_keys[:, 1], all_keys[:, 0]))
    return all_keys[order], np.concatenate(probs)[order]


def windows_per_trial(group: Path) -> list[int]:
    """The fewest and most test windows any trial of the group was scored on."""
    from eeg_emotion.evaluation import cv

    counts: list[np.ndarray] = []
    for fold in cv.read_group(group).folds:
        rows = Predictions.load(group / fold / "predictions_test.npz").rows
        counts.append(np.unique(rows[:, :2], axis=0, return_counts=True)[1])
    every = np.concatenate(counts)
    return [int(every.min()), int(every.max())]


def ensemble(groups: list[Path]) -> compare.Trials:
    """The seeds' mean trial probabilities, argmax: one prediction per trial."""
    base = compare.load_trials(groups[0])
    total = None
    for group in groups:
        keys, probs = trial_probs(group)
        if not np.array_equal(keys, base.keys):
            raise SystemExit(f"{group} tested other trials than {groups[0]}: no seed ensemble")
        total = probs if total is None else total + probs
    assert total is not None
    return replace(base, preds=(total / len(groups)).argmax(-1))


def trial_entry(trials: compare.Trials) -> dict:
    """Per target over all folds' test trials: balanced accuracy with its bootstrap CI and
    permutation p-value against chance."""
    out: dict = {"trials": {}}
    for j, target in enumerate(trials.targets):
        y, pred = trials.labels[:, j], trials.preds[:, j]
        u = uncertainty(y, pred, np.arange(len(y)), trials.num_classes, 0, rows_are_trials=False)
        out["trials"][target] = {
            "balanced_accuracy": round(balanced_accuracy(y, pred, trials.num_classes), 3),
            "ci95": [round(v, 3) for v in u["balanced_accuracy_ci95"]],
            "p_vs_chance": u["p_value_balanced_accuracy_vs_chance"],
            "n": len(y),
        }
    return out


def val_entry(group: Path) -> dict:
    """{"val": per target over every fold's val trials (a trial in the val part of several folds
    once per fold): balanced accuracy, bootstrap CI, permutation p}; {} for a group without val
    predictions."""
    from eeg_emotion.errors import DataError

    try:
        return {"val": trial_entry(compare.load_trials(group, "val"))["trials"]}
    except DataError:
        return {}


def no_eeg(group: Path, own: bool) -> compare.Trials:
    """A CV group's pooled test trials predicted without EEG: each fold's training majority
    class (`own`: each subject's own among its training trials, the fold's where it has none),
    with the scoring code's majority rule (`metrics.majority_classes`)."""
    trials = compare.load_trials(group)
    label = {tuple(k): y for k, y in zip(trials.keys.tolist(), trials.labels, strict=True)}
    preds = np.empty_like(trials.preds)
    for fold in trials.folds:
        train = json.loads((group / fold / "splits.json").read_text())["train"]
        y = np.array([label[tuple(k)] for k in train])  # every trial is tested in some fold
        overall = majority_classes(y, trials.num_classes)
        per = subject_majorities(y, np.array([k[0] for k in train]), trials.num_classes)
        for i in np.flatnonzero(trials.fold == fold):
            preds[i] = per.get(int(trials.keys[i, 0]), overall) if own else overall
    return replace(trials, model=SUBJECT if own else MAJORITY, preds=preds)


def seed_spread(groups: list[Path]) -> dict:
    """Each seed's pooled trial balanced accuracy per target, with their mean and sd."""
    out = {}
    per = [compare.load_trials(g) for g in groups]
    for j, target in enumerate(per[0].targets):
        values = [balanced_accuracy(t.labels[:, j], t.preds[:, j], t.num_classes) for t in per]
        out[target] = {
            "per_seed": [round(v, 3) for v in values],
            "mean": round(float(np.mean(values)), 3),
            "sd": round(float(np.std(values, ddof=1)), 3) if len(values) > 1 else 0.0,
        }
    return out


def holm(ps: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the given order."""
    order = np.argsort(ps, kind="stable")
    adjusted = np.empty(len(ps))
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        adjusted[i] = running
    return adjusted.tolist()


def _verdict(a: str, b: str, target: str, pair: dict, variant: str) -> dict:
    return {
        "a": a, "b": b, "target": target, "variant": variant,
        "difference": round(pair["balanced_accuracy_difference"], 3),
        "ci95": [round(v, 3) for v in pair["balanced_accuracy_difference_ci95"]],
        "p_mcnemar": pair["p_value_mcnemar"],
        "verdict": compare.verdict(pair, a, b),
        "a_better": pair["only_a_correct"] > pair["only_b_correct"],
    }  # fmt: skip


def paired_verdicts(
    a: compare.Trials, b: compare.Trials, names: tuple[str, str], variant: str
) -> list[dict]:
    compare.check_same_trials([a, b])
    out = []
    for j, target in enumerate(a.targets):
        pair = compare.paired(
            a.labels[:, j], a.preds[:, j], b.preds[:, j], num_classes=a.num_classes
        )
        out.append(_verdict(*names, target, pair, variant))
    return out


def markdown(results: dict) -> str:
    budget = results["budget_settings"]
    lines = [
        f"{results['protocol']}, {results['folds']} folds, every trial tested once; "
        f"seeds of the seeded rows: {results['seeds']}; budget: "
        + (", ".join(budget) if budget else "the configs as they are"),
        "",
        "| data | model | valence bal. acc. [95% CI] | arousal bal. acc. [95% CI] "
        "| p vs chance (val. / ar.) | windows/trial | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in results["data"].items():
        for label in (MAJORITY, SUBJECT):
            if label in entry:
                t = entry[label]["trials"]
                lines.append(f"| {name} | {label} | {_cells(t)} | {_ps(t)} | | |")
        for label, m in entry["rows"].items():
            t = m["trials"]
            windows = "-".join(str(w) for w in sorted(set(m["windows_per_trial"])))
            seconds = "" if m["seconds"] is None else m["seconds"]
            lines.append(f"| {name} | {label} | {_cells(t)} | {_ps(t)} | {windows} | {seconds} |")
            if "seeds" in m:
                spread = " | ".join(
                    f"{s['mean']:.3f} ± {s['sd']:.3f} ("
                    + ", ".join(f"{v:.3f}" for v in s["per_seed"])
                    + ")"
                    for s in m["seeds"].values()
                )
                lines.append(f"| {name} | {label}: {len(m['group_seconds'])} seeds, mean ± sd "
                             f"(each) | {spread} | | | |")  # fmt: skip
        for label in entry.get("not_run", []):
            lines.append(f"| {name} | {label} | not run | not run | | | |")
    lines += [
        "",
        "Paired verdicts (pooled test trials): A's balanced accuracy minus B's, its paired "
        "bootstrap 95 % CI and the exact McNemar p (uncorrected; the goal tests below are "
        "Holm-corrected); * where p < 0.05.",
        "",
        "| data | A | B | A's seeds | valence: A - B [95% CI], p | arousal: A - B [95% CI], p |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in results["data"].items():
        pairs: dict[tuple[str, str, str], list[str]] = {}
        for v in entry["verdicts"]:
            star = "*" if v["p_mcnemar"] < 0.05 else ""
            pairs.setdefault((v["a"], v["b"], v["variant"]), []).append(
                f"{v['difference']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}], "
                f"p={_p(v['p_mcnemar'])}{star}"
            )
        for (a, b, variant), cells in pairs.items():
            lines.append(f"| {name} | {a} | {b} | {variant} | {' | '.join(cells)} |")
    lines += _val_lines(results)
    goals = results.get("goals", [])
    if goals:
        lines += [
            "",
            "Goal tests: Holm-corrected within each goal family (the rows and data sets it "
            "names, both targets), seed 0 and the seed ensemble corrected separately; the "
            "null family corrects every row's test against chance. Non-inferiority is a CI "
            "bound, not corrected.",
            "",
            "| goal | data | A | B | target | A's seeds | A - B [95% CI] | p | Holm p | asks |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for g in goals:
            if "difference" in g:
                diff = f"{g['difference']:+.3f} [{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}]"
                p = _p(g["p_mcnemar"])
            else:
                diff, p = f"{g['balanced_accuracy']:.3f} (bal. acc.)", _p(g["p_vs_chance"])
            adjusted = _p(g["p_holm"]) if "p_holm" in g else ("met" if g.get("met") else "not met")
            lines.append(
                f"| {g['goal']} | {g['data']} | {g['a']} | {g['b']} | {g['target']} | "
                f"{g['variant']} | {diff} | {p} | {adjusted} | {g['asks']} |"
            )
    return "\n".join(lines) + "\n"


def _val_lines(results: dict) -> list[str]:
    """The Val section: each row on its folds' val trials, and the gate's paired val verdicts
    (uncorrected: a gate, not a goal test)."""
    rows = [
        (name, label, m["val"])
        for name, entry in results["data"].items()
        for label, m in entry["rows"].items()
        if "val" in m
    ]
    if not rows:
        return []
    lines = [
        "",
        "Val: every fold's val trials pooled (a trial in the val part of several folds once per "
        "fold); where choices are made, never test.",
        "",
        "| data | model | valence bal. acc. [95% CI] | arousal bal. acc. [95% CI] "
        "| p vs chance (val. / ar.) |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {name} | {label} | {_cells(t)} | {_ps(t)} |" for name, label, t in rows]
    verdicts = [(n, v) for n, e in results["data"].items() for v in e.get("val_verdicts", [])]
    if verdicts:
        lines += [
            "",
            "| data | A | B | target | A - B on val [95% CI] | p (McNemar) | verdict |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {n} | {v['a']} | {v['b']} | {v['target']} | {v['difference']:+.3f} "
            f"[{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}] | {_p(v['p_mcnemar'])} | {v['verdict']} |"
            for n, v in verdicts
        ]
    return lines


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _cells(t: dict) -> str:
    return " | ".join(
        f"{c['balanced_accuracy']:.3f} [{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}]" for c in t.values()
    )


def _ps(t: dict) -> str:
    return " / ".join(f"{c['p_vs_chance']:.3f}" for c in t.values())
