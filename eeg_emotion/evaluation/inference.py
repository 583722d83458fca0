"""Use a finished run: re-evaluate its best model, or predict on new recordings of its source.

Neither writes into a run that a live process holds, nor over its inputs: evaluate refuses a
run folder in use (its lock names the holder), a baseline folder (no model: its results are in
results.json) and data files that changed since training; it scores a run that did not finish
with one warning naming its status. Outputs are published whole (`fileio.writing`).
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from eeg_emotion import fileio
from eeg_emotion.config import DataSettings, Settings, load_settings
from eeg_emotion.data import montage, pipeline
from eeg_emotion.data.channels import electrode_ids
from eeg_emotion.data.dataset import Collator
from eeg_emotion.data.labels import label_names
from eeg_emotion.data.montage import Montage
from eeg_emotion.data.preprocessor import Preprocessor
from eeg_emotion.data.readers import Reader, Recording, RecordingRef
from eeg_emotion.data.splits import load_split
from eeg_emotion.data.tokenize import PatchTokenizer
from eeg_emotion.errors import ConfigError, DataError
from eeg_emotion.evaluation import tables
from eeg_emotion.evaluation.cv import GROUP_FILE
from eeg_emotion.evaluation.predict_inputs import input_recordings
from eeg_emotion.evaluation.scoring import Majorities, Predictions, score
from eeg_emotion.model.classifier import EEGEmotionClassifier
from eeg_emotion.training import run_folder

log = logging.getLogger(__name__)


def load_run(
    run_dir: str | Path, overrides: list[str] | None = None
) -> tuple[Settings, EEGEmotionClassifier]:
    """A finished run's settings and best model."""
    run_dir = Path(run_dir)
    refuse_baseline_folder(run_dir)
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
    continuous or patch inputs)."""
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


def recording_probs(
    model: EEGEmotionClassifier, preprocessor: Preprocessor, rec: Recording
) -> tuple[np.ndarray, np.ndarray, Montage]:
    """A recording never seen in training, through the model: (windows, targets, classes)
    probabilities, each trial's window count, and how its channels met the model's
    (`eeg_emotion.data.montage`: extra ones left out, missing ones interpolated, or left out
    by a patch model). Normalized with training statistics only."""
    patch = isinstance(preprocessor.tokenizer, PatchTokenizer)
    fitted = montage.match(preprocessor.channels or (), rec.channels, patch=patch, where=rec.path)
    pre = preprocessor.reading(fitted.used) if fitted.dropped else preprocessor
    trials = pre.prepare(montage.complete(rec, fitted))
    tokens, lengths = pre.transform(trials, subject=None)
    counts = pre.window_counts(trials)
    valued = model.inputs.continuous or model.inputs.patch > 0
    values = pre.values(trials, None) if valued else None
    if not fitted.dropped:
        return window_probs(model, tokens, lengths, pre.tokenizer.pad_id, values), counts, fitted
    with model.reading_electrodes(electrode_ids(fitted.used)) as kept:
        # The recording's tokens are the model's positions of its electrodes, in order.
        values = None if values is None else values[:, :kept]
        lengths = np.minimum(lengths, kept)
        probs = window_probs(model, tokens[:, :kept], lengths, pre.tokenizer.pad_id, values)
    return probs, counts, fitted


def warn_montage(fitted: Montage, where: Path, said: set[str]) -> set[str]:
    """Warn of a recording's montage (`Montage.warning`), once per distinct one in `said`."""
    line = fitted.warning()
    if line is not None and line not in said:
        log.warning("warning: %s %s", where, line)
        said.add(line)
    return said


def refuse_baseline_folder(run_dir: Path) -> None:
    """A baseline's folder or a CV group has no model to load: say so, and where its results
    are."""
    if (run_dir / GROUP_FILE).exists():
        raise ConfigError(
            f"{run_dir} is a CV group, not a run: evaluate or predict with one of its folds "
            f"({run_dir / 'fold-0'} ..), or pool them with aggregate"
        )
    results, status = run_dir / "results.json", run_dir / "status.json"
    if (run_dir / "best").exists():
        return
    for path in (status, results):
        try:
            info = fileio.load_json(path, default={})
        except (OSError, ValueError):
            continue  # unreadable: not evidence of anything
        name = info.get("baseline") if isinstance(info, dict) else None
        if isinstance(name, dict):
            name = name.get("name")
        if name:
            raise DataError(
                run_dir,
                f"is a baseline run folder ({name}), with no model to evaluate: its results "
                f"are in {results} (eeg-emotion report {run_dir} writes them up)",
            )


