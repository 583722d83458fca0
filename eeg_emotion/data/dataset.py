"""torch Dataset and collate over a built `TokenData`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from eeg_emotion.data.pipeline import TokenData


class TokenDataset(Dataset):
    """Rows of one split part ("train", "val", "test"), or all rows when part is None."""

    def __init__(self, data: TokenData, part: str | None = None) -> None:
        self.data = data
        self.part = part
        self.index = np.arange(len(data.rows)) if part is None else data.indices(part)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = int(self.index[i])
        n = int(self.data.lengths[row])
        subject, trial, window = (int(v) for v in self.data.rows[row])
        return {
            "input_ids": torch.from_numpy(self.data.tokens[row, :n].astype(np.int64)),
            "labels": torch.from_numpy(self.data.labels[row].astype(np.int64)),
            "subject": torch.tensor(subject),
            "trial": torch.tensor(trial),
            "window": torch.tensor(window),
        }


@dataclass
class Collator:
    """Right-pads `input_ids` with `pad_id` and builds the attention mask."""

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
        for key in ("labels", "subject", "trial", "window"):
            out[key] = torch.stack([item[key] for item in batch])
        return out
