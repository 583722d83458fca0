"""The synthetic benchmark on one trial split: majority, band-power + LR, EEGNet and the LLM
classifier side by side, the original method fixed step by step, and the LLM's depth
(bench/synthetic_benchmark.py ranks models on pooled cross-validation instead).

    python bench/synthetic_split.py [--work runs/synthetic-benchmark] [--skip-llm]
        [--sections main original depth] [--strengths null weak default strong]
    python bench/synthetic_split.py --small   # a minute, baselines only (SMALL); prints JSON

Synthetic DEAP (8 subjects x 40 trials, seed 0; effect 1 is the `make demo` data), the `trial`
split (trial-disjoint, the same split for every model), every model with configs/demo.yaml's data
settings: `launch/baseline.py` for the baselines, `launch/train.py` for the LLM (embedded
SmolLM2, first 2 layers, bf16 - the CPU-sized default). Sections:

- main: null, weak, default and strong effects; band-power + LR, EEGNet, the LLM on quantized
  band-power tokens (the earlier input) and on continuous band-power values (the new input).
- original: the original method reproduced at the default effect (text codes of 8 quantile
  bins through the LLM tokenizer, max_length 128, the pre-trial baseline kept, the leaky
  `segment` split and bins fitted on every window), then each flaw fixed in turn, ending at the
  project's default; band-power + LR under the segment split shows the split's leak alone.
- depth: the LLM with 2, 8 and 30 of SmolLM2's layers on the default data.

Runs that already have results.json are reused if their settings are today's (else: an error
naming the run and the changed keys). Writes WORK/benchmark.json and
WORK/benchmark.md (test balanced accuracy, trial level and window level, with 95 % CIs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import yaml

from eeg_emotion.config import flatten, load_settings
from eeg_emotion.data.synthetic import SyntheticSpec, synthesize
from eeg_emotion.errors import ConfigError
from eeg_emotion.training.run_folder import check_settings

ROOT = Path(__file__).resolve().parents[1]
STRENGTHS = {"null": 0.0, "weak": 0.3, "default": 1.0, "strong": 2.0}
LLM = ["train.tracker.kind=none"]
MODELS = {
    "band-power + LR": ("baseline", ["baseline.name=band_power_lr"]),
    "EEGNet": ("baseline", ["baseline.name=eegnet"]),
    "LLM, quantized tokens": ("train", [*LLM, "data.tokenizer.continuous=false"]),
    "LLM, continuous values": ("train", [*LLM, "data.tokenizer.continuous=true"]),
}
# The original method, then one flaw fixed per row (each row keeps the fixes above it).
ORIGINAL = [
    (
        "original method: text codes, 8 bins fitted on every window (leak), 128 tokens, "
        "baseline kept, segment split (leak)",
        [
            "data.tokenizer.continuous=false",
            "data.tokenizer.kind=text",
            "data.tokenizer.code=binary",
            "data.quantize.num_bins=8",
            "data.quantize.edges=quantile",
            "data.tokenizer.max_tokens=128",
            "data.tokenizer.truncate=true",
            "data.baseline=keep",
            "data.split.protocol=segment",
            "data.quantize.fit_on=every_window_leaky",
        ],
    ),
    ("+ bins fitted on training windows only", ["data.quantize.fit_on=train"]),
    ("+ trial-disjoint split", ["data.split.protocol=trial"]),
    ("+ pre-trial baseline dropped", ["data.baseline=drop"]),
    (
        "+ band-power tokens, 16 bins, no truncation (the project's default input)",
        [
            "data.tokenizer.kind=band_power",
            "data.quantize.num_bins=16",
            "data.tokenizer.max_tokens=512",
            "data.tokenizer.truncate=false",
        ],
    ),
    ("+ continuous band-power values (the new input)", ["data.tokenizer.continuous=true"]),
]
DEPTHS = (2, 8, 30)
FULL = SyntheticSpec(subjects=8, trials=40, seed=0)
# --small: a real run of the main section at its smallest - the default effect, 2 subjects x 12
# trials of 16 s (two 8 s windows after the baseline), the baselines only (EEGNet for 1 epoch):
# an LLM epoch alone takes minutes on 2 cores.
SMALL = SyntheticSpec(subjects=2, trials=12, samples=2048, seed=0)
SMALL_MODELS = {
    "band-power + LR": MODELS["band-power + LR"],
    "EEGNet": ("baseline", [*MODELS["EEGNet"][1], "baseline.eegnet.epochs=1"]),
}
BASELINE_IGNORES = ("data.quantize.", "data.tokenizer.continuous")


def check_reusable(kind: str, out: Path, overrides: list[str]) -> None:
    """A finished run is reused only if it was made with today's settings, never silently."""
    settings = load_settings(ROOT / "configs" / "demo.yaml", [*overrides, f"output_dir={out}"])
    if kind == "train":
        check_settings(settings, out)  # the run folder's own rule: every key that matters
        # ... bar the epoch count, which a relaunch may raise to extend a run: here it would
        # report the shorter run, so it must match too.
        saved = yaml.safe_load((out / "config.yaml").read_text())["train"]["epochs"]
        if saved != settings.train.epochs:
            raise SystemExit(
                f"{out} trained {saved} epochs, configs/demo.yaml asks for "
                f"{settings.train.epochs}: remove it (or use another --work) to measure it again"
            )
        return
    # A baseline reads the data, split and baseline settings, but not the LLM's train keys nor
    # how tokens are quantized or valued (its features are the unquantized band powers).
    old = flatten(yaml.safe_load((out / "config.yaml").read_text()))
    now = flatten(settings.model_dump(mode="json"))
    changed = [
        k
        for k in sorted(old.keys() | now.keys())
        if k.startswith(("seed", "data.", "baseline."))
        and not k.startswith(BASELINE_IGNORES)
        and old.get(k) != now.get(k)
    ]
    if changed:
        raise SystemExit(
            f"{out} was made with other settings ({', '.join(changed)}) than configs/demo.yaml "
            "gives now: remove it (or use another --work) to measure it again"
        )


