"""report.md + PNG plots for a finished run (LLM or baseline) or a cross-validation group.

A run folder has results.json; a CV group has fold-*/results.json. Every number is read from
those (written by `evaluation`), never computed again here. Plots go to FOLDER/plots/, drawn by
the same function the run used: per-subject (and per-fold) bars with the majority baseline and
chance lines, confusion matrices at window and trial level, training curves.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from eeg_emotion import fileio
from eeg_emotion.data.labels import class_names
from eeg_emotion.errors import DataError
from eeg_emotion.evaluation import cv, plots


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot read ({exc})") from None


def _targets(result: dict) -> list[str]:
    return [k for k, v in result.items() if isinstance(v, dict) and "macro_f1" in v]


def _ci(m: dict, key: str) -> str:
    lo_hi = m.get(f"{key}_ci95")
    return f"{m[key]:.3f} [{lo_hi[0]:.2f}, {lo_hi[1]:.2f}]" if lo_hi else f"{m[key]:.3f}"


def _p(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def level_table(m: dict, targets: list[str]) -> list[str]:
    """Markdown rows for one level (windows or trials) of a full_report."""
    rows = [
        "| target | accuracy [95% CI] | balanced accuracy [95% CI] | macro-F1 | majority "
        "| subject majority | p (bal. acc. > chance) | p (acc. > majority) | n |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in targets:
        x = m[t]
        rows.append(
            f"| {t} | {_ci(x, 'accuracy')} | {_ci(x, 'balanced_accuracy')} | {x['macro_f1']:.3f} "
            f"| {x['majority_baseline']:.3f} | {_p(x.get('subject_majority_baseline'), 3)} "
            f"| {_p(x.get('p_value_balanced_accuracy_vs_chance'))} "
            f"| {_p(x.get('p_value_accuracy_vs_majority'))} | {x['support']} |"
        )
    o = m["overall"]
    rows.append(
        f"| overall (all right) | {o['accuracy']:.3f} | | | {o['majority_baseline']:.3f} | | | | |"
    )
    return rows


def describe(run: Path, folds: int | None = None) -> str:
    """One line on what was trained, from the run's saved settings."""
    path = run / "config.yaml"
    if not path.exists():
        return "settings: config.yaml missing"
    s = yaml.safe_load(path.read_text())
    d, split = s["data"], s["data"]["split"]
    results = _read_json(run / "results.json") if (run / "results.json").exists() else {}
    if "baseline" in results:
        what = f"baseline `{results['baseline']['name']}`"
    else:
        m = s["model"]
        layers = m.get("num_layers") or "all"
        what = f"LLM classifier `{m['source']}` ({m['precision']}, {layers} layers)"
    which = f"{folds} folds" if folds else f"fold {split['fold']} of {split['num_folds']}"
    return (
        f"{what}; data `{d['root']}`, tokenizer `{d['tokenizer']['kind']}`, window {d['window']} "
        f"stride {d['stride']}, normalize `{d['normalize']}`; split `{split['protocol']}` "
        f"({which}, seed {split['seed']})"
    )


