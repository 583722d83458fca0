"""Use a finished run: re-evaluate its best model, or predict on new DEAP-format files."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import torch

from eeg_emotion import fileio
from eeg_emotion.classifier import EEGEmotionClassifier
from eeg_emotion.config import Settings, load_settings
from eeg_emotion.data import deap, pipeline, preprocess
from eeg_emotion.data.dataset import Collator
from eeg_emotion.data.splits import load_split
from eeg_emotion.data.tokenize import build_tokenizer
from eeg_emotion.errors import ConfigError, DataError
from eeg_emotion.metrics import format_table, full_report, majority_classes, subject_majorities


def load_run(
    run_dir: str | Path, overrides: list[str] | None = None
) -> tuple[Settings, EEGEmotionClassifier]:
    run_dir = Path(run_dir)
    if not (run_dir / "best" / "classifier.json").exists():
        raise ConfigError(f"{run_dir}: no best/ model (is this a finished run folder?)")
    settings = load_settings(run_dir / "config.yaml", overrides)
    # On the GPU when there is one: a 4-bit 8B backbone is not something to run on a CPU.
    device = 0 if torch.cuda.is_available() else "cpu"
    model = EEGEmotionClassifier.from_pretrained(run_dir / "best", device=device)
    return settings, model.to(torch.device("cuda", 0) if device == 0 else "cpu").eval()


@torch.no_grad()
def window_probs(
    model: EEGEmotionClassifier,
    tokens: np.ndarray,
    lengths: np.ndarray,
    pad_id: int,
    batch_size: int = 32,
) -> np.ndarray:
    """(n, targets, classes) probabilities for token rows."""
    collate = Collator(pad_id)
    out = []
    for start in range(0, len(tokens), batch_size):
        items = [
            {
                "input_ids": torch.from_numpy(np.asarray(tokens[i, : lengths[i]]).astype(np.int64)),
                "labels": torch.zeros(1),
                "subject": torch.tensor(0),
                "trial": torch.tensor(0),
                "window": torch.tensor(0),
            }
            for i in range(start, min(start + batch_size, len(tokens)))
        ]
        batch = collate(items)
        device = model.head[-1].weight.device
        with torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(
                input_ids=batch["input_ids"].to(device),
                attention_mask=batch["attention_mask"].to(device),
            )["logits"]
        probs = torch.stack([torch.softmax(v.float(), -1) for v in logits.values()], 1)
        out.append(probs.cpu().numpy())
    return np.concatenate(out)


def evaluate_run(
    run_dir: str | Path, split: str = "test", overrides: list[str] | None = None
) -> dict:
    """Rebuild (or load from cache) the run's dataset and evaluate its best model on `split`."""
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
    probs = window_probs(model, data.tokens[idx], data.lengths[idx], data.pad_id)
    labels = np.asarray(data.labels)[idx].astype(np.int64)
    train = np.asarray(data.labels)[data.indices("train")].astype(np.int64)
    n_classes = int(data.meta["num_classes"])
    metrics = full_report(
        probs,
        labels,
        np.asarray(data.rows)[idx],
        data.targets,
        n_classes,
        majority_classes(train, n_classes),
        settings.seed,
        subject_majorities(train, np.asarray(data.rows)[data.indices("train"), 0], n_classes),
    )
    (run_dir / f"eval_{split}.json").write_text(json.dumps(metrics, indent=1))
    metrics["table"] = format_table(metrics, data.targets, f"{split} ({run_dir})")
    return metrics


def tokenize_recording(settings: Settings, run_dir: Path, rec: deap.Recording):
    """Tokens for every window of a new recording, with the run's training-fitted edges."""
    s = settings.data
    window, stride, n_channels = pipeline.geometry(s)
    tokenizer = build_tokenizer(s, n_channels, window)
    tokenizer.load_edges(np.load(run_dir / "best" / "edges.npy"))
    x = preprocess.prepare(rec.data, s)
    win = preprocess.windows(x, window, stride)
    t, w = win.shape[:2]
    if s.normalize == "trial":
        mean, std = preprocess.moments_to_stats(preprocess.channel_moments(x))
        mean, std = np.repeat(mean, w, 0), np.repeat(std, w, 0)
    elif s.normalize == "subject":  # a new subject has no training trials: pooled training stats
        mean, std = np.load(run_dir / "best" / "train_norm.npy")
        mean, std = np.tile(mean, (t * w, 1)), np.tile(std, (t * w, 1))
    else:
        mean = np.zeros((t * w, x.shape[1]), np.float32)
        std = np.ones_like(mean)
    feats = tokenizer.features(win.reshape(t * w, *win.shape[2:]))
    tokens, lengths = tokenizer.encode(tokenizer.normalize(feats, mean, std))
    return tokens, lengths, t, w, tokenizer.pad_id


def predict_files(run_dir: str | Path, inputs: str | Path, out_csv: str | Path) -> int:
    """Predict per window and per trial (mean probability and majority vote) for .dat files."""
    run_dir, inputs, out_csv = Path(run_dir), Path(inputs), Path(out_csv)
    if out_csv.is_dir():
        raise DataError(out_csv, "--out is a folder; give the CSV file to write")
    if not out_csv.parent.is_dir():
        raise DataError(out_csv, f"--out's folder {out_csv.parent} does not exist")
    settings, model = load_run(run_dir)
    files = sorted(inputs.glob("*.dat")) if inputs.is_dir() else [inputs]
    if not files:
        raise DataError(inputs, "no .dat files to predict on")
    targets, classes = model.inputs.targets, settings.data.labels
    from eeg_emotion.data.labels import class_names

    names = class_names(classes)
    header = ["file", "level", "trial", "window"]
    for t in targets:
        header += [f"{t}_pred"] + [f"{t}_p_{c}" for c in names] + [f"{t}_vote"]
    rows = 0
    # Written beside the target and renamed on success: a bad input never leaves a truncated
    # or partial CSV in place of an earlier good one.
    fd, tmp = fileio.temp_file(out_csv.parent, f".{out_csv.name}.")
    try:
        rows = _write_predictions(fd, files, settings, run_dir, model, targets, names, header)
        os.replace(tmp, out_csv)
    finally:
        tmp.unlink(missing_ok=True)
    return rows


def _write_predictions(
    fd: int,
    files: list[Path],
    settings: Settings,
    run_dir: Path,
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
            rec = deap.read_subject(path)
            tokens, lengths, n_trials, n_win, pad = tokenize_recording(settings, run_dir, rec)
            probs = window_probs(model, tokens, lengths, pad).reshape(
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
