"""Occlusion importance: what a trained model reads from each electrode (and band), measured on
the test split as the drop in its score when that input is replaced by a neutral value.

    drop[group, target] = score(test windows) - score(test windows, group occluded)

A group is one channel's input (and one band's, where the input has bands: the band-power
tokens' (channel, band) positions); its neutral value is the training rows' mean at each of its
positions (the normalized signal's for EEGNet and raw-signal patches, the standardized
band-power value's for continuous tokens), or the training rows' median symbol where the tokens
are quantized. Every test window goes through the model once per group, in batches: the whole
map costs (groups + 1) passes over the test split.

The score is the class-balanced mean log-probability of the true class (each class's windows
weigh alike, as in balanced accuracy). Accuracy-like scores move in steps of one window and stay
flat while a channel only shifts the model's confidence: on a small test split most channels
would score exactly 0. A positive drop: the model relied on the group; about 0: it did not;
negative: it did better without it.

`classifier_importance` maps the LLM classifier, `signal_importance` any model of the signal
windows (EEGNet calls it when fitted), `run_importance` a finished run's best model
(`eeg-emotion report RUN --importance`). Text inputs have no per-channel positions: no map.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from eeg_emotion.evaluation.scalp_maps import Importance

if TYPE_CHECKING:
    from eeg_emotion.data.pipeline import TokenData
    from eeg_emotion.model.classifier import EEGEmotionClassifier

log = logging.getLogger(__name__)
METHOD = "drop in log p(true class) when occluded"
Forward = Callable[[dict[str, torch.Tensor]], torch.Tensor]  # inputs -> (batch, targets, classes)


def balanced_log_likelihood(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(targets,): per target, the mean over the classes present of their windows' mean
    log-probability of the true class. probs (n, targets, classes), labels (n, targets)."""
    true = np.take_along_axis(probs, labels[..., None], axis=-1)[..., 0]
    logp = np.log(np.maximum(true, 1e-9))
    out = np.zeros(labels.shape[1])
    for t in range(labels.shape[1]):
        classes = np.unique(labels[:, t])
        out[t] = np.mean([logp[labels[:, t] == c, t].mean() for c in classes])
    return out


def occlusion(
    forward: Forward,
    batches: Iterable[dict[str, torch.Tensor]],
    neutral: dict[str, torch.Tensor],
    labels: np.ndarray,
    groups: np.ndarray,
) -> np.ndarray:
    """(groups, targets) drop in `balanced_log_likelihood` when each group is occluded.

    `batches`: the test windows in order, as the model's inputs, each (batch, positions, ...);
    those named in `neutral` are occluded, the others (an attention mask) pass as they are.
    `neutral[key]`: (positions, ...) replacement values. `groups`: (groups, positions) bool,
    the positions each group covers. Each batch is read once and run once per group (plus once
    as it is)."""
    masks = torch.from_numpy(np.asarray(groups, bool))
    probs: list[list[np.ndarray]] = [[] for _ in range(len(masks) + 1)]  # as is, then per group
    with torch.no_grad():
        for batch in batches:
            probs[0].append(forward(batch).float().cpu().numpy())
            for g, mask in enumerate(masks):
                occluded = dict(batch)
                for key, fill in neutral.items():
                    x = batch[key].clone()
                    # The whole group at once, in every window of the batch: one pass per group.
                    x[:, mask] = fill[mask].to(x.device, x.dtype)
                    occluded[key] = x
                probs[g + 1].append(forward(occluded).float().cpu().numpy())
    scores = np.stack([balanced_log_likelihood(np.concatenate(p), labels) for p in probs])
    return scores[0][None] - scores[1:]


def row_batches(arrays: dict[str, np.ndarray], size: int) -> Iterator[dict[str, torch.Tensor]]:
    """The rows of `arrays` (each (n, ...)) as tensors, `size` rows at a time."""
    n = len(next(iter(arrays.values())))
    for start in range(0, n, size):
        yield {k: torch.from_numpy(np.asarray(v[start : start + size])) for k, v in arrays.items()}


