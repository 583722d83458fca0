"""report.md + PNG plots for a finished run (LLM or baseline) or a cross-validation group.

A run folder has results.json; a CV group has cv_group.json naming its folds (`cv.group_of`).
Every number is read from those (written by `scoring` and `cv`), never computed again here;
every table is rendered by `tables`. Plots go to FOLDER/plots/, drawn by the same function the
run used: per-subject (and per-fold) bars with the majority baseline and chance lines, confusion
matrices at window and trial level, training curves, with the classes named as the run's
settings name them (a category target's own names, e.g. SEED's emotions). A report's files are
published together (`fileio.staged`): a failure to write leaves the earlier ones as they were.

Comparisons (`eeg-emotion compare`) are linked, with their verdicts: FOLDER/compare.md when there
is one, and each compare.md (or folder holding one) given as `compare`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import yaml

from eeg_emotion import fileio
from eeg_emotion.config import DataSettings
from eeg_emotion.data.labels import class_names, label_names
from eeg_emotion.errors import DataError
from eeg_emotion.evaluation import cv, plots, scalp_maps, tables
from eeg_emotion.evaluation.compare import JSON, MARKDOWN

log = logging.getLogger(__name__)


def describe(run: Path, folds: int | None = None) -> str:
    """One line on what was trained, from the run's saved settings."""
    path = run / "config.yaml"
    if not path.exists():
        return "settings: config.yaml missing"
    try:
        s = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(path, f"cannot read the run's settings ({exc})") from None
    d, split = s["data"], s["data"]["split"]
    results = fileio.read_json(run / "results.json", default={})
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


def names_of(run: Path, num_classes: int) -> list[str]:
    """The class names of a run's targets as its config.yaml's data settings name them (a
    category target's own, e.g. SEED's emotions); low / high where the settings cannot say."""
    try:
        data = yaml.safe_load((run / "config.yaml").read_text())["data"]
        names = label_names(DataSettings.model_validate(data))
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):  # ValueError: pydantic's
        return class_names(num_classes)
    return names if len(names) == num_classes else class_names(num_classes)


def comparison_lines(folder: Path, compare: Sequence[str | Path] = ()) -> list[str]:
    """The report's Comparisons section: a link to FOLDER/compare.md (when there is one) and to
    each of `compare` (a compare.md, or a folder holding one), each with the verdicts of the
    compare.json beside it; no lines when there is none."""
    found = [folder / MARKDOWN] if (folder / MARKDOWN).is_file() else []
    for given in map(Path, compare):
        path = given / MARKDOWN if given.is_dir() else given
        if not path.is_file():
            raise DataError(given, f"no {MARKDOWN} there (eeg-emotion compare --out writes one)")
        if all(path.resolve() != f.resolve() for f in found):
            found.append(path)
    if not found:
        return []
    lines = ["## Comparisons", ""]
    for path in found:
        link = Path(os.path.relpath(path.resolve(), folder.resolve())).as_posix()
        lines.append(f"- [{link}]({link})")
        stored = path.with_name(JSON)
        try:  # the verdicts are a summary: a link without them beats no report
            comparison = fileio.load_json(stored)
        except (OSError, ValueError):
            comparison = {}
        verdicts = comparison.get("verdicts") if isinstance(comparison, dict) else None
        lines += [f"  - {v}" for v in verdicts or []]
    return [*lines, ""]


def run_report(run: Path, *, compare: Sequence[str | Path] = ()) -> str:
    """RUN/report.md and RUN/plots/ of a finished run (linking the comparisons
    `comparison_lines` finds); returns the markdown."""
    results = fileio.read_json(run / "results.json")
    if "test" not in results:
        raise DataError(run / "results.json", "has no test results (unfinished run?)")
    test = tables.SplitResults.of(results["test"])
    targets = test.targets
    n_classes = len(test.windows.targets[targets[0]].confusion_matrix)
    rows = fileio.read_jsonl(run / "metrics.jsonl")
    names = names_of(run, n_classes)
    extra = [f"Classes: {' / '.join(names)}.", "", *comparison_lines(run, compare)]
    with fileio.writing(run), fileio.staged(run) as tmp:
        with fileio.named(tmp / "plots"):
            images = plots.run_plots(tmp / "plots", results, targets, names, rows)
            importance = scalp_maps.Importance.load(run)
            # Scalp maps of what the model reads, where it has any: drawn here, not by the run.
            if importance is not None:
                images.update(scalp_maps.draw(importance, tmp / "plots"))
        text = _run_markdown(run, results, test, images, extra)
        fileio.write_file(tmp / "report.md", text)
    return text


def track_maps(run: Path) -> None:
    """The run's scalp maps (RUN/plots/scalp_*.png, as `run_report` drew them) into its own W&B
    run, resumed by the id its folder keeps, when its tracker is W&B: runs save importance.json
    but draw no maps (`scoring.write_results`). A W&B that fails is warned about; the files are
    the maps either way."""
    from eeg_emotion.config import load_settings
    from eeg_emotion.training import tracking

    maps = sorted((run / "plots").glob("scalp_*.png"))
    if not maps or not (run / "config.yaml").is_file():
        return
    settings = load_settings(run / "config.yaml")
    baseline = "baseline" in fileio.read_json(run / "results.json", default={})
    job_type = tracking.wandb_job_type(settings, kind="baseline" if baseline else "model")
    try:
        wandb_run = tracking.open_run(settings, run, job_type=job_type)
    except Exception as exc:  # not even offline: the files are the maps
        log.warning("the tracker failed to start (%s)", tracking.short_reason(exc))
        return
    if wandb_run is None:
        return
    import wandb

    try:
        wandb_run.log({path.stem: wandb.Image(str(path)) for path in maps})
    except Exception as exc:
        log.warning("the tracker failed to log the maps (%s)", tracking.short_reason(exc))
    finally:
        wandb_run.finish()


