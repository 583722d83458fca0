"""EEGNet-8,2 on the normalized signal windows; the epoch with the best val score is kept, and
its occlusion importance per channel on the test split (`evaluation.importance`) is what its
scalp maps show."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from eeg_emotion.baselines.recordings import recordings
from eeg_emotion.config import EEGNetSettings, Settings
from eeg_emotion.data import pipeline, signal
from eeg_emotion.errors import ConfigError
from eeg_emotion.evaluation.importance import signal_importance
from eeg_emotion.evaluation.metrics import split_metrics
from eeg_emotion.evaluation.scalp_maps import Importance
from eeg_emotion.evaluation.scoring import Majorities

log = logging.getLogger(__name__)


def signal_windows(settings: Settings, data: pipeline.TokenData) -> np.ndarray:
    """(rows, ch, window) float32 normalized signal windows, for EEGNet."""
    pre = data.preprocessor
    return np.concatenate([pre.signal(x, subject) for subject, x in recordings(settings, data)])


def check_settings(settings: Settings) -> None:
    """Refuse, before any data is read, a window EEGNet cannot pool (32 samples at least) or a
    temporal kernel longer than the window."""
    fs = settings.data.sampling_rate
    window = signal.parse_duration(settings.data.window, fs, "data.window")
    kernel = signal.parse_duration(settings.baseline.eegnet.kernel, fs, "baseline.eegnet.kernel")
    if window < 32:
        raise ConfigError(f"eegnet needs windows of at least 32 samples; data.window is {window}")
    if kernel > window:
        raise ConfigError(
            f"baseline.eegnet.kernel={settings.baseline.eegnet.kernel!r} is {kernel} samples, "
            f"longer than data.window={settings.data.window!r} ({window} samples at {fs} Hz)"
        )


class EEGNet(nn.Module):
    """EEGNet (Lawhern et al., 2018): temporal conv -> depthwise spatial conv -> separable conv,
    one linear layer per target on the flattened features."""

    def __init__(
        self, channels: int, samples: int, targets: int, classes: int, cfg: EEGNetSettings, fs: int
    ) -> None:
        super().__init__()
        kernel = signal.parse_duration(cfg.kernel, fs, "baseline.eegnet.kernel")
        f1, f2, d = cfg.f1, cfg.f2, cfg.depth
        self.features = nn.Sequential(
            nn.Conv2d(1, f1, (1, kernel), padding="same", bias=False),
            nn.BatchNorm2d(f1),
            nn.Conv2d(f1, f1 * d, (channels, 1), groups=f1, bias=False),  # spatial filters
            nn.BatchNorm2d(f1 * d),
            nn.ELU(),
            nn.AvgPool2d((1, 4)),
            nn.Dropout(cfg.dropout),
            nn.Conv2d(f1 * d, f1 * d, (1, 16), padding="same", groups=f1 * d, bias=False),
            nn.Conv2d(f1 * d, f2, 1, bias=False),
            nn.BatchNorm2d(f2),
            nn.ELU(),
            nn.AvgPool2d((1, 8)),
            nn.Dropout(cfg.dropout),
            nn.Flatten(),
        )
        if samples < 32:
            raise ConfigError(f"eegnet needs windows of at least 32 samples, got {samples}")
        self.targets, self.classes = targets, classes
        self.head = nn.Linear(f2 * (samples // 32), targets * classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, ch, samples) -> logits (batch, targets, classes)."""
        return self.from_channels(self.per_channel(x))

    def per_channel(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, ch, samples) -> (batch, ch, f1, samples): the temporal filters, batch-normed,
        each channel on its own (the spatial filters are the first to mix channels)."""
        return self.features[:2](x.unsqueeze(1)).transpose(1, 2)

    def from_channels(self, z: torch.Tensor) -> torch.Tensor:
        """`per_channel`'s features -> logits (batch, targets, classes)."""
        out = self.head(self.features[2:](z.transpose(1, 2)))
        return out.view(len(z), self.targets, self.classes)

    def max_norm(self) -> None:
        # The paper's max-norm 1 on each spatial filter keeps them from growing on few trials.
        w: Any = self.features[2].weight
        w.data = torch.renorm(w.data, 2, 0, 1.0)


