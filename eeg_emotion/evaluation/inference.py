"""Use a finished run: re-evaluate its best model, or predict on new DEAP-format files."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import torch

from eeg_emotion import fileio
from eeg_emotion.config import Settings, load_settings
from eeg_emotion.data import pipeline
from eeg_emotion.data.dataset import Collator
from eeg_emotion.data.labels import class_names
from eeg_emotion.data.preprocessor import Preprocessor
from eeg_emotion.data.readers import deap
from eeg_emotion.data.splits import load_split
from eeg_emotion.errors import ConfigError, DataError
from eeg_emotion.evaluation import tables
from eeg_emotion.evaluation.scoring import Majorities, Predictions, score
from eeg_emotion.model.classifier import EEGEmotionClassifier


def load_run(
    run_dir: str | Path, overrides: list[str] | None = None
) -> tuple[Settings, EEGEmotionClassifier]:
    """A finished run's settings and best model."""
    run_dir = Path(run_dir)
    if not (run_dir / "best" / "classifier.json").exists():
        raise ConfigError(f"{run_dir}: no best/ model (is this a finished run folder?)")
    settings = load_settings(run_dir / "config.yaml", overrides)
    # On the GPU when there is one: a 4-bit 8B backbone is not something to run on a CPU.
    device = 0 if torch.cuda.is_available() else "cpu"
    model = EEGEmotionClassifier.from_pretrained(run_dir / "best", device=device)
    model = model.to(torch.device("cuda", 0) if device == 0 else "cpu").eval()
    return settings, model


@torch.no_grad()
def window_probs(
    model: EEGEmotionClassifier,
    tokens: np.ndarray,
    lengths: np.ndarray,
    pad_id: int,
    values: np.ndarray | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """(n, targets, classes) probabilities for token rows (and their values, for a model with
    continuous inputs)."""
    collate = Collator(pad_id)
    device = model.head[-1].weight.device
    out = []
    for start in range(0, len(tokens), batch_size):
        items = [
            {
                "input_ids": torch.from_numpy(np.asarray(tokens[i, : lengths[i]]).astype(np.int64)),
                "labels": torch.zeros(1),
                "subject": torch.tensor(0),
                "trial": torch.tensor(0),
                "window": torch.tensor(0),
                **(
                    {"values": torch.from_numpy(np.array(values[i, : lengths[i]]))}
                    if values is not None
                    else {}
                ),
            }
            for i in range(start, min(start + batch_size, len(tokens)))
        ]
        batch = collate(items)
        extra = {"values": batch["values"].to(device)} if values is not None else {}
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
                **extra,
            )["logits"]
        out.append(EEGEmotionClassifier.probabilities(logits).cpu().numpy())
    return np.concatenate(out)


def evaluate_run(
    run_dir: str | Path, split: str = "test", overrides: list[str] | None = None
) -> tuple[dict, str]:
    """Rebuild (or load from cache) the run's dataset and evaluate its best model on `split`:
    its scores (also written to RUN/eval_<split>.json) and their table."""
    run_dir = Path(run_dir)
    settings, model = load_run(run_dir, overrides)
    data = pipeline.build(settings.data, progress=False)
    if data.split != load_split(run_dir / "splits.json"):
        raise DataError(
            run_dir / "splits.json",
            "the data no longer gives this run's split "
            "(different files or settings): refusing to evaluate on other trials",
        )
    idx = data.indices(split)
    values = None if data.values is None else data.values[idx]
    probs = window_probs(model, data.tokens[idx], data.lengths[idx], data.pad_id, values)
    pred = Predictions(probs, np.asarray(data.labels)[idx].astype(np.int64), data.rows[idx])
    metrics = score(pred, data.targets, data.num_classes, Majorities.of(data), settings.seed)
    (run_dir / f"eval_{split}.json").write_text(json.dumps(metrics, indent=1))
    table = tables.text_table(tables.SplitResults.of(metrics, data.targets), f"{split} ({run_dir})")
    return metrics, table


def predict_files(run_dir: str | Path, inputs: str | Path, out_csv: str | Path) -> int:
    """Predict per window and per trial (mean probability and majority vote) for .dat files."""
    run_dir, inputs, out_csv = Path(run_dir), Path(inputs), Path(out_csv)
    if out_csv.is_dir():
        raise DataError(out_csv, "--out is a folder; give the CSV file to write")
    if not out_csv.parent.is_dir():
        raise DataError(out_csv, f"--out's folder {out_csv.parent} does not exist")
    _, model = load_run(run_dir)
    preprocessor = Preprocessor.load(run_dir / "best")  # what turns new files into its inputs
    files = sorted(inputs.glob("*.dat")) if inputs.is_dir() else [inputs]
    if not files:
        raise DataError(inputs, "no .dat files to predict on")
    targets = model.inputs.targets
    names = class_names(preprocessor.settings.labels.num_classes)
    header = ["file", "level", "trial", "window"]
    for t in targets:
        header += [f"{t}_pred"] + [f"{t}_p_{c}" for c in names] + [f"{t}_vote"]
    rows = 0
    # Written beside the target and renamed on success: a bad input never leaves a truncated
    # or partial CSV in place of an earlier good one.
    fd, tmp = fileio.temp_file(out_csv.parent, f".{out_csv.name}.")
    try:
        rows = _write_predictions(fd, files, preprocessor, model, targets, names, header)
        os.replace(tmp, out_csv)
    finally:
        tmp.unlink(missing_ok=True)
    return rows


def _write_predictions(
    fd: int,
    files: list[Path],
    preprocessor: Preprocessor,
    model: EEGEmotionClassifier,
    targets: list[str],
    names: list[str],
    header: list[str],
) -> int:
    rows = 0
    with open(fd, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(header)
        for path in files:
            # A recording never seen in training: normalized with training statistics only.
            x = preprocessor.prepare(deap.read_subject(path).data, source=path)
            tokens, lengths = preprocessor.transform(x, subject=None)
            n_trials = x.shape[0]
            n_win = len(tokens) // n_trials
            pad = preprocessor.tokenizer.pad_id
            values = preprocessor.values(x, None) if model.inputs.continuous else None
            probs = window_probs(model, tokens, lengths, pad, values).reshape(
                n_trials, n_win, len(targets), -1
            )
            for trial in range(n_trials):
                for w in range(n_win):
                    line = [path.name, "window", trial, w]
                    for i in range(len(targets)):
                        p = probs[trial, w, i]
                        line += [names[int(p.argmax())], *np.round(p.astype(float), 4).tolist(), ""]
                    out.writerow(line)
                    rows += 1
                line = [path.name, "trial", trial, "all"]
                for i in range(len(targets)):
                    mean = probs[trial, :, i].mean(0)
                    votes = np.bincount(probs[trial, :, i].argmax(-1), minlength=len(names))
                    line += [
                        names[int(mean.argmax())],
                        *np.round(mean.astype(float), 4).tolist(),
                        names[int(votes.argmax())],
                    ]
                out.writerow(line)
                rows += 1
    return rows
