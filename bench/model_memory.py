"""Memory and step time: this classifier vs the original approach, and frozen vs LoRA steps.

    python bench/model_memory.py [--batch 8] [--tokens 512] [--layers N]
    python bench/model_memory.py --small   # seconds: 1 layer, batch 2 x 32 tokens, one process

The original approach loads `AutoModelForCausalLM` and asks for `output_hidden_states=True`:
every layer's states are kept and 49,152-way vocabulary logits are computed, only to pool the
last hidden state. This classifier loads the base transformer only (`AutoModel`), pools
`last_hidden_state`, and uses non-reentrant gradient checkpointing (its 4-bit default). Both:
embedded SmolLM2-135M in 4-bit nf4, LoRA r=16 on all seven projections, one AdamW step on a
batch of text tokens. Each configuration runs in its own process (all in this one under
--small, a smoke run); memory is the peak RSS increase during the step over the RSS just before
it (sampled every 5 ms). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("original", "ours_lora", "ours_frozen", "ours_embedding_phase")


class PeakRSS:
    """Samples this process's RSS in a thread; `peak - start` is the step's extra memory."""

    def __enter__(self) -> PeakRSS:
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self.running = False
        self.thread.join()


def make_batch(batch: int, tokens: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 49152, (batch, tokens), generator=g)
    mask = torch.ones(batch, tokens, dtype=torch.long)
    mask[1::2, tokens - tokens // 8 :] = 0  # some padding, as in real batches
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": torch.randint(0, 2, (batch, 2), generator=g),
    }


def build(config: str, layers: int | None):
    from eeg_emotion.config import load_settings
    from eeg_emotion.model.classifier import EEGEmotionClassifier, InputSpec

    overrides = [f"model.num_layers={layers}"] if layers else []
    settings = load_settings(None, overrides).model  # embedded, 4-bit, LoRA r=16, GC on
    if config == "original":
        return original_model(settings)
    n = 4096
    eeg = config == "ours_embedding_phase"  # band_power-like ids through the EEG embedding
    spec = InputSpec(
        kind="eeg" if eeg else "text",
        vocab_size=9 if eeg else 49152,
        pad_id=8 if eeg else 2,
        targets=["valence", "arousal"],
        num_classes=2,
        channel=[i % 32 for i in range(n)],
        band=[-1] * n,
        time=[i // 32 for i in range(n)],
    )
    model = EEGEmotionClassifier(settings, spec)
    phase = {
        "ours_lora": ["head", "lora"],
        "ours_frozen": ["head"],
        "ours_embedding_phase": ["head", "embedding"],
    }[config]
    model.set_phase(phase)

    def step(batch):
        ids = batch["input_ids"] % 9 if model.embedding is not None else batch["input_ids"]
        return model(input_ids=ids, attention_mask=batch["attention_mask"], labels=batch["labels"])[
            "loss"
        ]

    return model, step


def original_model(settings):
    """The original implementation: causal LM, all hidden states, zero-filled max pooling."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from eeg_emotion.model.backbone import disable_cpu_repacking, embedded_dir

    config_kwargs = {}
    if settings.num_layers:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(embedded_dir())
        config.num_hidden_layers = settings.num_layers
        config_kwargs["config"] = config
    lm = AutoModelForCausalLM.from_pretrained(
        embedded_dir(),
        dtype=torch.bfloat16,
        device_map={"": "cpu"},
        quantization_config=BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        ),
        **config_kwargs,
    )
    disable_cpu_repacking(lm)
    lm = prepare_model_for_kbit_training(lm, use_gradient_checkpointing=False)
    lm = get_peft_model(
        lm,
        LoraConfig(
            r=16,
            lora_alpha=8,
            lora_dropout=0.1,
            bias="none",
            target_modules=list(settings.lora.target_modules),
        ),
    )
    head = torch.nn.Linear(2 * lm.config.hidden_size, 4)
    model = torch.nn.ModuleDict({"lm": lm, "head": head})

    def step(batch):
        out = lm(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            output_hidden_states=True,
        )
        h = out.hidden_states[-1].float()
        m = batch["attention_mask"].unsqueeze(-1).float()
        pooled = torch.cat([(h * m).sum(1) / m.sum(1), (h * m).max(1).values], -1)
        logits = head(pooled)
        y = batch["labels"]
        ce = torch.nn.functional.cross_entropy
        return ce(logits[:, :2], y[:, 0]) + ce(logits[:, 2:], y[:, 1])

    return model, step