def train_epoch(
    model: EEGNet,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    order: np.ndarray,
    batch_size: int,
) -> float:
    """One pass over the rows `order` of x and y, in batches; the loss summed over rows."""
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    total = 0.0
    for i in range(0, len(order), batch_size):
        batch = order[i : i + batch_size]
        if len(batch) < 2:  # batch norm needs two samples
            continue
        logits = model(x[batch])
        loss = sum(loss_fn(logits[:, t], y[batch, t]) for t in range(y.shape[1]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.max_norm()
        total += loss.item() * len(batch)
    return total


def fit(settings: Settings, data: pipeline.TokenData, run_dir: Path) -> tuple[np.ndarray, dict]:
    """Probabilities (rows, targets, classes) for every row from the best epoch on val, and how
    it went; logs each epoch to `run_dir`/metrics.jsonl and saves the weights to
    `run_dir`/eegnet.pt (`run_dir`: where the run's files are staged)."""
    probs, info, _ = fit_with_importance(settings, data, run_dir)
    return probs, info


def fit_with_importance(
    settings: Settings, data: pipeline.TokenData, run_dir: Path
) -> tuple[np.ndarray, dict, Importance | None]:
    """`fit`, and the best epoch's occlusion importance per channel on the test split."""
    cfg = settings.baseline.eegnet
    torch.manual_seed(settings.seed)
    x = torch.from_numpy(signal_windows(settings, data))
    y = torch.from_numpy(np.asarray(data.labels).astype(np.int64))
    n_classes = data.num_classes
    train, val = data.indices("train"), data.indices("val")
    majority = Majorities.of(data).overall
    model = EEGNet(x.shape[1], x.shape[2], y.shape[1], n_classes, cfg, settings.data.sampling_rate)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(settings.seed)

    def probs_of(idx: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            parts = [torch.softmax(model(x[idx[i : i + 256]]), -1) for i in range(0, len(idx), 256)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, y.shape[1], n_classes))

    best_score, best_epoch, best_state, stale = -1.0, 0, None, 0
    metrics_path = run_dir / "metrics.jsonl"
    for epoch in range(1, cfg.epochs + 1):
        order = rng.permutation(train)
        total = train_epoch(model, opt, x, y, order, cfg.batch_size)
        val_probs = probs_of(val)
        row = {"step": epoch, "epoch": epoch, "train/loss": total / len(order)}
        if len(val):
            val_t = torch.from_numpy(val_probs)
            row["val/loss"] = float(
                sum(
                    nn.functional.nll_loss(torch.log(val_t[:, t] + 1e-9), y[val, t])
                    for t in range(y.shape[1])
                )
            )
            m = split_metrics(
                y[val].numpy(), val_probs.argmax(-1), data.targets, n_classes, majority
            )
            for t in data.targets:
                row[f"val/{t}/balanced_accuracy"] = m[t]["balanced_accuracy"]
            score = m["mean_balanced_accuracy"]
        else:
            score = -row["train/loss"]
        with metrics_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        log.info("epoch %d: %s", epoch, {k: round(v, 4) for k, v in row.items()})
        if score > best_score:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    assert best_state is not None
    model.load_state_dict(best_state)
    torch.save(best_state, run_dir / "eegnet.pt")  # tensors only: loads with weights_only=True
    everything = np.arange(len(x))
    info = {
        "best_epoch": best_epoch,
        "best_val_mean_balanced_accuracy": best_score,
        "epochs_run": epoch,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    model.eval()
    # The temporal filters once, then only the layers after them per channel: cheap enough for
    # every fit (docs/evaluation.md has the cost, which results.json keeps).
    started = time.perf_counter()
    importance = signal_importance(model, x.numpy(), data)
    info["importance_seconds"] = round(time.perf_counter() - started, 2)
    return probs_of(everything), info, importance
