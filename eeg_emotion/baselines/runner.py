"""Run a baseline into a run folder laid out like a training run's: config.yaml, splits.json,
data_files.json, results.json, test_results.txt, predictions and plots, all written by the same
code as an LLM run's (`evaluation.scoring`).

A baseline folder belongs to one experiment, as a training run's does (`run_folder`): refitting
it with settings that change its numbers, or on data files that changed, is refused before
anything is touched, naming what changed; the same settings again are fine. Its files are
published together once the test part is scored (`fileio.staged`): a fit that fails, a split
without test trials or a full disk leaves the folder as it was.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np

from eeg_emotion import fileio
from eeg_emotion.baselines import band_power_lr, connectivity
from eeg_emotion.config import Settings, dump_settings, flatten
from eeg_emotion.data import pipeline
from eeg_emotion.data.splits import save_split
from eeg_emotion.errors import ConfigError, DataError
from eeg_emotion.evaluation.scalp_maps import Importance
from eeg_emotion.evaluation.scoring import Majorities, Predictions, score, write_results
from eeg_emotion.training import run_folder


def refuse_foreign_folder(run_dir: Path, name: str) -> None:
    """Never overwrite an LLM run or another baseline: only the same baseline is refitted."""
    results = run_dir / "results.json"
    owner = None
    if (run_dir / "best").exists() or (run_dir / "checkpoints").exists():
        owner = "an LLM training run"
    elif results.exists():
        try:
            owner = fileio.load_json(results).get("baseline", {}).get("name")
        except (OSError, ValueError):
            owner = "unreadable results.json"
        owner = None if owner == name else f"{owner or 'an LLM training run'}"
    if owner:
        raise ConfigError(
            f"output_dir={run_dir} already holds {owner}; refusing to overwrite it - choose "
            "another output_dir for the baseline"
        )


def check_baseline_settings(settings: Settings, run_dir: Path) -> None:
    """The baseline's own settings (harmless to a training run, whose model they are not) must
    be the folder's too: other ones would put other numbers under the same name."""
    saved = run_folder.saved_settings(run_dir)
    if saved is None:
        return
    old = flatten({"baseline": saved.get("baseline")})
    new = flatten({"baseline": settings.baseline.model_dump(mode="json")})
    changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if changed:
        shown = ", ".join(f"{k} ({old.get(k)!r} -> {new.get(k)!r})" for k in changed[:8])
        raise ConfigError(
            f"{run_dir} was fitted with other settings: {shown}. A run folder belongs to one "
            "experiment: use a new output_dir (or the run's own settings)"
        )


