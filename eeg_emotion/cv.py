"""Cross-validation: aggregate the folds of a CV group into one table (mean +- sd per metric)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "majority_baseline")


def aggregate(folder: str | Path) -> dict:
    """Read FOLDER/*/results.json (one per fold); mean and sd of each test metric over folds."""
    folder = Path(folder)
    folds = {
        p.parent.name: json.loads(p.read_text()) for p in sorted(folder.glob("*/results.json"))
    }
    if not folds:
        raise FileNotFoundError(f"{folder}: no fold has a results.json yet")
    targets = [
        k
        for k, v in next(iter(folds.values()))["test"].items()
        if isinstance(v, dict) and "macro_f1" in v
    ]
    table: dict = {}
    for target in targets:
        table[target] = {}
        for metric in METRICS:
            values = np.array([r["test"][target][metric] for r in folds.values()], float)
            table[target][metric] = {
                "mean": float(values.mean()),
                "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                "per_fold": values.round(4).tolist(),
            }
    overall = np.array([r["test"]["overall"]["accuracy"] for r in folds.values()], float)
    table["overall"] = {
        "accuracy": {
            "mean": float(overall.mean()),
            "sd": float(overall.std(ddof=1)) if len(overall) > 1 else 0.0,
            "per_fold": overall.round(4).tolist(),
        }
    }
    expected = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name.startswith("fold-"))
    return {
        "folds": list(folds),
        "missing": sorted(set(expected) - set(folds)),
        "targets": targets,
        "test": table,
    }


def format_table(summary: dict) -> str:
    lines = [
        f"Cross-validation, {len(summary['folds'])} folds (test split of each fold), mean ± sd",
        "",
        "| target | " + " | ".join(METRICS) + " |",
        "|---" * (len(METRICS) + 1) + "|",
    ]
    for target in summary["targets"]:
        cells = [
            f"{summary['test'][target][m]['mean']:.3f} ± {summary['test'][target][m]['sd']:.3f}"
            for m in METRICS
        ]
        lines.append(f"| {target} | " + " | ".join(cells) + " |")
    o = summary["test"]["overall"]["accuracy"]
    lines.append(f"| overall (all targets right) | {o['mean']:.3f} ± {o['sd']:.3f} | | | |")
    if summary["missing"]:
        lines += ["", f"missing folds (no results.json): {', '.join(summary['missing'])}"]
    return "\n".join(lines)


def write(folder: str | Path) -> str:
    folder = Path(folder)
    summary = aggregate(folder)
    text = format_table(summary)
    (folder / "cv_results.json").write_text(json.dumps(summary, indent=1))
    (folder / "cv_results.md").write_text(text + "\n")
    return text
