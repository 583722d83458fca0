"""Loop overhead: this project's training loop vs the Hugging Face Trainer, same model and data.

    python bench/train_loop.py [--subjects 4] [--epochs 3]

Both train the tiny Llama classifier (configs/tiny.yaml: fp32, LoRA, band_power tokens) on the
same synthetic data with the same batch size, AdamW, warmup + cosine schedule, clipping,
evaluation and a checkpoint at every epoch end. Throughput is measured from the end of the first
optimizer step to the end of the last (setup and model loading excluded), each system in its own
process so its peak RSS is its own. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def overrides(work: Path, epochs: int) -> list[str]:
    return [
        f"data.root={work / 'deap'}",
        f"data.cache_dir={work / 'cache'}",
        f"train.epochs={epochs}",
        "train.log_every=1",
        "train.tracker.kind=none",
        "model.phases=[{train: [head, embedding, lora]}]",
    ]


def ours(work: Path, epochs: int) -> dict:
    from eeg_emotion.config import load_settings
    from eeg_emotion.training.trainer import main

    settings = load_settings(
        ROOT / "configs" / "tiny.yaml", [*overrides(work, epochs), f"output_dir={work / 'ours'}"]
    )
    main(settings)
    rows = [json.loads(line) for line in (work / "ours" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "train/loss" in r]
    elapsed = steps[-1]["time"] - steps[0]["time"]
    return {
        "samples_per_s": (len(steps) - 1) * settings.train.batch_size / elapsed,
        "steps": len(steps),
    }


def trainer(work: Path, epochs: int) -> dict:
    import numpy as np
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from eeg_emotion.config import load_settings
    from eeg_emotion.data import pipeline
    from eeg_emotion.data.dataset import Collator, TokenDataset
    from eeg_emotion.model.classifier import EEGEmotionClassifier, InputSpec

    settings = load_settings(ROOT / "configs" / "tiny.yaml", overrides(work, epochs))
    torch.manual_seed(settings.seed)
    data = pipeline.build(settings.data, progress=False)
    model = EEGEmotionClassifier(settings.model, InputSpec.from_data(data))
    model.set_phase(["head", "embedding", "lora"])
    t = settings.train
    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            times.append(time.time())

    groups = model.trainable_groups()
    optimizer = torch.optim.AdamW(
        [{"params": groups["head"], "lr": t.lr_head}, {"params": groups["lora"], "lr": t.lr_lora}],
        weight_decay=t.weight_decay,
    )
    args = TrainingArguments(
        output_dir=str(work / "trainer"),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        num_train_epochs=epochs,
        lr_scheduler_type="cosine",
        warmup_steps=round(t.warmup_ratio * epochs * (len(data.indices("train")) // t.batch_size)),
        max_grad_norm=t.max_grad_norm,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        dataloader_drop_last=True,
        remove_unused_columns=False,
        seed=settings.seed,
        disable_tqdm=True,
    )
    run = Trainer(
        model=model,
        args=args,
        train_dataset=TokenDataset(data, "train"),
        eval_dataset=TokenDataset(data, "val"),
        data_collator=Collator(data.pad_id),
        optimizers=(optimizer, None),
        callbacks=[Clock()],
    )
    run.train()
    elapsed = times[-1] - times[0]
    return {
        "samples_per_s": (len(times) - 1) * t.batch_size / elapsed,
        "steps": len(times),
        "loss_is_finite": bool(np.isfinite(run.state.log_history[-1].get("train_loss", 0.0))),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--subjects", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="runs of each system (medians reported)")
    p.add_argument("--system", choices=["ours", "trainer"], help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.system:
        fn = ours if args.system == "ours" else trainer
        result = fn(Path(args.work), args.epochs)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    from eeg_emotion.data.synthetic import SyntheticSpec, synthesize

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        synthesize(
            work / "deap", SyntheticSpec(subjects=args.subjects, trials=40, samples=1664, seed=0)
        )
        env = {**os.environ, "EEG_EMOTION_HOME": str(work / "home")}
        runs: dict[str, list[dict]] = {"ours": [], "trainer": []}
        # The first run builds the dataset cache; then alternate, so slow phases of the machine
        # hit both systems alike, and report medians.
        for system in ["warmup"] + ["ours", "trainer"] * args.repeats:
            name = "ours" if system == "warmup" else system
            cmd = [
                sys.executable,
                __file__,
                "--system",
                name,
                "--work",
                str(work),
                "--epochs",
                str(args.epochs),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            if out.returncode != 0:
                raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
            if system != "warmup":
                runs[system].append(json.loads(out.stdout.strip().splitlines()[-1]))
            for folder in ("ours", "trainer"):
                shutil.rmtree(work / folder, ignore_errors=True)
    res = {
        k: {
            "samples_per_s": statistics.median(r["samples_per_s"] for r in v),
            "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in v),
            "steps": v[0]["steps"],
            "each": [round(r["samples_per_s"], 1) for r in v],
        }
        for k, v in runs.items()
    }
    print(
        json.dumps(
            {
                "ours_samples_per_s": round(res["ours"]["samples_per_s"], 1),
                "trainer_samples_per_s": round(res["trainer"]["samples_per_s"], 1),
                "ratio": round(res["ours"]["samples_per_s"] / res["trainer"]["samples_per_s"], 3),
                "ours_peak_rss_mb": round(res["ours"]["peak_rss_mb"], 1),
                "trainer_peak_rss_mb": round(res["trainer"]["peak_rss_mb"], 1),
                "steps": {"ours": res["ours"]["steps"], "trainer": res["trainer"]["steps"]},
                "samples_per_s_each_run": {
                    "ours": res["ours"]["each"],
                    "trainer": res["trainer"]["each"],
                },
                "setup": f"tiny Llama (fp32, LoRA), band_power tokens, {args.subjects} synthetic "
                f"subjects, {args.epochs} epochs, batch 8, eval + checkpoint each epoch, 1 process",
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