def child(config: str, batch_size: int, tokens: int, layers: int | None) -> dict:
    torch.manual_seed(0)
    model, step = build(config, layers)
    model.train()  # from_pretrained returns eval mode, where checkpointing and dropout are off
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    step(make_batch(2, 32)).backward()  # warm-up: allocations and kernels
    opt.step()
    opt.zero_grad(set_to_none=True)
    batch = make_batch(batch_size, tokens)
    with PeakRSS() as mem:
        start = time.perf_counter()
        loss = step(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
    return {
        "config": config,
        "step_s": round(seconds, 2),
        "tokens_per_s": round(batch_size * tokens / seconds, 1),
        "step_peak_mb": round((mem.peak - mem.start) / 2**20, 1),
        "rss_before_step_mb": round(mem.start / 2**20, 1),
        "trainable_params": sum(p.numel() for p in params),
        "transformer": transformer_class(model),
    }


def transformer_class(model: torch.nn.Module) -> str:
    """The class of the outermost transformers model inside `model`: the causal LM for the
    original approach (`...ForCausalLM`), the base transformer for this classifier."""
    return next(
        type(m).__name__ for m in model.modules() if type(m).__module__.startswith("transformers.")
    )


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=512)
    p.add_argument(
        "--layers", type=int, default=None, help="keep only the first N layers (default all 30)"
    )
    p.add_argument(
        "--small", action="store_true", help="seconds: 1 layer, batch 2 x 32 tokens, one process"
    )
    p.add_argument("--config", choices=CONFIGS, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.small:
        args.batch, args.tokens, args.layers = 2, 32, 1
    if args.config:
        print(json.dumps(child(args.config, args.batch, args.tokens, args.layers)))
        return
    results = {}
    for config in CONFIGS:
        if args.small:  # a fresh process per configuration would triple the run's time
            results[config] = child(config, args.batch, args.tokens, args.layers)
            continue
        cmd = [
            sys.executable,
            __file__,
            "--config",
            config,
            "--batch",
            str(args.batch),
            "--tokens",
            str(args.tokens),
        ]
        if args.layers:
            cmd += ["--layers", str(args.layers)]
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if out.returncode != 0:
            raise SystemExit(f"{config} failed:\n{out.stderr[-3000:]}")
        results[config] = json.loads(out.stdout.strip().splitlines()[-1])
    orig, lora = results["original"], results["ours_lora"]
    print(
        json.dumps(
            {
                "model": "SmolLM2-135M-Instruct (embedded), 4-bit nf4, LoRA r=16 x 7 projections",
                "batch": args.batch,
                "tokens": args.tokens,
                "layers": args.layers or 30,
                # A step too small to move the RSS has no ratio.
                "memory_ratio": round(orig["step_peak_mb"] / lora["step_peak_mb"], 2)
                if lora["step_peak_mb"]
                else None,
                "step_time_ratio": round(orig["step_s"] / lora["step_s"], 2),
                "frozen_vs_lora_step_ratio": round(
                    results["ours_frozen"]["step_s"] / lora["step_s"], 3
                ),
                "embedding_phase_vs_lora_step_ratio": round(
                    results["ours_embedding_phase"]["step_s"] / lora["step_s"], 3
                ),
                "results": results,
                "device": "cpu",
                # bf16 is native with AVX512-BF16/AMX and emulated on AVX2: it moves the ratios.
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