def run(settings: Settings) -> dict:
    """Fit the configured baseline and write a run folder laid out like a training run's."""
    run_dir = Path(settings.output_dir)
    name = settings.baseline.name
    refuse_foreign_folder(run_dir, name)
    # Nothing in the folder is touched before these (as for a training run's relaunch).
    fingerprint = run_folder.check_relaunch(settings, run_dir)
    check_baseline_settings(settings, run_dir)
    if name == "eegnet":
        # Imported where it runs: torch is seconds of every other baseline's start-up.
        from eeg_emotion.baselines import eegnet

        eegnet.check_settings(settings)
    if name == "connectivity":
        connectivity.check_settings(settings)
    started = time.perf_counter()
    data = pipeline.build(settings.data, progress=False)
    if len(data.indices("test")) == 0:  # nothing to score: write nothing
        split = settings.data.split
        raise DataError(
            run_dir,
            f"the split has no test rows (data.split.protocol={split.protocol}, fold "
            f"{split.fold} of {split.num_folds}): nothing to score, nothing written",
        )
    # The folder is made once the settings and the data passed (check_relaunch refused one
    # that cannot be made), and removed again if the fit fails before anything is published.
    made = not run_dir.exists()
    with fileio.writing(run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
    try:
        published = _fit_into(settings, run_dir, data, fingerprint, started)
    except BaseException:
        if made:
            with contextlib.suppress(OSError):
                run_dir.rmdir()  # only if still empty
        raise
    results, predictions, table = published
    track(settings, run_dir, results, predictions["test"], data.class_names)
    results["table"] = table
    return results


def _fit_into(
    settings: Settings,
    run_dir: Path,
    data: pipeline.TokenData,
    fingerprint: dict[str, list[float]],
    started: float,
) -> tuple[dict, dict[str, Predictions], str]:
    """Fit, score and publish the folder's files together."""
    name = settings.baseline.name
    with fileio.writing(run_dir), fileio.staged(run_dir) as tmp:
        fileio.write_file(tmp / "config.yaml", dump_settings(settings))
        save_split(data.split, tmp / "splits.json")
        if not (run_dir / "data_files.json").exists():  # the files the folder was first fitted on
            fileio.write_file(tmp / "data_files.json", json.dumps(fingerprint, indent=1))
        results, predictions, importance = fit_score_and_map(settings, data, tmp)
        results["baseline"]["seconds"] = round(time.perf_counter() - started, 1)
        table, _ = write_results(
            tmp,
            results,
            predictions,
            targets=data.targets,
            class_names=data.class_names,
            title=f"test ({name} baseline)",
            rows=fileio.read_jsonl(tmp / "metrics.jsonl"),
            importance=importance,
        )
        fileio.write_file(tmp / "status.json", json.dumps({"status": "finished", "baseline": name}))
    return results, predictions, table


def track(
    settings: Settings,
    run_dir: Path,
    results: dict,
    test: Predictions,
    class_names: list[str],
) -> None:
    """The published baseline as a W&B run (job type "baseline"), laid out as a training run's
    dashboard, when the tracker is W&B."""
    if settings.train.tracker.kind != "wandb":
        return
    from eeg_emotion.training import tracking

    report = tracking.Dashboard(results, test, class_names)
    rows = fileio.read_jsonl(run_dir / "metrics.jsonl")  # EEGNet's epochs
    job_type = tracking.wandb_job_type(settings, kind="baseline")
    scalars = {
        f"baseline/{k}": v
        for k, v in results["baseline"].items()
        if isinstance(v, int | float | str)
    }
    tracking.log_run(
        settings, run_dir, job_type=job_type, rows=rows, report=report, summary=scalars
    )


def fit_and_score(
    settings: Settings, data: pipeline.TokenData, folder: Path
) -> tuple[dict, dict[str, Predictions]]:
    """Fit the baseline (EEGNet logs its epochs and saves its weights into `folder`) and score
    its val and test predictions; the results (with the test part) and the predictions."""
    results, predictions, _ = fit_score_and_map(settings, data, folder)
    return results, predictions


def fit_score_and_map(
    settings: Settings, data: pipeline.TokenData, folder: Path
) -> tuple[dict, dict[str, Predictions], Importance | None]:
    """`fit_and_score`, and what the baseline's scalp maps show (the band-power LR's
    coefficients per channel and band, EEGNet's occlusion importance per channel; None for the
    connectivity model)."""
    name = settings.baseline.name
    importance = None
    if name == "band_power_lr":
        probs, info, importance = band_power_lr.fit_with_importance(settings, data)
    elif name == "connectivity":
        probs, info = connectivity.fit(settings, data)
    else:
        from eeg_emotion.baselines import eegnet

        probs, info, importance = eegnet.fit_with_importance(settings, data, folder)
    labels = np.asarray(data.labels).astype(np.int64)
    everything = Predictions(probs, labels, np.asarray(data.rows))
    majorities = Majorities.of(data)
    results: dict = {}
    predictions = {}
    for part in ("val", "test"):
        idx = data.indices(part)
        if len(idx) == 0:
            continue
        predictions[part] = everything.take(idx)
        results[part] = score(
            predictions[part], data.targets, data.num_classes, majorities, settings.seed
        )
    results["baseline"] = {"name": name, **info}
    return results, predictions, importance
