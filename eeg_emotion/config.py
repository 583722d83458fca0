"""Typed settings: a YAML file plus `key.sub=value` overrides, validated up front.

Every section is a small pydantic model with `extra="forbid"`, so an unknown key or a bad value
is one clear `ConfigError` before any work starts. The resolved settings are what a run saves.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from eeg_emotion.data import preprocess_settings as pre
from eeg_emotion.data.source_options import DEAP_BASELINE_SECONDS, DeapOptions, SourceOptions
from eeg_emotion.errors import ConfigError
from eeg_emotion.model_settings import ModelSettings
from eeg_emotion.numbers import (
    DAY_SECONDS,
    Duration,
    LearningRate,
    Probability,
    Seconds,
    Seed,
    real,
    whole,
)
from eeg_emotion.settings_base import Section

# A target is one of the data source's ratings or its category (SEED's `emotion`): which names
# a source has is checked against `data.source` (`DataSettings`), not fixed here.
Target = str
# Every target name of the sources whose targets are fixed (the others name theirs in
# data.options), in DEAP's order first.
TARGETS: tuple[str, ...] = ("valence", "arousal", "dominance", "liking", "familiarity", "emotion")
Hertz = Annotated[float, real(0, 100_000)]  # a band edge


class LabelSettings(Section):
    targets: list[Target] = Field(["valence", "arousal"])
    # Ratings: 2 or 3 levels. Categories: their number (SEED 3, SEED-IV 4), the default there.
    num_classes: Annotated[int, whole(2, 100)] = 2
    # 2 classes: high when rating > threshold (">", the common convention) or >= (TorchEEG's).
    # The threshold is on the source's scale: 5 on DEAP's and AMIGOS' 1..9, 3 on DREAMER's 1..5
    # (the defaults; DREAMER's high is then 4 or 5, and 3, 4 or 5 with high_if: ">=").
    threshold: Annotated[float, real(-1e6, 1e6)] = 5.0
    high_if: Literal[">", ">="] = ">"
    # 3 classes: low / mid / high split at these two ratings, compared with `high_if`
    # (default: the thirds of the source's scale).
    cuts: tuple[Annotated[float, real(-1e6, 1e6)], Annotated[float, real(-1e6, 1e6)]] = (3.67, 6.33)

    @model_validator(mode="after")
    def _check(self) -> LabelSettings:
        if not self.targets:
            raise ValueError("targets must name at least one target")
        if len(set(self.targets)) != len(self.targets):
            raise ValueError(f"targets has duplicates: {self.targets}")
        if not self.cuts[0] < self.cuts[1]:
            raise ValueError(f"cuts must be increasing ratings, got {self.cuts}")
        return self


class QuantizeSettings(Section):
    num_bins: Annotated[int, whole(2, 4096)] = 8
    edges: Literal["quantile", "uniform"] = "quantile"
    # Values below/above these training-set percentiles land in the first/last bin.
    low_pct: Annotated[float, real(0, 50, high_open=True)] = 5.0
    high_pct: Annotated[float, real(50, 100, low_open=True)] = 95.0
    per_channel: bool = False
    # Which windows the edges (and continuous values' statistics) are fitted on. `train`: the
    # training split only. `every_window_leaky` reproduces the original method, which fitted
    # them on every window, test windows included: a leak, kept only to measure it.
    fit_on: Literal["train", "every_window_leaky"] = "train"


class TokenizerSettings(Section):
    kind: Literal["text", "symbols", "band_power", "patch"] = "band_power"
    # text: symbols written as code strings and tokenized by a Hugging Face tokenizer.
    hf_tokenizer: str = "embedded"
    code: Literal["binary", "decimal"] = "binary"
    max_tokens: Annotated[int, whole(1, 2**20)] = 1024
    truncate: bool = False
    # symbols / band_power: each token also carries its value (standardized with training
    # statistics), which the model projects into the hidden size next to the channel, band and
    # time embeddings; the bins' ids are then not used. false: the quantized tokens alone.
    continuous: bool = False
    # symbols: one token per (decimated) sample.
    layout: Literal["time_major", "channel_major"] = "time_major"
    decimate: Annotated[int, whole(1, 10_000)] = 1
    # band_power: differential entropy per channel, band and sub-window.
    sub_window: Duration = "2s"
    sub_stride: Duration = "2s"
    bands: dict[str, tuple[Hertz, Hertz]] = Field(
        {"theta": (4.0, 8.0), "alpha": (8.0, 14.0), "beta": (14.0, 31.0), "gamma": (31.0, 45.0)}
    )
    # patch: one token per channel and patch of raw (normalized) signal, read by a small
    # learned encoder; the channel embedding is keyed by the electrode's 10-20/10-10 name.
    patch: Duration = "1s"
    patch_encoder_width: Annotated[int, whole(8, 65_536)] = 256

    @model_validator(mode="after")
    def _check(self) -> TokenizerSettings:
        if self.continuous and self.kind != "band_power":
            raise ValueError("continuous: true needs kind: band_power (values of band powers)")
        return self


class SplitSettings(Section):
    # cross_session: every subject's session `fold` (in session order) is test, its other
    # sessions train and val (pooled over subjects); sources with one session refuse it.
    # subject_kfold: the subjects in num_folds groups, fold `fold`'s subjects are test and a
    # val_fraction of the other subjects val: subject-disjoint, so chance is chance.
    protocol: Literal[
        "trial", "cross_trial", "loso", "kfold", "subject_kfold", "cross_session", "segment"
    ] = "trial"
    val_fraction: Probability = 0.15
    test_fraction: Probability = 0.15
    num_folds: Annotated[int, whole(2, 10_000)] = 5
    fold: Annotated[int, whole(0, 9_999)] = 0
    seed: Seed = 0

    @model_validator(mode="after")
    def _check(self) -> SplitSettings:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError("val_fraction + test_fraction must leave data for training")
        if self.protocol in ("kfold", "subject_kfold") and self.fold >= self.num_folds:
            raise ValueError(f"fold {self.fold} is out of range for num_folds={self.num_folds}")
        return self


Source = Literal["deap", "dreamer", "seed", "seed_iv", "amigos", "mne"]
SOURCES: tuple[str, ...] = get_args(Source)


class DataSettings(Section):
    # The dataset data.root holds, and its reader's options (docs/data.md lists both). DEAP's
    # reader is set by data.channels and data.baseline_seconds: its data.options stay empty.
    source: Source = "deap"
    options: SourceOptions = Field(default_factory=DeapOptions)
    root: str = "data/deap"
    cache_dir: str = "cache"
    # None: every subject found in root
    subjects: list[Annotated[int, whole(0, 1_000_000)]] | None = None
    # The source's own rate by default; a recording at another rate is resampled to it.
    sampling_rate: Annotated[int, whole(1, 100_000)] = 128
    # Per recording, before windows, through MNE (data/preprocess_settings.py, docs/data.md).
    filter: pre.BandPass | None = None
    notch: pre.EdgeHz | None = None
    reference: pre.Reference = "none"
    bad_channels: pre.BadChannels = Field(default_factory=dict)
    # What happens to each trial's baseline (the recording before its stimulus, where the
    # source has one): dropped, its mean one-second waveform subtracted, or kept in the trial.
    baseline: Literal["drop", "subtract", "keep"] = "drop"
    baseline_seconds: Seconds = DEAP_BASELINE_SECONDS  # DEAP's lead before a video
    channels: list[str] | Literal["eeg", "all"] = "eeg"  # eeg: the source's EEG channels
    normalize: Literal["trial", "subject", "none"] = "trial"
    window: Duration = "8s"
    stride: Duration = "4s"
    labels: LabelSettings = LabelSettings()
    quantize: QuantizeSettings = QuantizeSettings()
    tokenizer: TokenizerSettings = TokenizerSettings()
    split: SplitSettings = SplitSettings()

    @model_validator(mode="before")
    @classmethod
    def _source_defaults(cls, data: Any) -> Any:
        from eeg_emotion.data.source_settings import with_source_defaults

        return with_source_defaults(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _check_source(self) -> DataSettings:
        from eeg_emotion.data.source_settings import check_source

        check_source(self)
        pre.check_preprocessing(
            self.sampling_rate, self.filter, self.notch, self.reference, self.bad_channels
        )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        # DEAP settings dump without `source` and `options` (its options are always the
        # defaults: nothing is lost), so that its cache keys, dataset caches and saved run
        # settings do not depend on them.
        out = handler(self)
        if self.source == "deap" and isinstance(out, dict):
            out.pop("source", None)
            out.pop("options", None)
        if isinstance(out, dict):  # preprocessing at its defaults: keys stay as they were
            pre.drop_defaults(self, out)
        return out

    def reader_options(self) -> BaseModel:
        """The options the source's reader is built with: DEAP's from data.channels and
        data.baseline_seconds (none with data.baseline=keep: the whole recording is the
        trial), AMIGOS' channels from data.channels, the others' as given."""
        wide = "eeg" if self.channels == "eeg" else "all"
        if self.source == "deap":
            seconds = 0.0 if self.baseline == "keep" else self.baseline_seconds
            return DeapOptions(channels=wide, baseline_seconds=seconds)
        if self.source == "amigos":
            return self.options.model_copy(update={"channels": wide})
        return self.options


class TrackerSettings(Section):
    kind: Literal["wandb", "tensorboard", "none"] = "wandb"
    project: str = "eeg-emotion"
    group: str | None = None  # e.g. one group per cross-validation run
    name: str | None = None
    # Seconds W&B may take to start before the run logs offline instead (a compute node
    # without internet); `wandb sync` uploads the offline run later.
    timeout_s: Annotated[float, real(0, DAY_SECONDS, low_open=True)] = 30.0


class TrainSettings(Section):
    epochs: Annotated[int, whole(1, 100_000)] = 3
    batch_size: Annotated[int, whole(1, 2**20)] = 8  # global micro-batch, split across processes
    grad_accum: Annotated[int, whole(1, 100_000)] = 1
    lr_head: LearningRate = 1e-3  # head and EEG embedding
    lr_lora: LearningRate = 2e-4
    lr_backbone: LearningRate = 2e-5  # only when a phase trains the full backbone
    weight_decay: Annotated[float, real(0, 1000)] = 0.01
    warmup_ratio: Probability = 0.05
    max_grad_norm: Annotated[float, real(0, 1e6, low_open=True)] | None = 1.0
    # auto: the launcher's --mixed_precision when given, else bf16 on a GPU that supports it.
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = "auto"
    # Optimizer steps between evaluations; 0 = each epoch
    eval_every: Annotated[int, whole(0, 10**9)] = 0
    # Optimizer steps; checkpoints also at epoch ends
    checkpoint_every: Annotated[int, whole(0, 10**9)] = 0
    keep_checkpoints: Annotated[int, whole(1, 1000)] = 2
    # trial_loss: the cross-entropy of each val trial's mean window probabilities, averaged
    # over trials: one number per trial, so a few long trials cannot dominate, and smoother
    # than a balanced accuracy over a few dozen trials.
    best_metric: Literal["mean_balanced_accuracy", "mean_macro_f1", "loss", "trial_loss"] = (
        "mean_balanced_accuracy"
    )
    # Evaluations without improvement before stopping
    patience: Annotated[int, whole(1, 10**6)] | None = None
    # Optimizer steps before which no evaluation may pick the best model: an early model that
    # predicts one class cannot win on a small, noisy val set (0: any evaluation).
    select_after: Annotated[int, whole(0, 10**9)] = 0
    # Patch inputs only: each training window is a crop of this length (whole patches), cut at a
    # fresh random sample offset each epoch, so no patch boundary sits on a fixed grid; val and
    # test read every full window. None: the whole window, as cached.
    crop: Duration | None = None
    log_every: Annotated[int, whole(1, 10**9)] = 10
    # Optimizer steps between polls for a stop request (STOP file, SIGTERM, SIGUSR1): each poll
    # is a collective. A stop is seen at most this many steps late; keep that well inside the
    # scheduler's warning (slurm/train.sh asks for 300 s).
    stop_check_every: Annotated[int, whole(1, 10**9)] = 10
    num_workers: Annotated[int, whole(0, 256)] = 0
    resume: str = "auto"  # auto: newest complete checkpoint of output_dir; never; or a path
    tracker: TrackerSettings = TrackerSettings()


class EEGNetSettings(Section):
    """EEGNet-8,2 (Lawhern et al., 2018) on the normalized signal windows."""

    f1: Annotated[int, whole(1, 1024)] = 8  # temporal filters
    depth: Annotated[int, whole(1, 64)] = 2  # spatial filters per temporal filter
    f2: Annotated[int, whole(1, 4096)] = 16  # separable-convolution filters
    kernel: Duration = "0.5s"  # temporal kernel (samples or seconds)
    dropout: Probability = 0.25
    epochs: Annotated[int, whole(1, 100_000)] = 40
    batch_size: Annotated[int, whole(1, 2**20)] = 64
    lr: LearningRate = 1e-3
    weight_decay: Annotated[float, real(0, 1000)] = 1e-3
    # Epochs without a better val score before stopping
    patience: Annotated[int, whole(1, 100_000)] = 6


class ConnectivitySettings(Section):
    """Connectivity features told no site, pair or band of interest: per window and band, the
    zero-lag correlation and the imaginary coherence of every channel pair, and each channel's
    log-envelope spread, into an L1 (sparse) logistic regression."""

    bands: dict[str, tuple[Hertz, Hertz]] = Field(
        {
            "delta": (1.0, 4.0),
            "theta": (4.0, 8.0),
            "alpha": (8.0, 13.0),
            "beta": (13.0, 30.0),
            "gamma": (30.0, 45.0),
        }
    )
    # Inverse L1 strengths tried; the best by inner cross-validation on the training part.
    c_grid: list[Annotated[float, real(0, 1e6, low_open=True)]] = Field(
        [0.01, 0.03, 0.1, 0.3, 1.0], min_length=1
    )
    inner_folds: Annotated[int, whole(2, 20)] = 3


class BaselineSettings(Section):
    """Used by launch/baseline.py only: the same data, splits and reports as the LLM runs."""

    name: Literal["band_power_lr", "eegnet", "connectivity"] = "band_power_lr"
    # band_power_lr: inverse L2 strengths tried; the best on val (mean balanced accuracy) is kept.
    c_grid: list[Annotated[float, real(0, 1e6, low_open=True)]] = Field(
        [0.001, 0.01, 0.1, 1.0], min_length=1
    )
    class_weights: Literal["none", "balanced"] = "none"
    eegnet: EEGNetSettings = EEGNetSettings()
    connectivity: ConnectivitySettings = ConnectivitySettings()


class Settings(Section):
    seed: Seed = 0
    output_dir: str = "runs/default"
    # Built on use, not when this module is imported: its checks read the sources' facts.
    data: DataSettings = Field(default_factory=DataSettings)
    model: ModelSettings = ModelSettings()
    train: TrainSettings = TrainSettings()
    baseline: BaselineSettings = BaselineSettings()

    @model_validator(mode="after")
    def _model_reads_the_input(self) -> Settings:
        m, kind = self.model, self.data.tokenizer.kind
        if kind == "text" and m.source == "none":
            raise ValueError(
                "model.source=none has no token embedding of its own: it reads EEG tokens "
                "(data.tokenizer.kind band_power, symbols or patch), not text"
            )
        if kind == "text" and m.readout == "channels":
            raise ValueError(
                "model.readout=channels needs EEG tokens that carry their electrode "
                "(data.tokenizer.kind band_power, symbols or patch), not text"
            )
        if m.front_end.kind != "none" and kind != "patch":
            raise ValueError(
                f"model.front_end.kind={m.front_end.kind} filters the raw signal: it needs "
                f"data.tokenizer.kind=patch, not {kind}"
            )
        # A crop's lengths are checked on the built data (data/dataset.py: training_crop),
        # which knows the patch and the window in samples.
        if self.train.crop is not None and kind != "patch":
            raise ValueError(
                f"train.crop={self.train.crop!r} re-cuts the signal of patch inputs: it needs "
                f"data.tokenizer.kind=patch, not {kind}"
            )
        return self

    @model_validator(mode="after")
    def _no_secrets(self) -> Settings:
        # Settings are saved into every run folder and sent to trackers: a token must not be here.
        for key, value in flatten(self.model_dump(), lists=True).items():
            if isinstance(value, str) and HF_TOKEN_PATTERN.search(value):
                raise ValueError(
                    f"{key} looks like a Hugging Face token; settings are saved with every run, "
                    "so put the token in the environment (HF_TOKEN) or a .env file instead"
                )
        return self


HF_TOKEN_PATTERN = re.compile(r"\bhf_[A-Za-z0-9]{20,}")


def flatten(tree: Any, lists: bool = False, prefix: str = "") -> dict[str, Any]:
    """Nested settings as dotted keys: {"a": {"b": 1}} -> {"a.b": 1}; with `lists`, list
    items too ({"a": [1]} -> {"a.0": 1})."""
    if isinstance(tree, dict):
        items = list(tree.items())
    elif lists and isinstance(tree, list):
        items = list(enumerate(tree))
    else:
        return {prefix.rstrip("."): tree}
    return {k: v for key, sub in items for k, v in flatten(sub, lists, f"{prefix}{key}.").items()}


class _Yaml12Booleans(yaml.SafeLoader):
    """YAML with only true/false as booleans (YAML 1.2): `train.mixed_precision: no` stays the
    text 'no', as the user meant, not False."""


_Yaml12Booleans.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Booleans.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_yaml(text: str) -> Any:
    """Settings text (a file or an override's value) as Python values."""
    return yaml.load(text, Loader=_Yaml12Booleans)


def parse_overrides(tokens: list[str]) -> dict[str, Any]:
    """`["data.root=/x", "data.split.fold=2"]` -> nested dict; values are parsed as YAML."""
    tree: dict[str, Any] = {}
    for token in tokens:
        key, sep, raw = token.lstrip("-").partition("=")
        if not sep or not key:
            raise ConfigError(f"override {token!r} is not of the form key.sub=value")
        try:
            value = read_yaml(raw) if raw.strip() else ""
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


def overridden(overrides: list[str], keys: tuple[str, ...]) -> list[str]:
    """Which of the dotted `keys` the overrides set (a command that sets them itself refuses
    those)."""
    given = parse_overrides(overrides)

    def value(dotted: str) -> object:
        tree: object = given
        for part in dotted.split("."):
            if not isinstance(tree, dict) or part not in tree:
                return None
            tree = tree[part]
        return tree

    return [key for key in keys if value(key) is not None]


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


def explain(error: ValidationError, source: str, model: type[BaseModel]) -> ConfigError:
    """A pydantic error as one line naming each key and its problem (`source`: where from)."""
    lines = []
    known = _known_keys(model)
    for item in error.errors():
        loc = [str(p) for p in item["loc"] if not str(p).startswith("function-")]
        # data.options.<source>.key: the union's tag adds the source, which data.source names
        loc = [p for i, p in enumerate(loc) if not (i and loc[i - 1] == "options" and p in SOURCES)]
        where = ".".join(loc)
        if item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(where, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            lines.append(f"unknown key '{where}'{hint}")
        else:
            got = item.get("input")
            if item["type"] == "number_range":  # the message names the value and the range
                lines.append(f"{where}: {item['msg']}")
                continue
            shown = "" if isinstance(got, dict) else f" (got {got!r})"
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "value_error" and message.startswith((f"{where}.", f"{where}:")):
                # a check that names its own key (DataSettings'); it may echo a value
                lines.append(HF_TOKEN_PATTERN.sub("hf_...", message))
                continue
            if HF_TOKEN_PATTERN.search(shown):  # error text reaches logs: never echo a token
                shown = " (got a value that looks like a Hugging Face token)"
            lines.append(f"{where or 'settings'}: {item['msg']}{shown}")
    return ConfigError(f"{source}: " + "; ".join(dict.fromkeys(lines)))


def load_settings(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
) -> Settings:
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
            raw = read_yaml(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if raw is None:  # an empty file is a mistake (a wrong path, a truncated copy), not defaults
            raise ConfigError(
                f"{path}: the config file is empty; give its settings, or no --config"
            )
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of settings")
    if overrides:
        source += " + overrides"
        try:
            raw = merge(raw, parse_overrides(overrides))
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise explain(exc, source, Settings) from None


def dump_settings(settings: BaseModel, path: str | Path | None = None) -> str:
    text = yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False)
    if path is not None:
        Path(path).write_text(text)
    return text