def live_holder(run_dir: Path) -> dict[str, Any] | None:
    """Who holds the run folder's lock, if that process may still be alive (as `RunLock`
    judges it: not gone from this host, not an earlier run of this SLURM job, refreshed)."""
    lock = run_folder.RunLock(run_dir)
    try:
        holder = fileio.load_json(lock.path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        holder = {}  # being written: the process that creates a lock is alive
    try:
        return holder if lock._stale(holder) is None else None
    except FileNotFoundError:  # released meanwhile
        return None


def check_run(run_dir: Path) -> str | None:
    """Before anything is loaded: refuse a folder that is not a run with a model, or that a
    live process holds. Returns the warning to give when the run did not finish."""
    if not run_dir.is_dir():
        raise DataError(run_dir, "not a run folder (no such folder)")
    refuse_baseline_folder(run_dir)
    holder = live_holder(run_dir)
    if holder is not None:
        raise ConfigError(
            f"{run_dir} is in use by a run on host {holder.get('host')}, PID "
            f"{holder.get('pid')} (since {holder.get('since')}): evaluate it once that run has "
            "finished or stopped"
        )
    status_file = run_dir / "status.json"
    status = fileio.read_json(status_file) if status_file.exists() else {}
    if not isinstance(status, dict):
        raise DataError(status_file, "not a run's status (a JSON object)")
    state = (
        f"status {status.get('status', 'unknown: no status.json')}, step "
        f"{status.get('global_step', '?')}, epoch {status.get('epoch', '?')}"
    )
    if not (run_dir / "best" / "classifier.json").exists():
        raise ConfigError(f"{run_dir}: no best/ model ({state}; is this a finished run folder?)")
    if status.get("status") == "finished":
        return None
    return f"warning: {run_dir} is not a finished run ({state}): scoring the best model it saved"


def check_data_files(settings: Settings, run_dir: Path) -> None:
    """The data files must be those the run was trained on (name, size, modification time, as
    recorded in RUN/data_files.json when training started)."""
    saved_file = run_dir / "data_files.json"
    if not saved_file.exists():
        return  # a run from before the files were recorded: the split check below still holds
    saved = fileio.read_json(saved_file)
    if not isinstance(saved, dict):
        raise DataError(saved_file, "not a list of data files (a JSON object)")
    root = settings.data.root
    now = run_folder.data_fingerprint(pipeline.data_files(settings.data))
    changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
    if changed:
        shown = ", ".join(changed[:8]) + (
            f" and {len(changed) - 8} more" if len(changed) > 8 else ""
        )
        raise DataError(
            saved_file,
            f"the data files in {root} changed since the run was trained: {shown} (size, "
            "modification time, added or removed); refusing to score the model on other data. "
            "Restore the files (a copy must keep sizes and times: cp -p, rsync -a)",
        )


def evaluate_run(
    run_dir: str | Path,
    split: str = "test",
    overrides: list[str] | None = None,
    *,
    save: bool = True,
) -> tuple[dict, str]:
    """Rebuild (or load from cache) the run's dataset and evaluate its best model on `split`:
    its scores and their table. With `save`, the scores are also written to
    RUN/eval_<split>.json (`save_evaluation`: a caller that prints the table first saves
    after)."""
    run_dir = Path(run_dir)
    unfinished = check_run(run_dir)
    check_data_files(load_settings(run_dir / "config.yaml", overrides), run_dir)
    if unfinished:  # every refusal first: one message either way
        log.warning(unfinished)
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
    table = tables.text_table(tables.SplitResults.of(metrics, data.targets), f"{split} ({run_dir})")
    if save:
        save_evaluation(run_dir, split, metrics)
    return metrics, table


def save_evaluation(run_dir: str | Path, split: str, metrics: dict) -> Path:
    """RUN/eval_<split>.json, replacing an earlier one only once the new one is complete; a
    failure to write it is one StorageError naming it."""
    path = Path(run_dir) / f"eval_{split}.json"
    with fileio.writing(path), fileio.publish_file(path) as tmp:
        tmp.write_text(json.dumps(metrics, indent=1))
    return path


def prediction_files(
    inputs: Path, out_csv: Path, data: DataSettings | None = None, mne: list[str] | None = None
) -> list[tuple[Reader, RecordingRef]]:
    """The recordings to predict on, as the run's source (`data`; None: DEAP) finds them in
    `inputs` (a folder, or one of its files); refuses an --out that cannot be written or that
    would replace one of them, before anything is loaded."""
    if out_csv.is_dir():
        raise DataError(out_csv, "--out is a folder; give the CSV file to write")
    if not out_csv.parent.is_dir():
        blocked = next((p for p in out_csv.parents if p.exists()), None)
        problem = (
            "does not exist"
            if blocked is None or blocked.is_dir()
            else f"cannot hold files: {blocked} is a file, not a folder"
        )
        raise DataError(out_csv, f"--out's folder {out_csv.parent} {problem}")
    refs = input_recordings(inputs, data or DataSettings(), mne)
    files = list(dict.fromkeys(r.path for _, r in refs))
    same = [f for f in files if _same_file(f, out_csv)]
    if same:
        raise DataError(
            out_csv,
            f"--out is the input recording {same[0]}: the CSV would replace it; give another file",
        )
    own = {f.suffix.lower() for f in files}
    if out_csv.suffix.lower() in own:
        raise DataError(
            out_csv,
            f"--out ends in {out_csv.suffix}, the recordings' own extension: give a CSV file name",
        )
    return refs


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)  # a hard link, a case-insensitive file system
    except OSError:
        return False


