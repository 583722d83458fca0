"""Typed settings: a YAML file plus `key.sub=value` overrides, validated up front.

Every section is a small pydantic model with `extra="forbid"`, so an unknown key or a bad value
is one clear `ConfigError` before any work starts. The resolved settings are what a run saves.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from eeg_emotion.errors import ConfigError

TARGETS = ("valence", "arousal", "dominance", "liking")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LabelSettings(Section):
    targets: list[Literal["valence", "arousal", "dominance", "liking"]] = ["valence", "arousal"]
    num_classes: Literal[2, 3] = 2
    # 2 classes: high when rating > threshold (">", the common convention) or >= (TorchEEG's).
    threshold: float = Field(5.0, ge=1, le=9)
    high_if: Literal[">", ">="] = ">"
    # 3 classes: low / mid / high split at these two ratings, compared with `high_if`.
    cuts: tuple[float, float] = (3.67, 6.33)

    @model_validator(mode="after")
    def _check(self) -> LabelSettings:
        if not self.targets:
            raise ValueError("targets must name at least one of " + ", ".join(TARGETS))
        if len(set(self.targets)) != len(self.targets):
            raise ValueError(f"targets has duplicates: {self.targets}")
        if not 1 <= self.cuts[0] < self.cuts[1] <= 9:
            raise ValueError(f"cuts must be increasing ratings within 1..9, got {self.cuts}")
        return self


class QuantizeSettings(Section):
    num_bins: int = Field(8, ge=2, le=4096)
    edges: Literal["quantile", "uniform"] = "quantile"
    # Values below/above these training-set percentiles land in the first/last bin.
    low_pct: float = Field(5.0, ge=0, lt=50)
    high_pct: float = Field(95.0, gt=50, le=100)
    per_channel: bool = False


class TokenizerSettings(Section):
    kind: Literal["text", "symbols", "band_power"] = "band_power"
    # text: symbols written as code strings and tokenized by a Hugging Face tokenizer.
    hf_tokenizer: str = "embedded"
    code: Literal["binary", "decimal"] = "binary"
    max_tokens: int = Field(1024, ge=1)
    truncate: bool = False
    # symbols: one token per (decimated) sample.
    layout: Literal["time_major", "channel_major"] = "time_major"
    decimate: int = Field(1, ge=1)
    # band_power: differential entropy per channel, band and sub-window.
    sub_window: int | str = "2s"
    sub_stride: int | str = "2s"
    bands: dict[str, tuple[float, float]] = {
        "theta": (4.0, 8.0),
        "alpha": (8.0, 14.0),
        "beta": (14.0, 31.0),
        "gamma": (31.0, 45.0),
    }


class SplitSettings(Section):
    protocol: Literal["trial", "cross_trial", "loso", "kfold", "segment"] = "trial"
    val_fraction: float = Field(0.15, ge=0, lt=1)
    test_fraction: float = Field(0.15, ge=0, lt=1)
    num_folds: int = Field(5, ge=2)
    fold: int = Field(0, ge=0)
    seed: int = 0

    @model_validator(mode="after")
    def _check(self) -> SplitSettings:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave data for training")
        if self.protocol == "kfold" and self.fold >= self.num_folds:
            raise ValueError(f"fold {self.fold} is out of range for num_folds={self.num_folds}")
        return self


class DataSettings(Section):
    root: str = "data/deap"
    cache_dir: str = "cache"
    subjects: list[int] | None = None  # None: every sNN.dat found in root
    sampling_rate: int = Field(128, ge=1)
    baseline: Literal["drop", "subtract", "keep"] = "drop"
    baseline_seconds: float = Field(3.0, ge=0)
    channels: list[str] | Literal["eeg", "all"] = "eeg"
    normalize: Literal["trial", "subject", "none"] = "trial"
    window: int | str = "8s"
    stride: int | str = "4s"
    labels: LabelSettings = LabelSettings()
    quantize: QuantizeSettings = QuantizeSettings()
    tokenizer: TokenizerSettings = TokenizerSettings()
    split: SplitSettings = SplitSettings()
    workers: int = Field(1, ge=1)


class Settings(Section):
    seed: int = 0
    output_dir: str = "runs/default"
    data: DataSettings = DataSettings()


def parse_overrides(tokens: list[str]) -> dict[str, Any]:
    """`["data.root=/x", "data.split.fold=2"]` -> nested dict; values are parsed as YAML."""
    tree: dict[str, Any] = {}
    for token in tokens:
        key, sep, raw = token.lstrip("-").partition("=")
        if not sep or not key:
            raise ConfigError(f"override {token!r} is not of the form key.sub=value")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {token!r} conflicts with an earlier one")
        node[parts[-1]] = value
    return tree


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _known_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys = []
    for name, field in model.model_fields.items():
        keys.append(prefix + name)
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys += _known_keys(field.annotation, prefix + name + ".")
    return keys


def _explain(error: ValidationError, source: str, model: type[BaseModel]) -> ConfigError:
    lines = []
    known = _known_keys(model)
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"] if not str(p).startswith("function-"))
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(where, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            lines.append(f"unknown key '{where}'{hint}")
        else:
            got = item.get("input")
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            lines.append(f"{where or 'settings'}: {item['msg']}{shown}")
    return ConfigError(f"{source}: " + "; ".join(dict.fromkeys(lines)))


def load_settings(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    model: type[BaseModel] = Settings,
) -> Any:
    """Read a YAML file (optional), apply overrides, validate; raise one ConfigError on failure."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read config ({exc.strerror})") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of settings")
    if overrides:
        source += " + overrides"
        try:
            raw = merge(raw, parse_overrides(overrides))
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise _explain(exc, source, model) from None


def dump_settings(settings: BaseModel, path: str | Path | None = None) -> str:
    text = yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
    if path is not None:
        Path(path).write_text(text)
    return text