def _run_markdown(
    run: Path, results: dict, test: tables.SplitResults, images: dict[str, Path], extra: list[str]
) -> str:
    """`extra`: the classes line and the comparisons, before the plots."""
    targets = test.targets
    lines = [f"# Report: {run}", "", describe(run), ""]
    if "best" in results:
        b = results["best"]
        lines += [f"Best model: step {b['step']} ({b['metric']} on val = {b['value']:.4f}).", ""]
    if "baseline" in results:
        info = {k: v for k, v in results["baseline"].items() if k != "name"}
        lines += [f"Baseline details: `{json.dumps(info)}`", ""]
    lines += ["## Test, per trial (mean probability over a trial's windows: the honest unit)", ""]
    lines += tables.markdown_level(test.trials) if test.trials is not None else ["(none)"]
    lines += ["", "## Test, per window", "", *tables.markdown_level(test.windows), ""]
    if "val" in results:
        val = tables.SplitResults.of(results["val"], targets)
        lines += ["## Validation, per window", "", *tables.markdown_level(val.windows), ""]
    if test.per_subject:
        lines += ["## Test per subject (trials)", "", *tables.markdown_per_subject(test), ""]
    lines += [*extra, "## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in images.values()]
    return "\n".join(lines) + "\n"


def cv_report(folder: Path, *, compare: Sequence[str | Path] = ()) -> str:
    """FOLDER/report.md and FOLDER/plots/ of a CV group, with cv_results.{md,json} refreshed
    (all published together; linking the comparisons `comparison_lines` finds); returns the
    markdown."""
    aggregated = cv.aggregate(folder)
    links = comparison_lines(folder, compare)
    text = tables.cv_summary(tables.CVSummary.of(aggregated))
    stored = json.loads(json.dumps(aggregated))  # as cv_results.json holds it
    with fileio.writing(folder), fileio.staged(folder) as tmp:
        cv.write_cv_files(tmp, aggregated, text)
        with fileio.named(tmp / "plots"):
            images, names = _cv_plots(folder, stored, tmp / "plots")
        extra = [f"Classes: {' / '.join(names)}.", "", *links]
        report = _cv_markdown(folder, tables.CVSummary.of(stored), text, images, extra)
        fileio.write_file(tmp / "report.md", report)
    return report


def _cv_plots(folder: Path, stored: dict, out: Path) -> tuple[list[Path], list[str]]:
    """The plots of a CV group's report, drawn into `out`, and the class names they show."""
    summary = tables.CVSummary.of(stored)
    targets, folds = summary.targets, summary.folds
    first = fileio.read_json(folder / folds[0] / "results.json")["test"]
    n_classes = len(first[targets[0]]["confusion_matrix"])
    names = names_of(folder / folds[0], n_classes)
    level = summary.headline
    images = [
        plots.bars_vs_baseline(
            {
                fold: {t: {k: level.targets[t][k].per_fold[i] for k in cv.METRICS} for t in targets}
                for i, fold in enumerate(folds)
            },
            1 / n_classes,
            f"Test {'windows' if summary.trials is None else 'trials'} per fold",
            out / "per_fold.png",
        )
    ]
    pooled = stored.get("pooled") or {}
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
            drawn = plots.confusion_matrices(pooled[lvl], targets, names, f"pooled_{lvl}", out)
            images += list(drawn.values())
    runs = {name: fileio.read_jsonl(folder / name / "metrics.jsonl") for name in folds}
    for t in targets if any(runs.values()) else []:  # baselines without epochs log nothing
        images.append(
            plots.curves_per_run(
                runs, f"val/{t}/balanced_accuracy", out / f"val_{t}_balanced_accuracy.png"
            )
        )
    return images, names


def _cv_markdown(
    folder: Path, summary: tables.CVSummary, text: str, images: list[Path], extra: list[str]
) -> str:
    """`extra`: the classes line and the comparisons, before the plots."""
    folds = summary.folds
    lines = [
        f"# Cross-validation report: {folder}",
        "",
        describe(folder / folds[0], folds=len(folds)),
        "",
        text,
        "",
        "## Per fold (test)",
        "",
        *tables.markdown_per_fold(summary),
        "",
        *extra,
        "## Plots",
        "",
    ]
    lines += [f"![{p.stem}](plots/{p.name})" for p in images]
    return "\n".join(lines) + "\n"


def write_report(folder: str | Path, *, compare: Sequence[str | Path] = ()) -> str:
    """Report for a run folder or a CV group (linking FOLDER/compare.md and the comparisons in
    `compare`); returns the markdown (also written to report.md)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "not a folder")
    if (folder / "results.json").exists():
        return run_report(folder, compare=compare)
    if (folder / cv.GROUP_FILE).exists() or cv.unrecorded_folds(folder):
        return cv_report(folder, compare=compare)
    raise DataError(
        folder,
        f"neither a finished run (results.json) nor a CV group ({cv.GROUP_FILE}, or the "
        "fold-<i> folders of one made before groups were recorded)",
    )
