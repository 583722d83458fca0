"""PNG plots of a run: losses, per-target accuracies over training, confusion matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _x_label(rows: list[dict[str, Any]]) -> str:
    # LLM runs log per optimizer step; the EEGNet baseline once per epoch (step = epoch).
    return "epoch" if rows and all("epoch" in r for r in rows) else "optimizer step"


def run_plots(
    out: Path, results: dict, targets: list[str], class_names: list[str], rows: list[dict]
) -> dict[str, Path]:
    """Every plot of a finished run, from its results and logged metrics: confusion matrices of
    the test windows and trials, trials per subject against the baselines, training curves."""
    test, chance = results["test"], 1 / len(class_names)
    paths = confusion_matrices(test, targets, class_names, "test_windows", out)
    if "trial_level" in test:
        paths.update(
            confusion_matrices(test["trial_level"], targets, class_names, "test_trials", out)
        )
    if test.get("per_subject"):
        per_subject = test["per_subject"]
        paths["per_subject"] = bars_vs_baseline(
            {f"s{int(s):02d}": per_subject[s] for s in sorted(per_subject, key=int)},
            chance,
            "Test trials per subject",
            out / "per_subject.png",
        )
    if rows:
        paths.update(training_curves(rows, targets, out, chance))
    return paths


def training_curves(
    rows: list[dict[str, Any]], targets: list[str], out: Path, chance: float
) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    x_label = _x_label(rows)
    train = [(r["step"], r["train/loss"]) for r in rows if "train/loss" in r]
    val = [(r["step"], r["val/loss"]) for r in rows if "val/loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    if train:
        ax.plot(*zip(*train, strict=True), label="train")
    if val:
        ax.plot(*zip(*val, strict=True), marker="o", label="val")
    ax.set(xlabel=x_label, ylabel="loss (sum over targets)", title="Loss")
    ax.legend()
    paths["loss"] = out / "loss.png"
    fig.savefig(paths["loss"], dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for t in targets:
        pts = [
            (r["step"], r[f"val/{t}/balanced_accuracy"])
            for r in rows
            if f"val/{t}/balanced_accuracy" in r
        ]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=f"{t} balanced acc.")
    ax.axhline(chance, color="grey", linestyle="--", label=f"chance ({chance:.2f})")
    ax.set(xlabel=x_label, ylabel="validation", title="Validation balanced accuracy")
    ax.legend()
    paths["accuracy"] = out / "val_accuracy.png"
    fig.savefig(paths["accuracy"], dpi=100, bbox_inches="tight")
    plt.close(fig)
    return paths


def confusion_matrices(
    metrics: dict, targets: list[str], class_names: list[str], split: str, out: Path
) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for t in targets:
        cm = metrics[t]["confusion_matrix"]
        fig, ax = plt.subplots(figsize=(3.5, 3))
        ax.imshow(cm, cmap="Blues")
        for i, row in enumerate(cm):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center")
        ax.set(
            xticks=range(len(class_names)),
            yticks=range(len(class_names)),
            xticklabels=class_names,
            yticklabels=class_names,
            xlabel="predicted",
            ylabel="true",
            title=f"{split} {t}: bal. acc. {metrics[t]['balanced_accuracy']:.3f}",
        )
        paths[f"{split}_confusion_{t}"] = out / f"{split}_confusion_{t}.png"
        fig.savefig(paths[f"{split}_confusion_{t}"], dpi=100, bbox_inches="tight")
        plt.close(fig)
    return paths


def bars_vs_baseline(
    per_group: dict[str, dict[str, dict[str, float]]], chance: float, title: str, path: Path
) -> Path:
    """Two panels over groups (folds or subjects; per_group[group][target] has accuracy,
    balanced_accuracy, majority_baseline), one bar per target: accuracy with each group's
    majority baseline drawn as a black line over its bar, and balanced accuracy with the chance
    line."""
    groups = list(per_group)
    targets = list(per_group[groups[0]])

    def series(key: str) -> dict[str, list[float]]:
        return {t: [per_group[g][t][key] for g in groups] for t in targets}

    accuracy, majority = series("accuracy"), series("majority_baseline")
    balanced = series("balanced_accuracy")
    path.parent.mkdir(parents=True, exist_ok=True)
    width = 0.8 / len(targets)
    fig, axes = plt.subplots(1, 2, figsize=(max(7.0, 0.9 * len(groups) * 2 + 3), 3.8))
    for k, target in enumerate(targets):
        xs = [i + (k - (len(targets) - 1) / 2) * width for i in range(len(groups))]
        axes[0].bar(xs, accuracy[target], width, label=target)
        axes[0].hlines(
            majority[target],
            [x - width / 2 for x in xs],
            [x + width / 2 for x in xs],
            color="black",
            label="majority baseline" if k == 0 else None,
        )
        axes[1].bar(xs, balanced[target], width, label=target)
    axes[1].axhline(chance, color="black", linestyle="--", label=f"chance ({chance:.2f})")
    for ax, name in zip(axes, ("accuracy", "balanced accuracy"), strict=True):
        ax.set(xticks=range(len(groups)), ylim=(0, 1), ylabel=name)
        ax.set_xticklabels(groups, rotation=45 if len(groups) > 8 else 0)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def curves_per_run(runs: dict[str, list[dict[str, Any]]], key: str, path: Path) -> Path:
    """One line per run (e.g. per fold) of a logged validation metric over optimizer steps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in runs.items():
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", markersize=3, label=name)
    every = [r for rows in runs.values() for r in rows]
    ax.set(xlabel=_x_label(every), ylabel=key, title=key)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path
