"""The synthetic benchmark that can decide: models ranked on pooled k-fold cross-validation over
every trial, each verdict a paired test on the same trials.

    python bench/synthetic_benchmark.py [--work runs/cv-benchmark] [--data null weak ...]
        [--rows lr eegnet llm-band-power llm-patch llm-patch-random] [--folds 5] [--budget cpu]
    python bench/synthetic_benchmark.py --small   # minutes: tiny data and backbone; prints JSON
    python bench/synthetic_benchmark.py --budget full --work runs/cv-benchmark-8b \
        --llm model.source=meta-llama/Llama-3.1-8B-Instruct model.precision=4bit \
        model.num_layers=null train.batch_size=16    # the same on a GPU with the 8B backbone

Synthetic DEAP, 8 subjects x 40 trials (seed 0). Data: the spectral effects at four strengths
(null 0, weak 0.3, default 1 - the `make demo` data - and strong 2) and the two effects band
power cannot see (`launch/synthesize.py --effect coupling|temporal`, strength 1). `kfold` over
each subject's trials (`launch/cv.py`): with 5 folds every one of the 320 trials is tested once.
Rows (configs/demo.yaml's data settings; the patch rows configs/demo_patch.yaml's):

- majority: each fold's training majority class (chance balanced accuracy, 0.5);
- subject majority: each subject's majority class among its training trials of the fold, no EEG
  at all. Subjects rate differently, so under kfold (every subject in training) it is above
  chance even on null data: each model is also tested, paired, against it ("beyond the
  subject's base rate");
- lr, eegnet: band-power + logistic regression and EEGNet (`launch/baseline.py`);
- llm-band-power: the LLM on continuous band powers (configs/demo.yaml);
- llm-patch: the LLM on 1 s raw-signal patches (configs/demo_patch.yaml);
- llm-patch-random: the same with the backbone's weights randomly initialized
  (`model.init=random`): what the pretraining contributes.

`--budget cpu` shortens what a 2-core CPU cannot afford (listed in CPU_BUDGET and in the
output); `--budget full` runs the configs as they are. Every verdict is a paired test from
`eeg_emotion.evaluation.compare` on the pooled test trials (patch LLM against each other row),
and each row's pooled trial balanced accuracy is tested against chance (permutation p). A row
whose CV group already finished is reused (`launch/cv.py` refuses other settings in its
folder). Writes WORK/benchmark.json, WORK/benchmark.md and WORK/compare-<data>/compare.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from eeg_emotion.data.synthetic import SyntheticSpec, synthesize
from eeg_emotion.evaluation import compare
from eeg_emotion.evaluation.metrics import balanced_accuracy, subject_majorities, uncertainty

ROOT = Path(__file__).resolve().parents[1]
DATA: dict[str, dict[str, Any]] = {
    "null": {"effect": 0.0},
    "weak": {"effect": 0.3},
    "default": {"effect": 1.0},
    "strong": {"effect": 2.0},
    "coupling": {"effect": 1.0, "effect_kind": "coupling"},
    "temporal": {"effect": 1.0, "effect_kind": "temporal"},
}
LLM = ["train.tracker.kind=none"]
DEMO, PATCH = "configs/demo.yaml", "configs/demo_patch.yaml"
# name -> (label, config, launch/cv.py options, overrides)
ROWS = {
    "lr": ("band-power + LR", DEMO, ["--baseline", "band_power_lr"], []),
    "eegnet": ("EEGNet", DEMO, ["--baseline", "eegnet"], []),
    "llm-band-power": ("LLM, continuous band power", DEMO, [], LLM),
    "llm-patch": ("LLM, patches", PATCH, [], LLM),
    "llm-patch-random": ("LLM, patches, random-init backbone", PATCH, [],
                         [*LLM, "model.init=random"]),
}  # fmt: skip
REFERENCE = "llm-patch"  # the row every verdict compares with the others
SUBJECT = "subject majority (no EEG)"
# What a 2-core CPU cannot afford: 4 s windows every 8 s (7 per 60 s trial, not 14 of 8 s), so
# the patch LLM reads 32 x 4 = 128 tokens per window; band power over the whole window.
CPU_BUDGET = [
    "data.window=4s", "data.stride=8s", "data.tokenizer.sub_window=4s",
    "data.tokenizer.sub_stride=4s",
]  # fmt: skip
FULL = SyntheticSpec(subjects=8, trials=40, seed=0)
# --small: 2 subjects x 10 trials of 13 s, 2 folds, the coupling data, LR and the patch rows on
# the tiny backbone with 2 s windows and 0.5 s patches: a real run of every step (CV, pooling,
# paired verdicts, the table) in minutes.
SMALL = SyntheticSpec(subjects=2, trials=10, samples=1664, seed=0)
SMALL_OVERRIDES = [
    "data.window=2s", "data.stride=2s", "data.tokenizer.sub_window=2s",
    "data.tokenizer.sub_stride=2s", "data.tokenizer.patch=0.5s", "model.source=tiny",
    "model.precision=fp32", "train.batch_size=8", "train.eval_every=0", "baseline.eegnet.epochs=1",
]  # fmt: skip


def run_row(group: Path, row: str, root: Path, args: argparse.Namespace) -> float:
    """One row's CV group (skipped when finished); its wall seconds, recorded with it."""
    _, config, options, overrides = ROWS[row]
    seconds = group / "bench_seconds.txt"
    if (group / "cv_results.json").exists() and seconds.exists():
        return float(seconds.read_text())
    budget = CPU_BUDGET if args.budget == "cpu" else []
    cmd = [sys.executable, "-m", "eeg_emotion.cli.cv", "--config", str(ROOT / config)]
    cmd += ["--protocol", "kfold", "--folds", str(args.folds), "--out", str(group), *options]
    cmd += [f"data.root={root}", f"data.cache_dir={args.work / 'cache'}", *budget, *overrides]
    if row.startswith("llm"):
        cmd += args.llm  # e.g. the 8B backbone on a GPU
    if args.small:
        cmd += SMALL_OVERRIDES
    group.parent.mkdir(parents=True, exist_ok=True)
    log = group.with_suffix(".log")
    started = time.perf_counter()
    with log.open("w") as f:
        if subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT).returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed; see {log}")
    elapsed = time.perf_counter() - started
    seconds.write_text(f"{elapsed:.1f}\n")
    return elapsed


