"""Run a baseline into a run folder laid out like a training run's: config.yaml, splits.json,
results.json, test_results.txt, predictions and plots, all written by the same code as an LLM
run's (`evaluation.scoring`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from eeg_emotion.baselines import band_power_lr, eegnet
from eeg_emotion.config import Settings, dump_settings
from eeg_emotion.data import pipeline
from eeg_emotion.data.splits import save_split
from eeg_emotion.errors import ConfigError
from eeg_emotion.evaluation.scoring import Majorities, Predictions, score, write_run


def refuse_foreign_folder(run_dir: Path, name: str) -> None:
    """Never overwrite an LLM run or another baseline: only the same baseline is refitted."""
    results = run_dir / "results.json"
    owner = None
    if (run_dir / "best").exists() or (run_dir / "checkpoints").exists():
        owner = "an LLM training run"
    elif results.exists():
        try:
            owner = json.loads(results.read_text()).get("baseline", {}).get("name")
        except (OSError, ValueError):
            owner = "unreadable results.json"
        owner = None if owner == name else f"{owner or 'an LLM training run'}"
    if owner:
        raise ConfigError(
            f"output_dir={run_dir} already holds {owner}; refusing to overwrite it - choose "
            "another output_dir for the baseline"
        )


def run(settings: Settings) -> dict:
    """Fit the configured baseline and write a run folder laid out like a training run's."""
    run_dir = Path(settings.output_dir)
    name = settings.baseline.name
    refuse_foreign_folder(run_dir, name)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)  # a re-run starts its curves afresh
    started = time.perf_counter()
    data = pipeline.build(settings.data, progress=False)
    dump_settings(settings, run_dir / "config.yaml")
    save_split(data.split, run_dir / "splits.json")
    if name == "band_power_lr":
        probs, info = band_power_lr.fit(settings, data)
    else:
        probs, info = eegnet.fit(settings, data, run_dir)
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
    results["baseline"] = {"name": name, **info, "seconds": round(time.perf_counter() - started, 1)}
    table, _ = write_run(
        run_dir, results, predictions, data.targets, data.class_names, f"test ({name} baseline)"
    )
    (run_dir / "status.json").write_text(json.dumps({"status": "finished", "baseline": name}))
    results["table"] = table
    return results
