"""Loop overhead: this project's training loop vs the Hugging Face Trainer, same model and data.

    python bench/train_loop.py [--subjects 4] [--epochs 3] [--repeats 3] [--threads N]
    python bench/train_loop.py --small     # seconds: 2 subjects x 12 trials, 1 epoch, 1 run each

Both train the tiny Llama classifier (configs/tiny.yaml: fp32, LoRA, band_power tokens) on the
same synthetic data with the same batch size, AdamW, warmup + cosine schedule, clipping,
evaluation and a checkpoint at every epoch end. Throughput is measured from the end of the first
optimizer step to the end of the last (setup and model loading excluded; one hook on every torch
optimizer step clocks both alike), in wall time and in the process's CPU time (all threads:
what a slow spell of a shared machine moves least), each system in its own process so its peak
RSS is its own. Prints one JSON object.
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

from step_probe import stepped_by  # bench/, the script's folder

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


def step_clock() -> list[tuple[float, float]]:
    """(wall, CPU) seconds at the end of every optimizer step of this process, whichever loop
    makes it."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    marks: list[tuple[float, float]] = []
    register_optimizer_step_post_hook(
        lambda *_: marks.append((time.perf_counter(), time.process_time()))
    )
    return marks


def rates(marks: list[tuple[float, float]], batch_size: int) -> dict:
    import torch

    (wall0, cpu0), (wall1, cpu1) = marks[0], marks[-1]
    samples = (len(marks) - 1) * batch_size
    return {
        "samples_per_s": samples / (wall1 - wall0),
        "samples_per_cpu_s": samples / (cpu1 - cpu0),
        "steps": len(marks),
        "threads": torch.get_num_threads(),
    }


def ours(work: Path, epochs: int) -> dict:
    from eeg_emotion.config import load_settings
    from eeg_emotion.training.trainer import main

    settings = load_settings(
        ROOT / "configs" / "tiny.yaml", [*overrides(work, epochs), f"output_dir={work / 'ours'}"]
    )
    marks = step_clock()
    with stepped_by() as loop:
        main(settings)
    return {**rates(marks, settings.train.batch_size), "stepped_by": sorted(loop)}


def trainer(work: Path, epochs: int) -> dict:
    import numpy as np
    import torch
    from torch.utils.data import DataLoader, Dataset
    from transformers import Trainer, TrainingArguments

    from eeg_emotion.config import load_settings
    from eeg_emotion.data import pipeline
    from eeg_emotion.data.dataset import Collator, TokenDataset, model_inputs
    from eeg_emotion.model.classifier import EEGEmotionClassifier, InputSpec

    settings = load_settings(ROOT / "configs" / "tiny.yaml", overrides(work, epochs))
    torch.manual_seed(settings.seed)
    data = pipeline.build(settings.data, progress=False)
    model = EEGEmotionClassifier(settings.model, InputSpec.from_data(data))
    model.set_phase(["head", "embedding", "lora"])
    t = settings.train
    collate = Collator(data.pad_id)

    def collate_model_inputs(items: list[dict]) -> dict:
        # The Trainer passes every batch key to forward: keep only what the classifier takes
        # (subject, trial and window name the rows, for per-trial scoring).
        return model_inputs(collate(items))

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
        # Its column removal would drop the keys Collator stacks; collate_model_inputs drops them.
        remove_unused_columns=False,
        seed=settings.seed,
        disable_tqdm=True,
    )

    class FullEvalTrainer(Trainer):
        def get_eval_dataloader(self, eval_dataset: str | Dataset | None = None) -> DataLoader:
            # dataloader_drop_last drops the last partial training batch, as this loop does,
            # but would also drop the last val batch, which this loop evaluates.
            drop, self.args.dataloader_drop_last = self.args.dataloader_drop_last, False
            try:
                return super().get_eval_dataloader(eval_dataset)
            finally:
                self.args.dataloader_drop_last = drop

    run = FullEvalTrainer(
        model=model,
        args=args,
        train_dataset=TokenDataset(data, "train"),
        eval_dataset=TokenDataset(data, "val"),
        data_collator=collate_model_inputs,
        optimizers=(optimizer, None),
    )
    marks = step_clock()
    with stepped_by() as loop:
        run.train()
    return {
        **rates(marks, t.batch_size),
        "stepped_by": sorted(loop),
        "loss_is_finite": bool(np.isfinite(run.state.log_history[-1].get("train_loss", 0.0))),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--subjects", type=int, default=4)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3, help="runs of each system (medians reported)")
    p.add_argument(
        "--threads", type=int, help="torch threads per run (default torch's: one per core)"
    )
    p.add_argument("--trials", type=int, default=40, help="synthetic trials per subject")
    p.add_argument(
        "--small", action="store_true", help="seconds: 2 subjects x 12 trials, 1 epoch, 1 run each"
    )
    p.add_argument("--system", choices=["ours", "trainer"], help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.small:
        args.subjects, args.trials, args.epochs, args.repeats = 2, 12, 1, 1
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
            work / "deap",
            SyntheticSpec(subjects=args.subjects, trials=args.trials, samples=1664, seed=0),
        )
        env = {**os.environ, "EEG_EMOTION_HOME": str(work / "home")}
        if args.threads:
            env["OMP_NUM_THREADS"] = str(args.threads)
        runs: dict[str, list[dict]] = {"ours": [], "trainer": []}
        # The first run builds the dataset cache; then alternate, so slow phases of the machine
        # hit both systems alike, and report medians.
        # A small run measures nothing worth a warm-up: its first run builds the cache.
        warmup = [] if args.small else ["warmup"]
        for system in warmup + ["ours", "trainer"] * args.repeats:
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

    def median(system: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[system])

    def pairs(key: str) -> list[float]:
        # Each run of ours over the Trainer run right after it: a slow spell of the machine
        # hits both of a pair.
        return [o[key] / t[key] for o, t in zip(runs["ours"], runs["trainer"], strict=True)]

    report = {
        "ours_samples_per_s": round(median("ours", "samples_per_s"), 1),
        "trainer_samples_per_s": round(median("trainer", "samples_per_s"), 1),
        "ratio": round(median("ours", "samples_per_s") / median("trainer", "samples_per_s"), 3),
        "ratio_median_of_pairs": round(statistics.median(pairs("samples_per_s")), 3),
        "ratio_each_pair": [round(r, 3) for r in pairs("samples_per_s")],
        "ours_samples_per_cpu_s": round(median("ours", "samples_per_cpu_s"), 1),
        "trainer_samples_per_cpu_s": round(median("trainer", "samples_per_cpu_s"), 1),
        "cpu_ratio_median_of_pairs": round(statistics.median(pairs("samples_per_cpu_s")), 3),
        "cpu_ratio_each_pair": [round(r, 3) for r in pairs("samples_per_cpu_s")],
        "ours_peak_rss_mb": round(median("ours", "peak_rss_mb"), 1),
        "trainer_peak_rss_mb": round(median("trainer", "peak_rss_mb"), 1),
        "steps": {k: v[0]["steps"] for k, v in runs.items()},
        # The modules whose code made each system's optimizer steps: which loop really ran.
        "stepped_by": {k: v[0]["stepped_by"] for k, v in runs.items()},
        "samples_per_s_each_run": {
            k: [round(r["samples_per_s"], 1) for r in v] for k, v in runs.items()
        },
        "setup": f"tiny Llama (fp32, LoRA), band_power tokens, {args.subjects} synthetic "
        f"subjects x {args.trials} trials, {args.epochs} epochs, batch 8, eval + checkpoint "
        f"each epoch, 1 process, {runs['ours'][0]['threads']} threads",
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
