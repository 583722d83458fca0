"""The synthetic benchmark: majority, band-power + LR, EEGNet and the LLM classifier side by side.

    python bench/synthetic_benchmark.py [--work runs/synthetic-benchmark] [--skip-llm]

Synthetic DEAP (8 subjects x 40 trials, seed 0; effect 1 is the `make demo` data) at three label
effect strengths, the `trial` split (trial-disjoint, the same split for every model), every model
with configs/demo.yaml's data settings: `launch/baseline.py` for the baselines, `launch/train.py`
for the LLM (embedded SmolLM2, first 2 layers, bf16 - the CPU-sized default). Then the leakage
demonstration: band-power + LR and the LLM again under the `segment` split, which puts windows of
one trial in train and test. A null run (effect 0, baselines only) shows what subject priors
alone give. Runs that already have results.json are not repeated. Writes WORK/benchmark.json and
WORK/benchmark.md (test balanced accuracy, trial level and window level, with 95 % CIs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from eeg_emotion.data.synthetic import SyntheticSpec, synthesize

ROOT = Path(__file__).resolve().parents[1]
STRENGTHS = {"null": 0.0, "weak": 0.3, "default": 1.0, "strong": 2.0}
MODELS = {
    "band-power + LR": ("baseline", ["baseline.name=band_power_lr"]),
    "EEGNet": ("baseline", ["baseline.name=eegnet"]),
    "LLM (embedded, 2 layers)": ("train", ["train.tracker.kind=none"]),
}


def run(kind: str, out: Path, overrides: list[str]) -> tuple[dict, float]:
    if not (out / "results.json").exists():
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
    p.add_argument("--skip-llm", action="store_true", help="baselines only (minutes, not an hour)")
    args = p.parse_args()
    work = Path(args.work).resolve()
    results: dict = {}
    plan = []
    for name, effect in STRENGTHS.items():
        for model, (kind, extra) in MODELS.items():
            if (kind == "train" and args.skip_llm) or (name == "null" and kind == "train"):
                continue
            plan.append((name, effect, "trial", model, kind, extra))
    for model in ("band-power + LR", "LLM (embedded, 2 layers)"):
        kind, extra = MODELS[model]
        if not (kind == "train" and args.skip_llm):
            plan.append(("default", 1.0, "segment", model, kind, extra))

    for name, effect, split, model, kind, extra in plan:
        root = work / "data" / name
        if not (root / "s08.dat").exists():
            synthesize(root, SyntheticSpec(subjects=8, trials=40, effect=effect, seed=0), workers=2)
        tag = f"{name}-{split}-{model.split()[0].lower()}"
        overrides = [
            f"data.root={root}",
            f"data.cache_dir={work / 'cache'}",
            f"data.split.protocol={split}",
            *extra,
        ]
        print(f"{tag} ...", flush=True)
        test, seconds = run(kind, work / "runs" / tag, overrides)
        entry = results.setdefault(f"{name} (effect {effect:g}), {split} split", {})
        targets = [t for t in test if isinstance(test[t], dict) and "macro_f1" in test[t]]
        trials = test["trial_level"]
        entry["majority"] = {t: round(trials[t]["majority_baseline"], 3) for t in targets}
        entry["subject_majority"] = {
            t: round(trials[t]["subject_majority_baseline"], 3) for t in targets
        }
        entry[model] = {
            "trials": {t: cell(test["trial_level"], t) for t in targets},
            "windows": {t: cell(test, t) for t in targets},
            "seconds": seconds,
        }
    (work / "benchmark.json").write_text(json.dumps(results, indent=1))
    lines = [
        "| data, split | model | valence bal. acc. [95% CI] | arousal bal. acc. [95% CI] "
        "| per window (val. / ar.) | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for setting, entry in results.items():
        maj, own = entry["majority"], entry["subject_majority"]
        lines.append(
            f"| {setting} | majority class (accuracy: global / each subject's own) | 0.500 "
            f"({maj['valence']:.3f} / {own['valence']:.3f}) | 0.500 ({maj['arousal']:.3f} / "
            f"{own['arousal']:.3f}) | | |"
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
                f"| {setting} | {model} | {cells[0]} | {cells[1]} | "
                f"{w['valence']['balanced_accuracy']:.3f} / {w['arousal']['balanced_accuracy']:.3f}"
                f" | {m['seconds']:.0f} |"
            )
    (work / "benchmark.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
