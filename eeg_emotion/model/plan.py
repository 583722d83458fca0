"""Plan a run before paying for it: parameter counts, tokens, steps and peak GPU memory.

Needs no GPU and no download: the backbone is built on the meta device from its config.json
(the project ships the architecture files of the models it names). The memory estimate is per
process and counts what `accelerate estimate-memory` does not know about: 4-bit weights, an
optimizer that holds state for the LoRA adapter and head only, and activations with and without
gradient checkpointing.

Activation sizes are bytes per token per decoder layer, counted from the tensors autograd keeps
in this project's bf16 forward: RMSNorm's fp32 input copies (2 x 4h), flash attention's
rotated q and k, v and output, the MLP intermediates and, per LoRA projection, the dropout mask
and the dropped input (see ACT_*). Backward adds one layer's gradient intermediates. Checked
against `torch.cuda.max_memory_allocated` on an H100 with Llama-3.1-8B at 512 and 1024 tokens
and 1 to 64 windows (docs/model.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from eeg_emotion.config import Settings
from eeg_emotion.model_settings import ModelSettings

if TYPE_CHECKING:
    from eeg_emotion.model.embedding import InputSpec

GB = 1e9
CARDS_GB = (24, 40, 80)
# Bytes per token per layer kept for backward without checkpointing: a * hidden + b *
# intermediate + c * kv_dim. a = 8 (two fp32 norm inputs) + 4 (q, k after rotary) + 2 + 2
# (attention output, o_proj input) + 3 x (3 + 1 + 2) (LoRA dropout mask + input on q, k, v, o,
# gate, up); b = 3 x 2 (gate, up, silu) + 3 (LoRA on down); c = 4 (k, v). Backward holds one
# layer's gradient intermediates (about 4 * intermediate) on top.
ACT_HIDDEN, ACT_INTER, ACT_KV = 30, 9, 4
BACKWARD_INTER = 4
CUDA_CONTEXT_GB = 0.6  # CUDA context + cuBLAS workspace: not in max_memory_allocated
FRAGMENTATION = 1.10  # allocator slack between allocated and reserved memory


@dataclass
class Plan:
    backbone: str
    layers: int
    hidden: int
    base_params: int  # headless backbone (no LM head: the classifier never loads one)
    lm_head_params: int  # what the causal-LM checkpoint has on top (not loaded)
    quantized_params: int  # in 4-bit linear layers
    lora_params: int
    head_params: int  # pooling head + EEG embedding
    trainable_params: int  # in the phase that trains the most
    tokens_per_window: int
    processes: int
    per_device_batch: int
    gradient_checkpointing: bool
    steps_per_epoch: int | None
    memory_gb: dict[str, float] = field(default_factory=dict)
    est_peak_gb: float = 0.0  # max_memory_allocated equivalent, configured checkpointing
    est_peak_gb_checkpointing: float = 0.0
    est_peak_gb_no_checkpointing: float = 0.0
    fits: dict[str, bool] = field(default_factory=dict)
    # est. peak = fixed_gb + windows per process x per_window_gb[checkpointing on / off]
    fixed_gb: float = 0.0
    per_window_gb: dict[str, float] = field(default_factory=dict)
    accelerate_estimate_gb: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def flops_per_token(config: Any, seq_len: int, backward: bool = True) -> float:
    """Useful FLOPs per token of one training step through the backbone (the model FLOPs of
    MFU). With a frozen base (LoRA), a token costs about 4 x N (forward, and backward through
    activations only; N = matmul weights) plus 12 x L x H x T for attention (T = sequence
    length); without a backward through the backbone (a head-only phase) 2 x N + 4 x L x H x T.
    Gradient-checkpointing recomputation is not counted: it is work, not progress."""
    h, layers = config.hidden_size, config.num_hidden_layers
    kv = h * config.num_key_value_heads // config.num_attention_heads
    n = layers * (2 * h * h + 2 * h * kv + 3 * h * config.intermediate_size)
    flops = 2 * n + 4 * layers * h * seq_len  # forward
    if backward:  # gradients of the activations only: the frozen base has no weight gradients
        flops += 2 * n + 8 * layers * h * seq_len
    return float(flops)


def weight_bytes_per_param(precision: str, double_quant: bool) -> float:
    """nf4: 4 bits + one absmax per 64-weight block (uint8 with double quantization, plus an
    fp32 per 256 blocks; fp32 without)."""
    if precision == "4bit":
        return 0.5 + (1 / 64 + 4 / (64 * 256) if double_quant else 4 / 64)
    return {"bf16": 2.0, "fp32": 4.0}[precision]


def activation_bytes(config: Any, tokens: int, checkpointing: bool, dtype_bytes: int = 2) -> float:
    """Autograd's saved tensors for `tokens` tokens in one micro-batch. With checkpointing each
    layer keeps only its input (in the compute dtype) and one layer at a time is recomputed."""
    h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    kv = h * config.num_key_value_heads // config.num_attention_heads
    per_layer = ACT_HIDDEN * h + ACT_INTER * inter + ACT_KV * kv
    kept = layers * dtype_bytes * h + per_layer if checkpointing else layers * per_layer
    return tokens * (kept + BACKWARD_INTER * inter)


def input_spec(settings: Settings) -> InputSpec:
    """What the pipeline would feed the model, from the settings alone (no data). For `text`,
    the token count depends on the LLM tokenizer: `max_tokens` is the upper bound used."""
    from eeg_emotion.model.embedding import InputSpec

    return InputSpec.from_settings(settings.data)


def steps_per_epoch(settings: Settings) -> int | None:
    """Optimizer steps per epoch when the data is on disk (built or read from the cache)."""
    from eeg_emotion.data import pipeline
    from eeg_emotion.errors import DataError

    try:
        if not pipeline.find_recordings(settings.data)[1]:
            return None
    except (DataError, OSError):
        return None
    data = pipeline.build(settings.data, progress=False)
    batches = len(data.indices("train")) // settings.train.batch_size
    return math.ceil(batches / settings.train.grad_accum)


@dataclass
class ParamCounts:
    """Parameter counts of the classifier that the memory estimate starts from."""

    base: int  # headless backbone
    lm_head: int  # what the causal-LM checkpoint adds (never loaded)
    linear: int  # weights of the backbone's linear layers (4-bit when quantized)
    largest_linear: int  # weights of the largest one (dequantized one at a time)
    lora: int
    head: int  # pooling head + EEG embedding (its front end included)


def count_params(m: ModelSettings, config: Any, spec: InputSpec) -> ParamCounts:
    """Counted on the meta device: no weights are allocated."""
    import torch
    from torch import nn
    from transformers import AutoModel

    from eeg_emotion.model.classifier import build_head
    from eeg_emotion.model.embedding import EEGEmbedding
    from eeg_emotion.model.front_end import summary_width
    from eeg_emotion.model.pooling import Readout

    with torch.device("meta"):
        model = AutoModel.from_config(config)
    linears = {n: mod for n, mod in model.named_modules() if isinstance(mod, nn.Linear)}
    lora = sum(
        m.lora.r * (mod.in_features + mod.out_features)
        for n, mod in linears.items()
        if n.rsplit(".", 1)[-1] in m.lora.target_modules
    )
    h = config.hidden_size
    width = Readout(m.readout, spec, h).width + summary_width(spec, m.front_end)  # head's input
    with torch.device("meta"):
        head = sum(
            p.numel()
            for p in build_head(m, width, spec.num_classes * len(spec.targets)).parameters()
        )
    if spec.kind == "eeg":  # built for real (its layout buffers need values): tens of MB
        head += sum(p.numel() for p in EEGEmbedding(spec, h, 0.02, m.front_end).parameters())
    none = m.source == "none"  # no backbone: nothing but the embedding, readout and head
    return ParamCounts(
        base=0 if none else sum(p.numel() for p in model.parameters()),
        lm_head=0 if none or config.tie_word_embeddings else config.vocab_size * h,
        linear=sum(mod.weight.numel() for mod in linears.values()),
        largest_linear=max((mod.weight.numel() for mod in linears.values()), default=0),
        lora=lora,
        head=head,
    )


def memory_estimate(
    m: ModelSettings, config: Any, counts: ParamCounts, *, tokens: int, per_device: int
) -> dict[str, Any]:
    """The memory fields of a `Plan`, per process, for `per_device` windows of `tokens`."""
    checkpointing = m.checkpointing
    h, base = config.hidden_size, counts.base
    micro_tokens = per_device * tokens
    # Weights: quantized linears, plus embeddings and norms in the compute dtype.
    compute_bytes = 2 if m.compute_dtype == "bf16" else 4
    if m.precision == "4bit":
        quant = weight_bytes_per_param("4bit", m.double_quant)
        weights = counts.linear * quant + (base - counts.linear) * compute_bytes
    else:
        weights = base * weight_bytes_per_param(m.precision, False)
    # Trainable: fp32 parameter + gradient + two AdamW moments; a trained bf16 backbone keeps
    # bf16 parameters, gradients and moments.
    state = (counts.head + counts.lora) * 16 + (base * 8 if "backbone" in m.trained_parts else 0)
    # Transient: one dequantized weight (bf16) and its gradient-side twin, the EEG embedding's
    # fp32 sum, the pooled features.
    transient = 2 * counts.largest_linear * 2 + micro_tokens * h * 4 * 2
    act = {ckpt: activation_bytes(config, micro_tokens, ckpt) for ckpt in (True, False)}
    peak = {ckpt: (weights + state + transient + act[ckpt]) / GB for ckpt in (True, False)}
    memory = {
        "weights": weights / GB,
        "trainable_state": state / GB,
        "activations": act[checkpointing] / GB,
        "activations_checkpointing": act[True] / GB,
        "activations_no_checkpointing": act[False] / GB,
        "transient": transient / GB,
    }
    fixed = (weights + state + 2 * counts.largest_linear * 2) / GB
    per_window = {
        ckpt: (activation_bytes(config, tokens, ckpt, compute_bytes) + tokens * h * 8) / GB
        for ckpt in (True, False)
    }
    need = peak[checkpointing] * FRAGMENTATION + CUDA_CONTEXT_GB
    # What `accelerate estimate-memory` reports for the same model (all weights, no LoRA
    # awareness, no activations): load = weights in the dtype; training = 4x that (Adam).
    fp32 = base * 4
    anchor = {
        "int4_load": fp32 / 8 / GB,
        "bf16_load": fp32 / 2 / GB,
        "bf16_train_adam": fp32 * 2 / GB,
    }
    return {
        "memory_gb": {k: round(v, 3) for k, v in memory.items()},
        "est_peak_gb": round(peak[checkpointing], 3),
        "est_peak_gb_checkpointing": round(peak[True], 3),
        "est_peak_gb_no_checkpointing": round(peak[False], 3),
        "fits": {f"{gb}GB": need <= gb for gb in CARDS_GB},
        "fixed_gb": round(fixed, 4),
        "per_window_gb": {"checkpointing": per_window[True], "no_checkpointing": per_window[False]},
        "accelerate_estimate_gb": {k: round(v, 2) for k, v in anchor.items()},
    }


def plan(
    settings: Settings, processes: int = 1, with_data: bool = True, tokens: int | None = None
) -> Plan:
    """`tokens`: tokens per window, when not the settings' own (benchmarks)."""
    from eeg_emotion.model.backbone import backbone_config

    m, t = settings.model, settings.train
    if t.batch_size % processes:
        raise ValueError(f"train.batch_size={t.batch_size} does not split over {processes}")
    config = backbone_config(m, offline=True)
    spec = input_spec(settings)
    tokens = tokens or len(spec.channel)
    counts = count_params(m, config, spec)
    parts = m.trained_parts
    trainable = counts.head + (counts.lora if parts & {"lora", "backbone"} else 0)
    if "backbone" in parts:
        trainable += counts.base
    per_device = t.batch_size // processes
    return Plan(
        backbone=m.source,
        layers=config.num_hidden_layers,
        hidden=config.hidden_size,
        base_params=counts.base,
        lm_head_params=counts.lm_head,
        quantized_params=counts.linear if m.precision == "4bit" else 0,
        lora_params=counts.lora,
        head_params=counts.head,
        trainable_params=trainable,
        tokens_per_window=tokens,
        processes=processes,
        per_device_batch=per_device,
        gradient_checkpointing=m.checkpointing,
        steps_per_epoch=steps_per_epoch(settings) if with_data else None,
        **memory_estimate(m, config, counts, tokens=tokens, per_device=per_device),
    )


