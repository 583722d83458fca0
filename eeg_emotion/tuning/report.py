"""The study report: STUDY/study.md, STUDY/study_results.json, STUDY/plots/ and a W&B run.

It gives every trial's settings and val score, how many trials ran and how many distinct
settings they compared, the best val score, the one test result (the best settings trained
again, in STUDY/final) with its CIs next to the baselines of the same split (the training
split's majority class, each subject's own majority, and band-power + LR in
STUDY/baseline-band_power_lr), and Optuna's parameter importances and optimization history.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from eeg_emotion import fileio
from eeg_emotion.evaluation import tables
from eeg_emotion.tuning.study import Record

PLOTS = ("optimization_history", "param_importances")


def trial_rows(study: optuna.Study) -> tuple[list[str], list[list[Any]]]:
    """One row per trial: its number, state, val score (its best model's), the step a pruned
    trial stopped at, and each searched key's value."""
    trials = study.get_trials(deepcopy=False)
    keys = sorted({k for t in trials for k in t.params})
    columns = ["trial", "state", "val score", "pruned at step", *keys]
    rows = []
    for t in trials:
        score = t.user_attrs.get("val_score")
        rows.append(
            [
                t.number,
                t.state.name.lower(),
                score,
                t.user_attrs.get("pruned_at_step"),
                *[t.params.get(k) for k in keys],
            ]
        )
    return columns, rows


def settings_compared(trials: list[FrozenTrial]) -> int:
    """Distinct settings among the trials that got a val score (a sampler may draw one twice)."""
    scored = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    return len({json.dumps(t.params, sort_keys=True) for t in scored})


def draw(study: optuna.Study, out: Path) -> dict[str, Path | str]:
    """Optuna's own matplotlib figures as PNGs; where one cannot be drawn (importances need two
    completed trials that differ), the reason instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    out.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, Path | str] = {}
    for name in PLOTS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the figures are marked experimental
                ax = getattr(optuna_plots, f"plot_{name}")(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            drawn[name] = f"not drawn: {exc}"
            continue
        figure = ax.figure
        figure.set_size_inches(7, 4.5)
        figure.tight_layout()
        figure.savefig(out / f"{name}.png", dpi=100, bbox_inches="tight")  # the legend too
        plt.close(figure)
        drawn[name] = out / f"{name}.png"
    return drawn


def test_rows(final: dict, baseline: dict | None) -> list[list[Any]]:
    """Per target, at trial level (a trial's mean window probabilities: the honest unit):
    the tuned model, band-power + LR and the majority baselines, with the CIs."""
    rows: list[list[Any]] = []
    tuned = tables.SplitResults.of(final["test"])
    lr = tables.SplitResults.of(baseline["test"]) if baseline else None
    for level_name in ("trials", "windows"):
        level = getattr(tuned, level_name)
        other = getattr(lr, level_name) if lr is not None else None
        if level is None:
            continue
        for target, x in level.targets.items():
            chance = 1 / len(x.confusion_matrix)
            rows.append([level_name, target, "tuned model", *_metric_cells(x)])
            if other is not None and target in other.targets:
                rows.append(
                    [level_name, target, "band-power + LR", *_metric_cells(other.targets[target])]
                )
            rows.append(
                [
                    level_name,
                    target,
                    "majority class",
                    x.majority_baseline,
                    None,
                    chance,
                    None,
                    x.support,
                ]
            )
            if x.subject_majority_baseline is not None:
                rows.append(
                    [
                        level_name,
                        target,
                        "subject majority",
                        x.subject_majority_baseline,
                        None,
                        None,
                        None,
                        x.support,
                    ]
                )
    return rows


def _metric_cells(x: tables.TargetMetrics) -> list[Any]:
    return [x.accuracy, x.accuracy_ci95, x.balanced_accuracy, x.balanced_accuracy_ci95, x.support]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple | list) and len(value) == 2:
        return f"[{value[0]:.2f}, {value[1]:.2f}]"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return lines + ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]


TEST_COLUMNS = [
    "level",
    "target",
    "model",
    "accuracy",
    "95% CI",
    "balanced accuracy",
    "95% CI",
    "n",
]


def write_study_report(study_dir: Path, study: optuna.Study, record: Record) -> str:
    """study.md, study_results.json and plots/ of the study (published together), and its W&B
    run; returns the markdown."""
    trials = study.get_trials(deepcopy=False)
    best = study.best_trial
    final = fileio.read_json(study_dir / "final" / "results.json")
    baseline_dir = study_dir / "baseline-band_power_lr"
    baseline = fileio.read_json(baseline_dir / "results.json", default=None)
    columns, rows = trial_rows(study)
    compared = settings_compared(trials)
    states = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
    summary = {
        "trials": len(trials),
        "budget": record.trials,
        "states": {k: v for k, v in states.items() if v},
        "settings_compared": compared,
        "metric": record.metric(),
        "direction": record.direction(),
        "best_trial": best.number,
        "best_val": best.value,
        "best_params": best.params,
        "final_val": final.get("best", {}).get("value"),
    }
    test = test_rows(final, baseline)
    with fileio.writing(study_dir), fileio.staged(study_dir) as tmp:
        drawn = draw(study, tmp / "plots")
        text = _markdown(study_dir, record, summary, columns, rows, test, drawn)
        fileio.write_file(tmp / "study.md", text)
        stored = {**summary, "trials_table": {"columns": columns, "rows": rows}, "test": test}
        fileio.write_file(tmp / "study_results.json", json.dumps(stored, indent=1) + "\n")
    images = {k: study_dir / "plots" / v.name for k, v in drawn.items() if isinstance(v, Path)}
    _to_wandb(study_dir, record, summary, (columns, rows), test, images)
    return text


def _markdown(
    study_dir: Path,
    record: Record,
    summary: dict[str, Any],
    columns: list[str],
    rows: list[list[Any]],
    test: list[list[Any]],
    drawn: dict[str, Path | str],
) -> str:
    states = ", ".join(f"{n} {s}" for s, n in summary["states"].items())
    direction = "higher" if summary["direction"] == "maximize" else "lower"
    lines = [
        f"# Study: {study_dir.resolve().name}",
        "",
        f"Settings: `{record.config}` {' '.join(f'`{o}`' for o in record.overrides)}".rstrip(),
        f"Sampler: `{json.dumps(record.space['sampler'])}`; pruner: "
        f"`{json.dumps(record.space['pruner'])}`.",
        "",
        f"Chosen on val only: `{summary['metric']}` ({direction} is better), each trial's best "
        "model. No trial evaluated the test split.",
        "",
        f"- Trials: {summary['trials']} of a budget of {summary['budget']} ({states}).",
        f"- Settings compared: {summary['settings_compared']} distinct.",
        f"- Best val score: {summary['best_val']:.4f} (trial {summary['best_trial']}: "
        + ", ".join(f"`{k}={v}`" for k, v in summary["best_params"].items())
        + ").",
        "",
        "## Every trial",
        "",
        *markdown_table(columns, rows),
        "",
        "## Test: the best settings trained once more (`final/`), next to the baselines",
        "",
        f"The test split was read once, by this model (val score of the retrained run: "
        f"{_cell(summary['final_val'])}). Chance balanced accuracy is 1 / classes; trials: "
        "a trial's mean window probabilities (the honest unit).",
        "",
        *markdown_table(TEST_COLUMNS, test),
        "",
        "## Optuna",
        "",
    ]
    for name, what in drawn.items():
        shown = name.replace("_", " ")
        lines.append(
            f"![{shown}](plots/{what.name})" if isinstance(what, Path) else f"- {shown}: {what}"
        )
    return "\n".join(lines) + "\n"


def _to_wandb(
    study_dir: Path,
    record: Record,
    summary: dict[str, Any],
    trials: tuple[list[str], list[list[Any]]],
    test: list[list[Any]],
    images: dict[str, Path],
) -> None:
    """The study as a W&B run in its group (job type tune), where the settings log to W&B:
    each trial's val score as history, the tables, the pictures and the summary."""
    from eeg_emotion.config import load_settings
    from eeg_emotion.training import tracking
    from eeg_emotion.tuning.trial import study_keys

    settings = load_settings(
        record.config, [*record.overrides, *study_keys(study_dir, study_dir, "study")]
    )
    if settings.train.tracker.kind != "wandb":
        return
    import wandb

    columns, rows = trials
    history = [{"step": row[0], "tune/val_score": row[2]} for row in rows if row[2] is not None]
    pictures = {f"tune/{k}": wandb.Image(str(p)) for k, p in images.items()}
    history.append({"step": len(rows), **pictures})
    flat = {f"study/{k}": v for k, v in summary.items() if not isinstance(v, dict)}
    text_test = [[_cell(v) for v in row] for row in test]
    tracking.log_run(
        settings,
        study_dir,
        job_type="tune",
        rows=history,
        summary=flat,
        tables={
            "tune/trials": (columns, [[_cell(v) for v in r] for r in rows]),
            "tune/test": (TEST_COLUMNS, text_test),
        },
    )