def row_entry(group: Path, seconds: float) -> dict:
    """Pooled trial-level figures of one CV group (see `trial_entry`) and its wall seconds."""
    pooled = json.loads((group / "cv_results.json").read_text())["pooled"]["trials"]
    out = trial_entry(compare.load_trials(group))
    for target, cell in out["trials"].items():
        cell["majority_accuracy"] = round(pooled[target]["majority_baseline"], 3)
    return {"seconds": round(seconds), **out}


def trial_entry(trials: compare.Trials) -> dict:
    """Per target over all folds' test trials: balanced accuracy with its bootstrap CI and
    permutation p-value against chance."""
    out: dict = {"trials": {}}
    for j, target in enumerate(trials.targets):
        y, pred = trials.labels[:, j], trials.preds[:, j]
        u = uncertainty(y, pred, np.arange(len(y)), trials.num_classes, 0, rows_are_trials=False)
        out["trials"][target] = {
            "balanced_accuracy": round(balanced_accuracy(y, pred, trials.num_classes), 3),
            "ci95": [round(v, 3) for v in u["balanced_accuracy_ci95"]],
            "p_vs_chance": u["p_value_balanced_accuracy_vs_chance"],
            "n": len(y),
        }
    return out


def subject_majority(group: Path) -> compare.Trials:
    """A CV group's pooled test trials predicted by each subject's majority class among its
    training trials of the same fold (every trial's label is known: each is tested once)."""
    trials = compare.load_trials(group)
    label = {tuple(k): y for k, y in zip(trials.keys.tolist(), trials.labels, strict=True)}
    preds = np.empty_like(trials.preds)
    for fold in trials.folds:
        train = json.loads((group / fold / "splits.json").read_text())["train"]
        y = np.array([label[tuple(k)] for k in train])
        own = subject_majorities(y, np.array([k[0] for k in train]), trials.num_classes)
        for i in np.flatnonzero(trials.fold == fold):
            preds[i] = own[int(trials.keys[i, 0])]
    return replace(trials, model=SUBJECT, preds=preds)


def verdicts(
    work: Path, name: str, groups: dict[str, Path], base: compare.Trials | None
) -> list[dict]:
    """The reference row against each other row on the same pooled trials (compare.md too),
    then every row against `base`, the subject majority of the same folds."""
    out = []
    if REFERENCE in groups and len(groups) > 1:
        others = [r for r in groups if r != REFERENCE]
        folders = [groups[REFERENCE], *(groups[r] for r in others)]
        compare.write_comparison(folders, work / f"compare-{name}", overwrite=True)
        result = json.loads((work / f"compare-{name}" / compare.JSON).read_text())
        for row, pair in zip(others, result["comparisons"], strict=True):
            for target, t in pair["targets"].items():
                out.append(_verdict(ROWS[REFERENCE][0], ROWS[row][0], target, t["all"]))
    if base is not None:
        for row, group in groups.items():
            trials = compare.load_trials(group)
            compare.check_same_trials([trials, base])
            for j, target in enumerate(trials.targets):
                args = (trials.labels[:, j], trials.preds[:, j], base.preds[:, j])
                pair = compare.paired(*args, num_classes=trials.num_classes)
                out.append(_verdict(ROWS[row][0], SUBJECT, target, pair))
    return out