def run(kind: str, out: Path, overrides: list[str]) -> tuple[dict, float]:
    if (out / "results.json").exists():
        try:
            check_reusable(kind, out, overrides)
        except ConfigError as exc:
            msg = f"{exc}; or remove it (or use another --work) to measure it again"
            raise SystemExit(msg) from None
    else:
        script = ROOT / "launch" / ("baseline.py" if kind == "baseline" else "train.py")
        cmd = [sys.executable, str(script), "--config", str(ROOT / "configs" / "demo.yaml")]
        cmd += [*overrides, f"output_dir={out}"]
        started = time.perf_counter()
        log = out.with_suffix(".log")
        out.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as f:
            if subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode != 0:
                raise SystemExit(f"{' '.join(cmd)} failed; see {log}")
        (out / "bench_seconds.txt").write_text(f"{time.perf_counter() - started:.1f}\n")
    seconds = (
        float((out / "bench_seconds.txt").read_text())
        if (out / "bench_seconds.txt").exists()
        else float("nan")
    )
    return json.loads((out / "results.json").read_text())["test"], seconds


def val_score(run_dir: Path) -> float:
    """Mean balanced accuracy on val (windows): what any choice between models may look at."""
    return json.loads((run_dir / "results.json").read_text())["val"]["mean_balanced_accuracy"]


