"""Baselines on exactly the LLM runs' data: same windows, labels, splits and reports.

`band_power_lr`: differential entropy per band and channel (the band_power tokenizer's continuous
features, averaged over a window's sub-windows) + standardization + logistic regression per
target, with the inverse regularization strength chosen on val. `eegnet`: EEGNet-8,2 on the
normalized signal windows, the epoch with the best val score kept.

Both read the DEAP files again (the token cache holds quantized codes, not signals), normalize
them as the pipeline does (statistics from training trials only where they are shared) and keep
the pipeline's rows, labels and split, so every number lines up with an LLM run's.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

from eeg_emotion.config import EEGNetSettings, Settings, dump_settings
from eeg_emotion.data import pipeline, signal
from eeg_emotion.data.readers import deap
from eeg_emotion.data.splits import save_split
from eeg_emotion.data.tokenize import BandPowerTokenizer
from eeg_emotion.errors import ConfigError
from eeg_emotion.evaluation.metrics import split_metrics
from eeg_emotion.evaluation.scoring import Majorities, Predictions, report, write_run

log = logging.getLogger(__name__)


def recordings(settings: Settings, data: pipeline.TokenData) -> Iterator[tuple[int, np.ndarray]]:
    """Per subject, in the dataset's row order: the prepared signal (trials, channels, samples)."""
    pre = data.preprocessor
    for subject in data.subjects:
        path = deap.subject_file(settings.data.root, subject)
        yield subject, pre.prepare(deap.read_subject(path, subject).data)


def band_power_features(settings: Settings, data: pipeline.TokenData) -> np.ndarray:
    """(rows, channels * bands) differential entropy, normalized like the tokens."""
    pre = data.preprocessor
    tok = BandPowerTokenizer(settings.data, pre.num_channels, pre.window)
    out = []
    for subject, x in recordings(settings, data):
        de = pre.features(x, subject, tokenizer=tok)  # (n, n_sub, ch, bands)
        out.append(de.mean(axis=1).reshape(len(de), -1))
    return np.concatenate(out)


def signal_windows(settings: Settings, data: pipeline.TokenData) -> np.ndarray:
    """(rows, ch, window) float32 normalized signal windows, for EEGNet."""
    pre = data.preprocessor
    return np.concatenate([pre.signal(x, subject) for subject, x in recordings(settings, data)])


def fit_band_power_lr(settings: Settings, data: pipeline.TokenData) -> tuple[dict, dict]:
    """Probabilities (rows, targets, classes) for every row, and what was chosen."""
    b = settings.baseline
    x = band_power_features(settings, data)
    y = np.asarray(data.labels).astype(np.int64)
    train, val = data.indices("train"), data.indices("val")
    scaler = StandardScaler().fit(x[train])  # training rows only
    xs = scaler.transform(x)
    n_classes = data.num_classes
    majority = Majorities.of(data).overall
    weight = "balanced" if b.class_weights == "balanced" else None
    best: tuple[float, float, np.ndarray] | None = None
    scores = {}
    for c in b.c_grid:
        probs = np.zeros((len(x), len(data.targets), n_classes), np.float32)
        for i in range(len(data.targets)):
            clf = LogisticRegression(C=c, max_iter=5000, class_weight=weight)
            clf.fit(xs[train], y[train, i])
            probs[:, i][:, clf.classes_] = clf.predict_proba(xs)
        val_score = (
            split_metrics(y[val], probs[val].argmax(-1), data.targets, n_classes, majority)[
                "mean_balanced_accuracy"
            ]
            if len(val)
            else 0.0
        )
        scores[str(c)] = round(val_score, 4)
        if best is None or val_score > best[1]:
            best = (c, val_score, probs)
    assert best is not None
    info = {"C": best[0], "val_mean_balanced_accuracy_per_C": scores, "features": x.shape[1]}
    return best[2], info


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
        z = self.head(self.features(x.unsqueeze(1)))
        return z.view(len(x), self.targets, self.classes)

    def max_norm(self) -> None:
        # The paper's max-norm 1 on each spatial filter keeps them from growing on few trials.
        w = self.features[2].weight
        w.data = torch.renorm(w.data, 2, 0, 1.0)


def fit_eegnet(settings: Settings, data: pipeline.TokenData, run_dir: Path) -> tuple[dict, dict]:
    cfg = settings.baseline.eegnet
    torch.manual_seed(settings.seed)
    x = torch.from_numpy(signal_windows(settings, data))
    y = torch.from_numpy(np.asarray(data.labels).astype(np.int64))
    n_classes = data.num_classes
    train, val = data.indices("train"), data.indices("val")
    majority = Majorities.of(data).overall
    model = EEGNet(x.shape[1], x.shape[2], y.shape[1], n_classes, cfg, settings.data.sampling_rate)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(settings.seed)

    def probs_of(idx: np.ndarray) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            parts = [torch.softmax(model(x[idx[i : i + 256]]), -1) for i in range(0, len(idx), 256)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, y.shape[1], n_classes))

    best_score, best_epoch, best_state, stale = -1.0, 0, None, 0
    metrics_path = run_dir / "metrics.jsonl"
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        order = rng.permutation(train)
        total = 0.0
        for i in range(0, len(order), cfg.batch_size):
            batch = order[i : i + cfg.batch_size]
            if len(batch) < 2:  # batch norm needs two samples
                continue
            logits = model(x[batch])
            loss = sum(loss_fn(logits[:, t], y[batch, t]) for t in range(y.shape[1]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            model.max_norm()
            total += loss.item() * len(batch)
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
    return probs_of(everything), info


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
        probs, info = fit_band_power_lr(settings, data)
    else:
        probs, info = fit_eegnet(settings, data, run_dir)
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
        results[part] = report(
            predictions[part], data.targets, data.num_classes, majorities, settings.seed
        )
    results["baseline"] = {"name": name, **info, "seconds": round(time.perf_counter() - started, 1)}
    table, _ = write_run(
        run_dir, results, predictions, data.targets, data.class_names, f"test ({name} baseline)"
    )
    (run_dir / "status.json").write_text(json.dumps({"status": "finished", "baseline": name}))
    results["table"] = table
    return results