def _verdict(a: str, b: str, target: str, pair: dict) -> dict:
    return {
        "a": a, "b": b, "target": target,
        "difference": round(pair["balanced_accuracy_difference"], 3),
        "ci95": [round(v, 3) for v in pair["balanced_accuracy_difference_ci95"]],
        "p_mcnemar": pair["p_value_mcnemar"],
        "verdict": compare.verdict(pair, a, b),
    }  # fmt: skip


def markdown(results: dict, budget: list[str]) -> str:
    lines = [
        f"Pooled {results['folds']}-fold CV over every trial; budget: "
        + (", ".join(budget) if budget else "the configs as they are"),
        "",
        "| data | model | valence bal. acc. [95% CI] | arousal bal. acc. [95% CI] "
        "| p vs chance (val. / ar.) | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in results["data"].items():
        maj = next(iter(entry["rows"].values()))["trials"] if entry["rows"] else {}
        if maj:
            acc = " / ".join(f"{maj[t]['majority_accuracy']:.3f}" for t in maj)
            lines.append(f"| {name} | majority (accuracy {acc}) | 0.500 | 0.500 | | |")
        if "subject_majority" in entry:
            t = entry["subject_majority"]["trials"]
            lines.append(f"| {name} | {SUBJECT} | {_cells(t)} | {_ps(t)} | |")
        for label, m in entry["rows"].items():
            t = m["trials"]
            lines.append(f"| {name} | {label} | {_cells(t)} | {_ps(t)} | {m['seconds']} |")
        for label in entry.get("not_run", []):
            lines.append(f"| {name} | {label} | not run | not run | | |")
    lines += [
        "",
        "Paired verdicts (pooled test trials): A's balanced accuracy minus B's, its paired "
        "bootstrap 95 % CI and the exact McNemar p; * where p < 0.05.",
        "",
        "| data | A | B | valence: A - B [95% CI], p | arousal: A - B [95% CI], p |",
        "|---|---|---|---|---|",
    ]
    for name, entry in results["data"].items():
        pairs: dict[tuple[str, str], list[str]] = {}
        for v in entry["verdicts"]:
            star = "*" if v["p_mcnemar"] < 0.05 else ""
            pairs.setdefault((v["a"], v["b"]), []).append(
                f"{v['difference']:+.3f} [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}], "
                f"p={_p(v['p_mcnemar'])}{star}"
            )
        for (a, b), cells in pairs.items():
            lines.append(f"| {name} | {a} | {b} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def _p(p: float) -> str:
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _cells(t: dict) -> str:
    return " | ".join(
        f"{c['balanced_accuracy']:.3f} [{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}]" for c in t.values()
    )


def _ps(t: dict) -> str:
    return " / ".join(f"{c['p_vs_chance']:.3f}" for c in t.values())


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--work", type=Path, default=Path("runs/cv-benchmark"))
    p.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--budget", choices=["cpu", "full"], default="cpu")
    p.add_argument("--small", action="store_true", help="minutes: tiny data and backbone")
    p.add_argument(
        "--llm",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="settings for the LLM rows only, e.g. model.source=meta-llama/Llama-3.1-8B-Instruct",
    )
    p.add_argument(
        "--finished-only",
        action="store_true",
        help="run nothing: tabulate the rows that finished, list the others as not run",
    )
    args = p.parse_args()
    spec = FULL
    if args.small:
        spec, args.folds, args.data = SMALL, 2, ["coupling"]
        args.rows = ["lr", "llm-patch", "llm-patch-random"]
    args.work = args.work.resolve()
    results: dict = {"folds": args.folds, "budget": args.budget, "data": {}}
    for name in args.data:
        root = args.work / ("data-small" if args.small else "data") / name
        if not (root / f"s{spec.subjects:02d}.dat").exists():
            synthesize(root, replace(spec, **DATA[name]), workers=2, overwrite=True)
        groups: dict[str, Path] = {}
        entry: dict = {"rows": {}, "verdicts": []}
        for row in args.rows:
            group = args.work / "cv" / name / row
            if args.finished_only and not (group / "bench_seconds.txt").exists():
                entry.setdefault("not_run", []).append(ROWS[row][0])
                continue
            groups[row] = group
            print(f"{name} / {row} ...", flush=True)
            seconds = run_row(groups[row], row, root, args)
            entry["rows"][ROWS[row][0]] = row_entry(groups[row], seconds)
        base = subject_majority(next(iter(groups.values()))) if groups else None
        if base is not None:
            entry["subject_majority"] = trial_entry(base)
        entry["verdicts"] = verdicts(args.work, name, groups, base)
        results["data"][name] = entry
        (args.work / "benchmark.json").write_text(json.dumps(results, indent=1))
    text = markdown(results, CPU_BUDGET if args.budget == "cpu" else [])
    (args.work / "benchmark.md").write_text(text)
    print(text)
    if args.small:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