def _training_mean(values: np.ndarray, rows: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """The mean over `rows` of values (rows, ...) in float64, read in chunks (a memory map)."""
    total = np.zeros(values.shape[1:], np.float64)
    for start in range(0, len(rows), chunk):
        total += np.asarray(values[rows[start : start + chunk]], np.float64).sum(0)
    return total / max(len(rows), 1)


def classifier_groups(data: TokenData) -> tuple[np.ndarray, list[str] | None] | None:
    """(groups, positions) masks and the band names (None: one group per channel), in the
    order of `data.preprocessor.channels` (then bands); None for text inputs."""
    from eeg_emotion.data.channels import electrode_ids

    if data.tokenizer_kind == "text":
        return None
    channels = list(data.preprocessor.channels or ())
    at = np.asarray(data.layout.channel)
    # Patch positions name their electrode (one table for every montage), the others their
    # index among the run's channels.
    ids = electrode_ids(channels) if data.tokenizer_kind == "patch" else range(len(channels))
    if data.tokenizer_kind != "band_power":
        return np.stack([at == i for i in ids]), None
    band = np.asarray(data.layout.band)
    bands = list(data.settings.tokenizer.bands)
    masks = [(at == i) & (band == b) for i in ids for b in range(len(bands))]
    return np.stack(masks), bands


def classifier_importance(
    model: EEGEmotionClassifier,
    data: TokenData,
    batch_size: int = 32,
    autocast: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> Importance | None:
    """The classifier's occlusion importance per channel (and band) on `data`'s test split;
    None (and a line saying why) for text inputs or an empty test split."""
    from eeg_emotion.model.classifier import EEGEmotionClassifier

    found = classifier_groups(data)
    test, train = data.indices("test"), data.indices("train")
    if found is None or len(test) == 0:
        why = "text inputs have no per-channel positions" if found is None else "no test rows"
        log.info("no occlusion importance: %s", why)
        return None
    groups, bands = found
    width = int(np.max(data.lengths[test]))
    groups = groups[:, :width]
    mask = np.arange(width)[None] < np.asarray(data.lengths[test])[:, None]
    inputs = {
        "input_ids": np.where(mask, data.tokens[test, :width], data.pad_id).astype(np.int64),
        "attention_mask": mask.astype(np.int64),
    }
    if data.values is not None:  # the ids are placeholders: the values are the input
        inputs["values"] = np.asarray(data.values[test, :width], np.float32)
        neutral = {"values": _training_mean(data.values[:, :width], train)}
    else:  # quantized: the training rows' median symbol at each position
        train_ids = np.asarray(data.tokens[train, :width])
        neutral = {"input_ids": np.percentile(train_ids, 50, axis=0, method="nearest")}
    device = next(model.parameters()).device

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with autocast():
            out = model(**{k: v.to(device) for k, v in batch.items()})
        return EEGEmotionClassifier.probabilities(out["logits"])

    was_training = model.training
    model.eval()
    try:
        labels = np.asarray(data.labels[test]).astype(np.int64)
        filler = {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in neutral.items()}
        drop = occlusion(forward, row_batches(inputs, batch_size), filler, labels, groups)
    finally:
        model.train(was_training)
    return _importance(drop, data, bands)


class ChannelwiseModel(Protocol):
    """A model of signal windows that reads each channel on its own before it mixes them (EEGNet:
    temporal filters, then spatial ones): occluding a channel's features is occluding the
    channel, and the features are computed once, not once per occluded channel."""

    def per_channel(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, channels, samples) -> (batch, channels, ...), channel c from x[:, c] only."""
        ...

    def from_channels(self, z: torch.Tensor) -> torch.Tensor:
        """`per_channel`'s output -> logits (batch, targets, classes)."""
        ...


def signal_importance(
    model: ChannelwiseModel, signal: np.ndarray, data: TokenData, batch_size: int = 256
) -> Importance | None:
    """The occlusion importance per channel, on `data`'s test split, of a model of the signal
    windows `signal` (rows, channels, samples), every row of `data`: each channel in turn set
    to its training mean (over the training windows' samples)."""
    test, train = data.indices("test"), data.indices("train")
    if len(test) == 0:
        return None
    mean = _training_mean(signal, train).mean(-1, keepdims=True)  # (channels, 1)

    def features(x: np.ndarray) -> torch.Tensor:
        return model.per_channel(torch.from_numpy(np.asarray(x, np.float32)))

    def forward(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.softmax(model.from_channels(batch["z"]), -1)

    with torch.no_grad():
        neutral = {"z": features((mean * np.ones(signal.shape[1:]))[None])[0]}
        batches = (
            {"z": features(signal[test[i : i + batch_size]])}
            for i in range(0, len(test), batch_size)
        )
        labels = np.asarray(data.labels[test]).astype(np.int64)
        groups = np.eye(signal.shape[1], dtype=bool)
        drop = occlusion(forward, batches, neutral, labels, groups)
    return _importance(drop, data, None)


def _importance(drop: np.ndarray, data: TokenData, bands: list[str] | None) -> Importance:
    """(groups, targets) drops -> per target (channels,) or (channels, bands)."""
    channels = list(data.preprocessor.channels or ())
    shape = (len(channels), len(bands)) if bands else (len(channels),)
    return Importance(
        method=METHOD,
        channels=channels,
        bands=bands,
        values={t: drop[:, i].reshape(shape).round(6).tolist() for i, t in enumerate(data.targets)},
    )


def run_importance(run_dir: Path) -> Importance | None:
    """A finished run's importance: the one its fit wrote (baselines), else its best model's
    occlusion on its test split (LLM runs), computed now and saved as RUN/importance.json."""
    from eeg_emotion.config import load_settings
    from eeg_emotion.data import pipeline
    from eeg_emotion.data.splits import load_split
    from eeg_emotion.errors import DataError
    from eeg_emotion.evaluation import inference

    if not (run_dir / "results.json").is_file():
        raise DataError(
            run_dir, "not a finished run (no results.json): map a run, or each fold of a CV group"
        )
    stored = Importance.load(run_dir)
    if stored is not None:
        return stored
    if not (run_dir / "best").exists():  # a baseline without a map (the connectivity model)
        log.info("no occlusion importance: %s has no model that reads single channels", run_dir)
        return None
    unfinished = inference.check_run(run_dir)
    inference.check_data_files(load_settings(run_dir / "config.yaml"), run_dir)
    if unfinished:
        log.warning(unfinished)
    settings, model = inference.load_run(run_dir)
    data = pipeline.build(settings.data, progress=False)
    if data.split != load_split(run_dir / "splits.json"):
        raise DataError(
            run_dir / "splits.json",
            "the data no longer gives this run's split: refusing to map other trials",
        )
    device = next(model.parameters()).device
    started = time.perf_counter()
    importance = classifier_importance(
        model,
        data,
        settings.train.batch_size,
        lambda: torch.autocast(device.type, torch.bfloat16, enabled=device.type == "cuda"),
    )
    if importance is not None:
        importance.save(run_dir)
        cells = len(importance.channels) * len(importance.bands or [None])
        log.info(
            "occlusion importance: %d test windows x %d channels%s in %.1f s",
            len(data.indices("test")),
            len(importance.channels),
            f" and bands ({cells} groups)" if importance.bands else "",
            time.perf_counter() - started,
        )
    return importance
