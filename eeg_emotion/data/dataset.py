"""torch Dataset and collate over a built `TokenData`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from eeg_emotion.data.pipeline import TokenData
from eeg_emotion.data.signal import parse_duration
from eeg_emotion.data.tokenize import PatchTokenizer
from eeg_emotion.errors import ConfigError


@dataclass(frozen=True)
class Crop:
    """Training crops of patch inputs (`train.crop`): `patches` whole patches re-cut from a
    window's signal at a sample offset drawn from (seed, epoch, row) alone, so a resumed run
    draws exactly the crops an uninterrupted one draws. Tokens are time-major (token = patch x
    channels + channel), so the crop's tokens take the layout's first positions: time steps
    0..patches-1, every channel in its place."""

    patches: int  # in the crop
    patch: int  # samples per patch
    channels: int
    window_patches: int  # whole patches of the cached window
    seed: int

    @property
    def samples(self) -> int:
        return self.patches * self.patch

    def offset(self, epoch: int, row: int) -> int:
        """The crop's first sample in the window: any sample, not only a patch boundary."""
        last = (self.window_patches - self.patches) * self.patch
        return int(np.random.default_rng([self.seed, epoch, row]).integers(last + 1))

    def cut(self, values: np.ndarray, offset: int) -> np.ndarray:
        """A window's cached patches (tokens, patch), time-major -> the crop's, the same way."""
        ch, p = self.channels, self.patch
        first = offset // p  # only the patches the crop overlaps are read from the cache
        count = self.patches + (offset % p > 0)
        block = np.asarray(values[first * ch : (first + count) * ch])
        signal = block.reshape(count, ch, p).transpose(1, 0, 2).reshape(ch, count * p)
        start = offset - first * p
        piece = signal[:, start : start + self.samples]
        return piece.reshape(ch, self.patches, p).transpose(1, 0, 2).reshape(-1, p)


def training_crop(crop: int | str | None, data: TokenData, seed: int) -> Crop | None:
    """The crop `train.crop` asks for on `data`, or None; a ConfigError naming the setting
    where the data cannot give it."""
    if crop is None:
        return None
    shown = f"train.crop={crop!r}"
    settings = data.settings
    kind = settings.tokenizer.kind
    if kind != "patch":  # Settings refuse it too; the train settings may come with other data
        raise ConfigError(
            f"{shown} re-cuts the signal of patch inputs: it needs "
            f"data.tokenizer.kind=patch, not {kind}"
        )
    if settings.tokenizer.layout != "time_major":
        raise ConfigError(
            f"{shown} needs data.tokenizer.layout=time_major (a crop's tokens must be the "
            "layout's first time steps), not channel_major"
        )
    tok = data.preprocessor.tokenizer
    assert isinstance(tok, PatchTokenizer)
    whole = tok.n_patches * tok.num_channels
    if tok.tokens_per_window < whole:
        raise ConfigError(
            f"{shown} needs every patch of the window in the cache, but "
            f"data.tokenizer.truncate keeps {tok.tokens_per_window} of its {whole} tokens "
            "(raise data.tokenizer.max_tokens, or shorten data.window)"
        )
    samples = parse_duration(crop, settings.sampling_rate, "train.crop")
    patch = f"data.tokenizer.patch={settings.tokenizer.patch!r} ({tok.patch} samples)"
    if samples % tok.patch:
        raise ConfigError(
            f"{shown} ({samples} samples) is not a whole number of patches of {patch}"
        )
    if samples > tok.window:
        raise ConfigError(
            f"{shown} ({samples} samples) is longer than the window: data.window="
            f"{settings.window!r} ({tok.window} samples)"
        )
    return Crop(samples // tok.patch, tok.patch, tok.num_channels, tok.n_patches, seed)


class TokenDataset(Dataset):
    """Rows of one split part: "train", "val" or "test"; with `crop`, each row's crop of the
    epoch set by `set_epoch` (training only: val and test read every full window)."""

    def __init__(self, data: TokenData, part: str, crop: Crop | None = None) -> None:
        self.data = data
        self.part = part
        self.index = data.indices(part)
        self.crop = crop
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        row = int(self.index[i])
        n = int(self.data.lengths[row])
        subject, trial, window = (int(v) for v in self.data.rows[row])
        values = None if self.data.values is None else self.data.values[row, :n]
        if self.crop is not None and values is not None:
            values = self.crop.cut(values, self.crop.offset(self.epoch, row))
            n = len(values)  # the layout's first positions
        item = {
            "input_ids": torch.from_numpy(self.data.tokens[row, :n].astype(np.int64)),
            "labels": torch.from_numpy(self.data.labels[row].astype(np.int64)),
            "subject": torch.tensor(subject),
            "trial": torch.tensor(trial),
            "window": torch.tensor(window),
        }
        if values is not None:
            item["values"] = torch.from_numpy(np.array(values))
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
    global RNG state, so a resumed run sees exactly the batches it would have seen. The epoch
    is passed on to `dataset` (its crops): Accelerate's loaders call the sampler's `set_epoch`
    however they shard, but the dataset's only where the sampler is not sharded."""

    def __init__(self, n: int, seed: int, dataset: TokenDataset | None = None) -> None:
        self.n, self.seed, self.epoch = n, seed, 0
        self.dataset = dataset

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.dataset is not None:
            self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.n).tolist())

    def __len__(self) -> int:
        return self.n


def loaders(
    data: TokenData,
    batch_size: int,
    seed: int,
    num_workers: int,
    crop: Crop | None = None,
) -> tuple[DataLoader, DataLoader, DataLoader]:
    """Train (shuffled per epoch, full batches only, each window cropped when `crop` is given),
    val and test loaders (every full window)."""
    if len(data.indices("val")) == 0:
        raise ConfigError(
            "the val split is empty: model selection needs it (data.split.val_fraction)"
        )
    pad = Collator(data.pad_id)
    train = TokenDataset(data, "train", crop)
    if len(train) < batch_size:
        raise ConfigError(
            f"train.batch_size={batch_size} exceeds the {len(train)} training windows"
        )
    train_loader = DataLoader(
        train,
        batch_size=batch_size,
        sampler=EpochShuffle(len(train), seed, train),
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