def run_report(run: Path) -> str:
    results = _read_json(run / "results.json")
    if "test" not in results:
        raise DataError(run / "results.json", "has no test results (unfinished run?)")
    test = results["test"]
    targets = _targets(test)
    n_classes = len(test[targets[0]]["confusion_matrix"])
    rows = fileio.read_jsonl(run / "metrics.jsonl")
    images = plots.run_plots(run / "plots", results, targets, class_names(n_classes), rows)
    lines = [f"# Report: {run}", "", describe(run), ""]
    if "best" in results:
        b = results["best"]
        lines += [f"Best model: step {b['step']} ({b['metric']} on val = {b['value']:.4f}).", ""]
    if "baseline" in results:
        info = {k: v for k, v in results["baseline"].items() if k != "name"}
        lines += [f"Baseline details: `{json.dumps(info)}`", ""]
    lines += ["## Test, per trial (mean probability over a trial's windows: the honest unit)", ""]
    lines += level_table(test["trial_level"], targets) if "trial_level" in test else ["(none)"]
    lines += ["", "## Test, per window", "", *level_table(test, targets), ""]
    if "val" in results:
        lines += ["## Validation, per window", "", *level_table(results["val"], targets), ""]
    per_subject = test.get("per_subject", {})
    if per_subject:
        subjects = sorted(per_subject, key=int)
        lines += [
            "## Test per subject (trials)",
            "",
            "| subject | "
            + " | ".join(f"{t} acc / bal. acc / majority / subject majority" for t in targets)
            + " |",
            "|---" * (len(targets) + 1) + "|",
        ]
        for s in subjects:
            cells = [
                " / ".join(
                    f"{per_subject[s][t][k]:.2f}" if k in per_subject[s][t] else "-"
                    for k in (
                        "accuracy",
                        "balanced_accuracy",
                        "majority_baseline",
                        "subject_majority_baseline",
                    )
                )
                for t in targets
            ]
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in images.values()]
    text = "\n".join(lines) + "\n"
    (run / "report.md").write_text(text)
    return text


def cv_report(folder: Path) -> str:
    text = cv.write(folder)  # also refreshes cv_results.{md,json}
    summary = _read_json(folder / "cv_results.json")
    targets = summary["targets"]
    folds = summary["folds"]
    first = _read_json(folder / folds[0] / "results.json")["test"]
    n_classes = len(first[targets[0]]["confusion_matrix"])
    out = folder / "plots"
    level = "test_trials" if "test_trials" in summary else "test"
    table = summary[level]
    images = [
        plots.bars_vs_baseline(
            {
                fold: {t: {k: table[t][k]["per_fold"][i] for k in cv.METRICS} for t in targets}
                for i, fold in enumerate(folds)
            },
            1 / n_classes,
            f"Test {'trials' if level == 'test_trials' else 'windows'} per fold",
            out / "per_fold.png",
        )
    ]
    pooled = summary.get("pooled") or {}
    if pooled:  # every fold's test predictions together (each trial is tested in one fold)
        per_subject = pooled["per_subject"]
        images.append(
            plots.bars_vs_baseline(
                {f"s{int(s):02d}": per_subject[s] for s in sorted(per_subject, key=int)},
                1 / n_classes,
                "Test trials per subject, pooled over folds",
                out / "per_subject.png",
            )
        )
        for lvl in ("windows", "trials"):
            names = class_names(n_classes)
            drawn = plots.confusion_matrices(pooled[lvl], targets, names, f"pooled_{lvl}", out)
            images += list(drawn.values())
    runs = {name: fileio.read_jsonl(folder / name / "metrics.jsonl") for name in folds}
    for t in targets if any(runs.values()) else []:  # baselines without epochs log nothing
        images.append(
            plots.curves_per_run(
                runs, f"val/{t}/balanced_accuracy", out / f"val_{t}_balanced_accuracy.png"
            )
        )
    lines = [
        f"# Cross-validation report: {folder}",
        "",
        describe(folder / folds[0], folds=len(folds)),
        "",
        text,
        "",
        "## Per fold (test)",
        "",
        "| fold | " + " | ".join(f"{t} bal. acc. (trials)" for t in targets) + " |",
        "|---" * (len(targets) + 1) + "|",
    ]
    for i, name in enumerate(folds):
        cells = [f"{table[t]['balanced_accuracy']['per_fold'][i]:.3f}" for t in targets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in images]
    report = "\n".join(lines) + "\n"
    (folder / "report.md").write_text(report)
    return report


def write_report(folder: str | Path) -> str:
    """Report for a run folder or a CV group; returns the markdown (also written to report.md)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "not a folder")
    if (folder / "results.json").exists():
        return run_report(folder)
    if any(folder.glob("fold-*/results.json")):
        return cv_report(folder)
    raise DataError(
        folder, "neither a finished run (results.json) nor a CV group (fold-*/results.json)"
    )