def describe(p: Plan) -> str:
    def b(n: int) -> str:
        return f"{n / 1e9:.3f} B" if n >= 1e9 else f"{n / 1e6:.1f} M"

    mem = p.memory_gb
    lines = [
        f"backbone        {p.backbone}: {p.layers} layers, hidden {p.hidden}",
        f"base params     {b(p.base_params)} headless"
        + (f" (+ {b(p.lm_head_params)} LM head, never loaded)" if p.lm_head_params else ""),
        f"LoRA params     {b(p.lora_params)}",
        f"head + EEG emb. {b(p.head_params)}",
        f"trainable       {b(p.trainable_params)}",
        f"tokens/window   {p.tokens_per_window}",
        f"batch/process   {p.per_device_batch} windows x {p.processes} process(es)",
        "steps/epoch     "
        + (str(p.steps_per_epoch) if p.steps_per_epoch is not None else "(no data on disk)"),
        f"memory/process  weights {mem['weights']:.2f} GB, optimizer+grads "
        f"{mem['trainable_state']:.2f} GB, activations {mem['activations_checkpointing']:.2f} GB "
        f"checkpointed / {mem['activations_no_checkpointing']:.2f} GB not",
        f"est. peak       {p.est_peak_gb:.2f} GB allocated (gradient checkpointing "
        f"{'on' if p.gradient_checkpointing else 'off'}; {p.est_peak_gb_checkpointing:.2f} on, "
        f"{p.est_peak_gb_no_checkpointing:.2f} off)",
        "fits            "
        + ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in p.fits.items())
        + f" (+{CUDA_CONTEXT_GB} GB context, x{FRAGMENTATION} allocator slack)",
        f"accelerate estimate-memory would say: int4 load {p.accelerate_estimate_gb['int4_load']}"
        f" GB, bf16 Adam training {p.accelerate_estimate_gb['bf16_train_adam']} GB",
    ]
    return "\n".join(lines)