def cell(m: dict, target: str) -> dict:
    x = m[target]
    return {
        "balanced_accuracy": round(x["balanced_accuracy"], 3),
        "ci95": [round(v, 3) for v in x["balanced_accuracy_ci95"]],
        "accuracy": round(x["accuracy"], 3),
        "majority_accuracy": round(x["majority_baseline"], 3),
        "p_vs_chance": x["p_value_balanced_accuracy_vs_chance"],
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--work", default="runs/synthetic-benchmark")
    p.add_argument("--skip-llm", action="store_true", help="baselines only (minutes, not hours)")
    p.add_argument("--sections", nargs="+", default=["main", "original", "depth"])
    p.add_argument("--strengths", nargs="+", default=list(STRENGTHS), choices=list(STRENGTHS))
    p.add_argument("--depths", nargs="+", type=int, default=list(DEPTHS), help="depth section")
    p.add_argument("--small", action="store_true", help="a minute's smoke run, baselines only")
    args = p.parse_args()
    work = Path(args.work).resolve()
    spec, models = FULL, MODELS
    if args.small:
        args.sections, args.strengths, spec = ["main"], ["default"], SMALL
        args.skip_llm, models = True, SMALL_MODELS
    results: dict = {}
    plan = []  # (strength, split label, model label, kind, overrides, tag)
    if "main" in args.sections:
        for name in args.strengths:
            for model, (kind, extra) in models.items():
                if not (kind == "train" and args.skip_llm):
                    tag = f"{name}-{model.lower().replace(' ', '-').replace(',', '')}"
                    plan.append((name, "trial split", model, kind, extra, tag))
    if "original" in args.sections:
        kind, extra = MODELS["band-power + LR"]
        plan.append(("default", "segment split (leaky)", "band-power + LR", kind,
                     [*extra, "data.split.protocol=segment"], "default-segment-lr"))  # fmt: skip
        fixes: list[str] = []
        # The last two rows are the main section's default-effect LLM runs: not run twice.
        same = {len(ORIGINAL) - 2: "quantized-tokens", len(ORIGINAL) - 1: "continuous-values"}
        for i, (label, overrides) in enumerate(ORIGINAL if not args.skip_llm else []):
            fixes = [*fixes, *overrides]
            tag = f"default-llm-{same[i]}" if i in same else f"default-original-{i}"
            plan.append(("default", "original method, fixed step by step", label, "train",
                         [*LLM, *fixes], tag))  # fmt: skip
    if "depth" in args.sections and not args.skip_llm:
        for layers in args.depths:  # 2 layers is the main section's run
            plan.append(("default", "depth", f"LLM, continuous values, {layers} layers", "train",
                         [*MODELS["LLM, continuous values"][1], f"model.num_layers={layers}"],
                         "default-llm-continuous-values" if layers == 2 else
                         f"default-depth-{layers}"))  # fmt: skip

    for name, split, model, kind, extra, tag in plan:
        effect = STRENGTHS[name]
        # The small data apart: a full run's results, made on other data, are refused, not reused.
        root = work / ("data-small" if args.small else "data") / name
        if not (root / f"s{spec.subjects:02d}.dat").exists():
            synthesize(root, replace(spec, effect=effect), workers=2, overwrite=True)
        overrides = [f"data.root={root}", f"data.cache_dir={work / 'cache'}", *extra]
        print(f"{tag} ...", flush=True)
        test, seconds = run(kind, work / "runs" / tag, overrides)
        entry = results.setdefault(f"{name} (effect {effect:g}), {split}", {})
        targets = [t for t in test if isinstance(test[t], dict) and "macro_f1" in test[t]]
        trials = test["trial_level"]
        entry["majority"] = {t: round(trials[t]["majority_baseline"], 3) for t in targets}
        entry["subject_majority"] = {
            t: round(trials[t]["subject_majority_baseline"], 3) for t in targets
        }
        entry[model] = {
            "trials": {t: cell(test["trial_level"], t) for t in targets},
            "windows": {t: cell(test, t) for t in targets},
            "trial_mean_balanced_accuracy": round(trials["mean_balanced_accuracy"], 4),
            "val_mean_balanced_accuracy": round(val_score(work / "runs" / tag), 4),
            "seconds": seconds,
        }
    (work / "benchmark.json").write_text(json.dumps(results, indent=1))
    lines = [
        "| data, split | model | valence bal. acc. [95% CI] | arousal bal. acc. [95% CI] "
        "| mean | per window (val. / ar.) | val (windows) | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for setting, entry in results.items():
        maj, own = entry["majority"], entry["subject_majority"]
        lines.append(
            f"| {setting} | majority class (accuracy: global / each subject's own) | 0.500 "
            f"({maj['valence']:.3f} / {own['valence']:.3f}) | 0.500 ({maj['arousal']:.3f} / "
            f"{own['arousal']:.3f}) | 0.500 | | | |"
        )
        for model, m in entry.items():
            if model in ("majority", "subject_majority"):
                continue
            t, w = m["trials"], m["windows"]
            cells = [
                f"{t[x]['balanced_accuracy']:.3f} [{t[x]['ci95'][0]:.2f}, {t[x]['ci95'][1]:.2f}]"
                for x in ("valence", "arousal")
            ]
            lines.append(
                f"| {setting} | {model} | {cells[0]} | {cells[1]} "
                f"| {m['trial_mean_balanced_accuracy']:.3f} | "
                f"{w['valence']['balanced_accuracy']:.3f} / {w['arousal']['balanced_accuracy']:.3f}"
                f" | {m['val_mean_balanced_accuracy']:.3f} | {m['seconds']:.0f} |"
            )
    (work / "benchmark.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.small:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