def predict_files(
    run_dir: str | Path, inputs: str | Path, out_csv: str | Path, mne: list[str] | None = None
) -> int:
    """Predict per window and per trial (mean probability and majority vote) for recordings
    of the run's source, or in any format the `mne` reader reads (`predict_inputs`; `mne`: its
    option overrides)."""
    run_dir, inputs, out_csv = Path(run_dir), Path(inputs), Path(out_csv)
    config = run_dir / "config.yaml"
    data = load_settings(config).data if config.is_file() else None
    refs = prediction_files(inputs, out_csv, data, mne)
    _, model = load_run(run_dir)
    preprocessor = Preprocessor.load(run_dir / "best")  # what turns new files into its inputs
    settings = preprocessor.settings
    targets = model.inputs.targets
    names = label_names(settings)
    header = ["file", "level", "trial", "window"]
    for t in targets:
        header += [f"{t}_pred"] + [f"{t}_p_{c}" for c in names] + [f"{t}_vote"]
    # Written beside the target and renamed on success: a bad input never leaves a truncated
    # or partial CSV in place of an earlier good one. (Reading a recording raises DataError, so
    # an OSError here is about the CSV.)
    root = inputs if inputs.is_dir() else inputs.parent
    with (
        fileio.writing(out_csv),
        fileio.publish_file(out_csv) as tmp,
        tmp.open("w", newline="") as f,
    ):
        out = csv.writer(f)
        out.writerow(header)
        said: set[str] = set()  # each montage's warning once
        return sum(
            _write_predictions(out, reader, ref, root, preprocessor, model, names, said)
            for reader, ref in refs
        )


def _write_predictions(
    out: Any,
    reader: Reader,
    ref: RecordingRef,
    root: Path,
    preprocessor: Preprocessor,
    model: EEGEmotionClassifier,
    names: list[str],
    said: set[str],
) -> int:
    """One recording's rows: each trial's windows, then the trial. DEAP names a trial by its
    index in the file, the other sources by its key s<subject>-<session>-t<number>."""
    rec = reader.read(ref)
    probs, counts, fitted = recording_probs(model, preprocessor, rec)
    said = warn_montage(fitted, ref.path, said)
    deap_file = rec.source == "deap"
    name = ref.path.name if deap_file else pipeline.file_label(root, ref.path)
    rows, start = 0, 0
    for trial, n_win in enumerate(counts.tolist()):
        mine = probs[start : start + n_win]  # (windows, targets, classes)
        start += n_win
        label = trial if deap_file else rec.trial_key(trial)
        for w in range(n_win):
            line = [name, "window", label, w]
            for p in mine[w]:
                line += [names[int(p.argmax())], *np.round(p.astype(float), 4).tolist(), ""]
            out.writerow(line)
            rows += 1
        line = [name, "trial", label, "all"]
        for i in range(mine.shape[1]):
            mean = mine[:, i].mean(0)
            votes = np.bincount(mine[:, i].argmax(-1), minlength=len(names))
            line += [
                names[int(mean.argmax())],
                *np.round(mean.astype(float), 4).tolist(),
                names[int(votes.argmax())],
            ]
        out.writerow(line)
        rows += 1
    return rows
