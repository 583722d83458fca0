"""Training-step throughput and memory of the classifier on a GPU, against peft + Trainer.

    python bench/gpu_throughput.py                                   # Llama-3.1-8B nf4, CUDA
    python bench/gpu_throughput.py --small   # seconds: CPU smoke run, configs/tiny.yaml (CI)
    python bench/gpu_throughput.py --kernels plain fast --cases 1024:1:16 1024:0:8 2048:1:8

`--kernels` runs the classifier's step once per `model.kernels` choice (plain: peft's LoRA
layers; fast: fused LoRA projections plus Liger's kernels where installed), plain first and fast
after the Trainer (Liger's RoPE holds for every Llama in the process once applied). `--cases`
replaces the tokens x checkpointing x batch sweep with the listed TOKENS:CHECKPOINTING:BATCH.

Ours: the classifier's training step (EEG embedding -> 4-bit backbone with LoRA r=16 on all seven
projections -> mean+max pool -> head; AdamW on adapter, head and embedding; bf16 autocast) at
each tokens-per-window length, with gradient checkpointing on and off, batch sizes doubling up
to the memory limit. The usual path, in the same run: the same backbone as a causal LM through
peft + `transformers.Trainer`, pooling `output_hidden_states` as the original method did.

Weights are random (throughput does not depend on their values) unless `model.source` is a
local folder with the real ones. MFU counts 4 x N + 12 x L x h x T FLOPs per token (N = matmul
weights of the backbone: its forward, plus a backward through activations only, since the frozen
4-bit base computes no weight gradients; attention as 12 L h T), over the GPU's dense bf16 peak;
recomputation under gradient checkpointing is not counted (it is work, not progress). The last
stdout line is one JSON object with every figure, and `stepped_by`: per path, the modules whose
code made its optimizer steps (the Trainer's are `transformers.trainer`).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eeg_emotion.config import Settings, load_settings  # noqa: E402
from eeg_emotion.quiet import quiet_libraries  # noqa: E402

quiet_libraries()
import torch  # noqa: E402
from step_probe import stepped_by  # noqa: E402  (bench/, the script's folder)
from torch import nn  # noqa: E402

from eeg_emotion.model.backbone import load_backbone, random_backbone  # noqa: E402
from eeg_emotion.model.classifier import EEGEmotionClassifier, InputSpec  # noqa: E402
from eeg_emotion.model.kernels import restore_globals  # noqa: E402
from eeg_emotion.model.plan import flops_per_token, input_spec, plan  # noqa: E402
from eeg_emotion.model.pooling import mean_max_pool  # noqa: E402
from eeg_emotion.training import tracking  # noqa: E402
from eeg_emotion.training.probe import FirstStepProbe  # noqa: E402


def backbone(settings: Settings, device: Any, causal_lm: bool = False) -> nn.Module:
    if Path(settings.model.source).is_dir() and not causal_lm:
        return load_backbone(settings.model, device)  # the real weights
    return random_backbone(settings.model, device, causal_lm=causal_lm)


def batch(spec: InputSpec, size: int, tokens: int, vocab: int, device: Any) -> dict:
    return {
        "input_ids": torch.randint(0, vocab, (size, tokens), device=device),
        "attention_mask": torch.ones(size, tokens, dtype=torch.long, device=device),
        "labels": torch.randint(0, spec.num_classes, (size, len(spec.targets)), device=device),
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc)


def peak_flops(device: torch.device) -> float | None:
    return tracking.peak_bf16_flops() if device.type == "cuda" else None


def measure(step, device: torch.device, warmup: int, steps: int) -> tuple[float, float]:
    """(seconds per step, peak GB allocated during the timed steps)."""
    for _ in range(warmup):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    seconds = (time.perf_counter() - start) / steps
    peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else None
    return seconds, peak


def cases(args) -> list[tuple[int, bool, list[int]]]:
    """(tokens, checkpointing, batch sizes) in the order they run."""
    if args.cases:
        return [(t, bool(c), [b]) for t, c, b in args.cases]
    return [(t, c, args.batches) for t in args.tokens for c in (True, False)]


def ours(
    settings: Settings, args, device: torch.device, estimates: dict, kernels: str = "plain"
) -> tuple[list[dict], str]:
    """The classifier's rows with `model.kernels=kernels`, and its kernels line."""
    spec = input_spec(settings)
    model_settings = settings.model.model_copy(update={"kernels": kernels})
    model = EEGEmotionClassifier(model_settings, spec, backbone=backbone(settings, device))
    model.to(device)
    model.set_phase(["head", "embedding", "lora"])
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    inner = model.backbone.base_model.model  # the transformers model under peft
    config = model.config
    rows = []
    for tokens, checkpointing, sizes in cases(args):
        if checkpointing:
            inner.gradient_checkpointing_enable({"use_reentrant": False})
        else:
            inner.gradient_checkpointing_disable()
        for size in sizes:
            data = batch(spec, size, tokens, spec.vocab_size - 1, device)

            def step(model=model, data=data, optimizer=optimizer) -> None:
                with torch.autocast(device.type, dtype=torch.bfloat16):
                    out = model(**data)
                out["loss"].backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            row = {
                "path": "ours",
                "kernels": kernels,
                "tokens": tokens,
                "batch": size,
                "checkpointing": checkpointing,
            }
            row.update(timed(step, device, args, size * tokens, config, tokens))
            row["sdpa"] = sdpa_kernel(model, step) if "oom" not in row else None
            est = estimates[tokens]
            key = "checkpointing" if checkpointing else "no_checkpointing"
            row["planner_gb"] = round(est["fixed_gb"] + size * est["per_window_gb"][key], 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
            optimizer.zero_grad(set_to_none=True)
            del data
            cleanup(device)
            if row.get("oom"):
                break
    line = model.kernels
    del model, optimizer, inner
    cleanup(device)
    return rows, line


def sdpa_kernel(model: EEGEmotionClassifier, step) -> str | None:
    """The SDPA kernel one more (untimed) step ran, as train.log's probe line reads it."""
    with FirstStepProbe(model.backbone) as probe:
        step()
    return probe.sdpa.backend


def timed(step, device, args, tokens_per_step: int, config, tokens: int) -> dict:
    try:
        seconds, peak = measure(step, device, args.warmup, args.steps)
    except (torch.OutOfMemoryError, RuntimeError) as exc:
        if not oom(exc):
            raise
        return {"oom": True}
    rate = tokens_per_step / seconds
    peak_flops_s = peak_flops(device)
    return {
        "step_s": round(seconds, 4),
        "tokens_per_s": round(rate, 1),
        "mfu": None
        if peak_flops_s is None
        else round(rate * flops_per_token(config, tokens) / peak_flops_s, 4),
        "peak_gb": None if peak is None else round(peak, 2),
    }


def cleanup(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


class CausalLMClassifier(nn.Module):
    """The original method: a causal LM asked for every hidden state, the last one pooled."""

    def __init__(self, lm: nn.Module, hidden: int, outputs: int, classes: int) -> None:
        super().__init__()
        self.lm, self.classes = lm, classes
        self.head = nn.Linear(2 * hidden, outputs)

    def forward(self, input_ids, attention_mask, labels=None):
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        logits = self.head(mean_max_pool(out.hidden_states[-1], attention_mask).float())
        loss = sum(
            nn.functional.cross_entropy(part, labels[:, i])
            for i, part in enumerate(logits.split(self.classes, dim=-1))
        )
        return {"loss": loss, "logits": logits}


class RandomTokens(torch.utils.data.Dataset):
    def __init__(self, n: int, tokens: int, vocab: int, classes: int, targets: int) -> None:
        self.n, self.tokens, self.vocab, self.classes, self.targets = (
            n,
            tokens,
            vocab,
            classes,
            targets,
        )

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        return {
            "input_ids": torch.randint(0, self.vocab, (self.tokens,), generator=g),
            "attention_mask": torch.ones(self.tokens, dtype=torch.long),
            "labels": torch.randint(0, self.classes, (self.targets,), generator=g),
        }


def _clock_class():
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        """Step times (synchronized); peak memory counted from the first timed step."""

        def __init__(self, device: torch.device, warmup: int) -> None:
            self.device, self.warmup, self.times = device, warmup, []

        def on_step_begin(self, *args, **kwargs) -> None:
            sync(self.device)
            if len(self.times) == self.warmup and self.device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(self.device)
            self.start = time.perf_counter()

        def on_step_end(self, *args, **kwargs) -> None:
            sync(self.device)
            self.times.append(time.perf_counter() - self.start)

    return Clock


def trainer_path(settings: Settings, args, device: torch.device) -> list[dict]:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import Trainer, TrainingArguments

    Clock = _clock_class()

    spec = input_spec(settings)
    lm = backbone(settings, device, causal_lm=True)
    config = lm.config
    lora = settings.model.lora
    rows = []
    for tokens, size, checkpointing in args.trainer:
        if not checkpointing:
            lm.gradient_checkpointing_disable()
        if settings.model.precision == "4bit":
            lm = prepare_model_for_kbit_training(
                lm,
                use_gradient_checkpointing=checkpointing,
                gradient_checkpointing_kwargs={"use_reentrant": False},
            )
        peft_lm = get_peft_model(
            lm,
            LoraConfig(
                r=lora.r,
                lora_alpha=lora.alpha,
                lora_dropout=lora.dropout,
                target_modules=list(lora.target_modules),
            ),
        )
        model = CausalLMClassifier(
            peft_lm, config.hidden_size, spec.num_classes * len(spec.targets), spec.num_classes
        ).to(device)

        clock = Clock(device, args.warmup)
        with tempfile.TemporaryDirectory() as out:
            trainer = Trainer(
                model=model,
                args=TrainingArguments(
                    output_dir=out,
                    per_device_train_batch_size=size,
                    max_steps=args.warmup + args.steps,
                    learning_rate=1e-4,
                    bf16=device.type == "cuda",
                    use_cpu=device.type != "cuda",
                    report_to=[],
                    save_strategy="no",
                    logging_strategy="no",
                    dataloader_num_workers=0,
                    remove_unused_columns=False,
                    disable_tqdm=True,
                ),
                train_dataset=RandomTokens(
                    size * (args.warmup + args.steps),
                    tokens,
                    config.vocab_size,
                    spec.num_classes,
                    len(spec.targets),
                ),
                callbacks=[clock],
            )
            row = {"path": "peft+Trainer", "tokens": tokens, "batch": size}
            row["checkpointing"] = checkpointing
            try:
                trainer.train()
                seconds = sum(clock.times[args.warmup :]) / args.steps
                rate = size * tokens / seconds
                pf = peak_flops(device)
                row.update(
                    step_s=round(seconds, 4),
                    tokens_per_s=round(rate, 1),
                    mfu=None
                    if pf is None
                    else round(rate * flops_per_token(config, tokens) / pf, 4),
                    peak_gb=round(torch.cuda.max_memory_allocated(device) / 1e9, 2)
                    if device.type == "cuda"
                    else None,
                )
            except (torch.OutOfMemoryError, RuntimeError) as exc:
                if not oom(exc):
                    raise
                row["oom"] = True
        rows.append(row)
        print(json.dumps(row), flush=True)
        lm = peft_lm.unload()  # the bare model again, for the next setting
        del trainer, model, peft_lm
        cleanup(device)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--config", help="default: configs/llama31_8b_qlora.yaml (with --small: configs/tiny.yaml)"
    )
    p.add_argument("--tokens", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument(
        "--trainer",
        type=lambda s: tuple(int(x) for x in s.split(":")),
        nargs="*",
        default=[(1024, 8, 1), (1024, 2, 0), (512, 16, 1)],
        help="peft + Trainer settings as TOKENS:BATCH:CHECKPOINTING (0/1)",
    )
    p.add_argument(
        "--kernels",
        nargs="+",
        choices=["plain", "fast"],
        default=["plain"],
        help="model.kernels choices to time (plain before the Trainer, fast after it)",
    )
    p.add_argument(
        "--cases",
        type=lambda s: tuple(int(x) for x in s.split(":")),
        nargs="*",
        default=None,
        help="instead of the sweep: TOKENS:CHECKPOINTING(0/1):BATCH for each of ours",
    )
    p.add_argument("--out", help="also write the JSON object to this file")
    p.add_argument("--small", action="store_true", help="CPU smoke run: 2 sizes, 1 step")
    p.add_argument("overrides", nargs="*", help="key.sub=value settings overrides")
    args = p.parse_args(argv)
    default = "tiny.yaml" if args.small else "llama31_8b_qlora.yaml"
    settings = load_settings(args.config or ROOT / "configs" / default, args.overrides)
    # The smoke run checks the code paths, the same on every machine: on the CPU even beside a GPU.
    cuda = torch.cuda.is_available() and not args.small
    device = torch.device("cuda" if cuda else "cpu")
    if args.small:
        args.tokens, args.batches, args.warmup, args.steps = [8, 16], [1, 2], 1, 1
        args.trainer = [(16, 2, 0)]
        args.cases = [(t, c, min(b, 2)) for t, c, b in args.cases or []]
    if device.type == "cpu" and not args.small:
        print("no CUDA device: add --small for the CPU smoke run", file=sys.stderr)
        return 2
    args.trainer = [(t, b, bool(c)) for t, b, c in args.trainer]
    torch.manual_seed(0)

    lengths = sorted({t for t, _, _ in cases(args)})
    estimates = {t: plan(settings, with_data=False, tokens=t).to_json() for t in lengths}
    result: dict[str, Any] = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "peak_bf16_flops": peak_flops(device),
        "backbone": settings.model.source,
        "real_weights": Path(settings.model.source).is_dir(),
        "flops_per_token": "4 * N + 12 * layers * hidden * T (N: backbone matmul weights)",
        "torch": torch.__version__,
    }
    start = time.perf_counter()
    result["ours"], result["kernels"] = [], {}
    with stepped_by() as ours_loop:
        if "plain" in args.kernels:
            rows, result["kernels"]["plain"] = ours(settings, args, device, estimates, "plain")
            result["ours"] += rows
    with stepped_by() as their_loop:
        result["trainer"] = trainer_path(settings, args, device) if args.trainer else []
    with stepped_by() as fast_loop:
        if "fast" in args.kernels:  # last: Liger's RoPE would reach the Trainer's model too
            rows, result["kernels"]["fast"] = ours(settings, args, device, estimates, "fast")
            result["ours"] += rows
            restore_globals()
    result["stepped_by"] = {
        "ours": sorted(ours_loop | fast_loop),
        "peft+Trainer": sorted(their_loop),
    }
    result["ratios"] = ratios(result["ours"], result["trainer"])
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


def ratios(ours_rows: list[dict], theirs: list[dict]) -> list[dict]:
    """Ours / theirs tokens per second and peak memory at the same tokens, batch, checkpointing."""
    out = []
    for t, o in (
        (t, o)
        for t in theirs
        for o in ours_rows
        if (o["tokens"], o["batch"], o["checkpointing"])
        == (t["tokens"], t["batch"], t["checkpointing"])
    ):
        if "tokens_per_s" not in o or "tokens_per_s" not in t:
            continue
        out.append(
            {
                "kernels": o["kernels"],
                "tokens": t["tokens"],
                "batch": t["batch"],
                "checkpointing": t["checkpointing"],
                "speed_ratio": round(o["tokens_per_s"] / t["tokens_per_s"], 3),
                "memory_ratio": round(t["peak_gb"] / o["peak_gb"], 3)
                if o["peak_gb"] and t["peak_gb"]
                else None,
            }
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
