"""torch Dataset and collate over a built `TokenData`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from eeg_emotion.data.pipeline import TokenData
from eeg_emotion.errors import ConfigError


class TokenDataset(Dataset):
    """Rows of one split part: "train", "val" or "test"."""

    def __init__(self, data: TokenData, part: str) -> None:
        self.data = data
        self.part = part
        self.index = data.indices(part)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = int(self.index[i])
        n = int(self.data.lengths[row])
        subject, trial, window = (int(v) for v in self.data.rows[row])
        item = {
            "input_ids": torch.from_numpy(self.data.tokens[row, :n].astype(np.int64)),
            "labels": torch.from_numpy(self.data.labels[row].astype(np.int64)),
            "subject": torch.tensor(subject),
            "trial": torch.tensor(trial),
            "window": torch.tensor(window),
        }
        if self.data.values is not None:
            item["values"] = torch.from_numpy(np.array(self.data.values[row, :n]))
        return item


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What the classifier's forward takes from a collated batch."""
    keys = ("input_ids", "attention_mask", "labels", "values")
    return {k: batch[k] for k in keys if k in batch}


@dataclass
class Collator:
    """Right-pads `input_ids` with `pad_id` (and `values`, when there are any, with 0; float16
    patches become float32) and builds the attention mask."""

    pad_id: int

    def __call__(self, batch: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        longest = max(len(item["input_ids"]) for item in batch)
        ids = torch.full((len(batch), longest), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, item in enumerate(batch):
            n = len(item["input_ids"])
            ids[row, :n] = item["input_ids"]
            mask[row, :n] = 1
        out = {"input_ids": ids, "attention_mask": mask}
        if "values" in batch[0]:  # (tokens,) or, for patches, (tokens, patch) per item
            rest = batch[0]["values"].shape[1:]
            values = torch.zeros((len(batch), longest, *rest), dtype=torch.float32)
            for row, item in enumerate(batch):
                values[row, : len(item["values"])] = item["values"]
            out["values"] = values
        for key in ("labels", "subject", "trial", "window"):
            out[key] = torch.stack([item[key] for item in batch])
        return out


class EpochShuffle(Sampler[int]):
    """A fresh permutation per epoch from (seed, epoch): the data order never depends on
    global RNG state, so a resumed run sees exactly the batches it would have seen."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


def loaders(
    data: TokenData, batch_size: int, seed: int, num_workers: int
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train (shuffled per epoch, full batches only), val and test loaders."""
    if len(data.indices("val")) == 0:
        raise ConfigError(
            "the val split is empty: model selection needs it (data.split.val_fraction)"
        )
    pad = Collator(data.pad_id)
    train = TokenDataset(data, "train")
    if len(train) < batch_size:
        raise ConfigError(
            f"train.batch_size={batch_size} exceeds the {len(train)} training windows"
        )
    train_loader = DataLoader(
        train,
        batch_size=batch_size,
        sampler=EpochShuffle(len(train), seed),
        collate_fn=pad,
        drop_last=True,
        num_workers=num_workers,
    )
    val, test = (
        DataLoader(
            TokenDataset(data, part),
            batch_size=batch_size,
            collate_fn=pad,
            num_workers=num_workers,
        )
        for part in ("val", "test")
    )
    return train_loader, val, test


def micro_batch_seed(seed: int, epoch: int, batch: int, rank: int) -> int:
    """The RNG seed (dropout masks) of one rank's micro-batch: a function of its position
    alone, so a resumed run draws exactly what an uninterrupted one draws."""
    return int(np.random.SeedSequence([seed, epoch, batch, rank]).generate_state(1)[0])
