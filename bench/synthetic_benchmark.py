"""The synthetic benchmark that can decide: models ranked on cross-validation in which every trial
is tested once, each verdict a paired test on the same trials, the goal tests Holm-corrected.

    python bench/synthetic_benchmark.py [--work runs/cv-benchmark] [--data null default ...]
        [--rows lr connectivity no-llm llm-patch-encoder ...] [--protocol subject_kfold|kfold]
        [--folds N] [--seeds 3] [--budget cpu]
    python bench/synthetic_benchmark.py --small   # minutes: tiny data and backbone; prints JSON
    python bench/synthetic_benchmark.py --budget full --work runs/cv-benchmark-8b \
        --llm model.source=meta-llama/Llama-3.1-8B-Instruct model.precision=4bit \
        model.num_layers=null train.batch_size=16    # the same on a GPU with the 8B backbone

Synthetic DEAP, 8 subjects x 40 trials (seed 0). Data: the spectral effects at four strengths
(null 0, weak 0.3, default 1 - the `make demo` data - and strong 2) and the two effects band
power cannot see (`launch/synthesize.py --effect coupling|temporal`, strength 1).

Protocols (`launch/cv.py`): `subject_kfold` (the default, primary: the subjects in --folds
groups, default 4 of 2 subjects; a fold's subjects are test, one or more of the others val, no
subject in two parts, so chance is chance) or `kfold` (secondary: folds over each subject's
trials, default 5; every subject in train and test, so the subject majority is the bar). Both
test every one of the 320 trials once.

Rows (configs/demo.yaml's data settings; the patch rows configs/demo_patch.yaml's):

- majority: each fold's training majority class, scored like every row;
- subject majority: each subject's majority class among its training trials of the fold (the
  fold's overall majority for a subject without training trials, as under subject_kfold), no
  EEG at all. Each model is also tested, paired, against it;
- lr, connectivity, eegnet: band-power + logistic regression, connectivity features into an L1
  logistic regression, and EEGNet (`launch/baseline.py`);
- no-llm: the patch encoder and the channel readout with no transformer (`model.source=none`):
  what a backbone adds; no-llm-front-end: the same with the filter-bank front end
  (`model.front_end.kind=filterbank`). The gate before LLM runs: it must beat LR on the coupling
  and temporal data on val (the Val section of the table);
- llm-band-power: the LLM on continuous band powers (configs/demo.yaml);
- llm-patch-encoder: the patch LLM as EEG encoders are built: bidirectional attention, positions
  from time, a readout per channel, and no best model picked before step SELECT_AFTER;
  llm-patch-encoder-random: the same with a randomly initialized backbone;
- llm-patch: the original method's patch LLM (configs/demo_patch.yaml as it is);
  llm-patch-random: the same with a randomly initialized backbone (`model.init=random`).

SEEDED rows (the trained rows of the goal cells) run with --seeds training seeds (`seed` and
`model.init_seed`): the table gives seed 0, the spread over seeds and the seed ensemble (mean
trial probabilities); the verdicts test both seed 0 and the ensemble. --llm settings go to the
rows with a backbone only.

`--budget cpu` shortens what a 2-core CPU cannot afford (CPU_BUDGET, listed in the output);
`--budget full` runs the configs as they are. Every model is scored on every window of its test
trials as its data settings cut them (the table's windows/trial column): under `--budget cpu`
that is 7 windows of 4 s per trial, not 14 of 8 s. Every verdict is a paired test
(`eeg_emotion.evaluation.compare.paired`: exact McNemar, paired bootstrap CI) on the pooled test
trials: REFERENCE (else the first LLM row run) against each other row, and every row against the
subject majority. The goal tests are Holm-corrected within each family (GOALS), seed 0 and the
ensemble separately; each row's balanced accuracy is also tested against chance (permutation p).

Each row is also scored on every fold's val trials (the Val section: a trial in the val part of
several folds counts once per fold), with paired val verdicts of GATE's row against LR and the
connectivity baseline: choices are made there, never on test.

A row whose CV group exists is reused only if it was made with the settings it would run with
now (protocol, folds, model and every setting but where files are); otherwise nothing runs and
the bench names the row and the keys that differ. WORK/benchmark-<protocol>.{json,md} are
rewritten as each row finishes (a later run with --finished-only tabulates them);
WORK/compare-<protocol>-<data>/compare.{md,json} hold the seed-0 comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmark_report import (  # bench/, the script's folder
    ENSEMBLE,
    MAJORITY,
    SEED0,
    SUBJECT,
    ensemble,
    holm,
    markdown,
    no_eeg,
    paired_verdicts,
    seed_spread,
    trial_entry,
    val_entry,
    windows_per_trial,
)

from eeg_emotion.cli import cv as cv_cli
from eeg_emotion.data.synthetic import SyntheticSpec, synthesize
from eeg_emotion.evaluation import compare

ROOT = Path(__file__).resolve().parents[1]
DATA: dict[str, dict[str, Any]] = {
    "null": {"effect": 0.0},
    "weak": {"effect": 0.3},
    "default": {"effect": 1.0},
    "strong": {"effect": 2.0},
    "coupling": {"effect": 1.0, "effect_kind": "coupling"},
    "temporal": {"effect": 1.0, "effect_kind": "temporal"},
}
PROTOCOLS = {"subject_kfold": 4, "kfold": 5}  # -> default number of folds
DEMO, PATCH = "configs/demo.yaml", "configs/demo_patch.yaml"
# Evaluations before this optimizer step cannot pick the best model: under --budget cpu a fold
# trains about 90 steps an epoch, so the first epoch (LoRA frozen) is past and four to five
# evaluations at every 20 steps remain to choose from.
SELECT_AFTER = 80
ENCODER = [
    "model.attention=bidirectional", "model.positions=time", "model.readout=channels",
    f"train.select_after={SELECT_AFTER}",
]  # fmt: skip


@dataclass(frozen=True)
class Row:
    label: str
    config: str
    baseline: str | None = None  # launch/cv.py --baseline; None: trained by the LLM trainer
    overrides: tuple[str, ...] = ()
    backbone: bool = True  # whether --llm settings apply (a trained row with a transformer)


ROWS = {
    "lr": Row("band-power + LR", DEMO, "band_power_lr"),
    "connectivity": Row("connectivity + L1 LR", DEMO, "connectivity"),
    "eegnet": Row("EEGNet", DEMO, "eegnet"),
    "no-llm": Row("no-LLM (patch encoder, channel readout)", PATCH, None,
                  ("model.source=none", "model.readout=channels",
                   f"train.select_after={SELECT_AFTER}"), backbone=False),
    "no-llm-front-end": Row("no-LLM, patch encoder + filter-bank front end", PATCH, None,
                            ("model.source=none", "model.readout=channels",
                             f"train.select_after={SELECT_AFTER}",
                             "model.front_end.kind=filterbank"), backbone=False),
    "llm-band-power": Row("LLM, continuous band power", DEMO),
    "llm-patch-encoder": Row("LLM, patch encoder", PATCH, None, tuple(ENCODER)),
    "llm-patch-encoder-random": Row("LLM, patch encoder, random-init backbone", PATCH, None,
                                    (*ENCODER, "model.init=random")),
    "llm-patch": Row("LLM, patches (original method)", PATCH),
    "llm-patch-random": Row("LLM, patches (original method), random-init backbone", PATCH, None,
                            ("model.init=random",)),
}  # fmt: skip
REFERENCE = "llm-patch-encoder"  # the row every verdict compares with the others
# The gate before LLM runs: this row against these rows on val, on the data band power cannot see.
GATE = ("no-llm-front-end", ("lr", "connectivity"))
SEEDED = ("no-llm", "llm-patch-encoder")  # trained rows of the goal cells: --seeds seeds each
# The paired tests the goals name, each family Holm-corrected on its own: (name, the rows B the
# reference is tested against, the data sets, what the goal asks).
GOALS = [
    ("beats LR", ("lr",), ("coupling", "temporal"), "A better than B, Holm p < 0.05, in >= 2 "
     "of the 4 cells and worse in none"),
    ("vs connectivity", ("connectivity",), tuple(DATA), "verdicts on every data set; stretch: "
     "level (CI includes 0) on coupling and temporal"),
    ("vs no-LLM", ("no-llm",), tuple(DATA), "verdicts on every data set"),
]  # fmt: skip
BASELINE_ROWS = ("lr", "connectivity", "eegnet")  # the "best baseline" of non-inferiority
MARGIN = -0.03  # non-inferiority on the default data: the CI's lower bound above this
# What a 2-core CPU cannot afford: 4 s windows every 8 s (7 per 60 s trial, not 14 of 8 s), so
# the patch LLM reads 32 x 4 = 128 tokens per window; band power over the whole window.
CPU_BUDGET = [
    "data.window=4s", "data.stride=8s", "data.tokenizer.sub_window=4s",
    "data.tokenizer.sub_stride=4s",
]  # fmt: skip
# The trained rows compute in fp32 under --budget cpu: a CPU without AVX512-BF16 emulates bf16,
# and its bf16 backward runs over 20x slower than fp32 there (bench/cpu_bf16.py).
CPU_TRAINED = ["model.precision=fp32", "model.compute_dtype=fp32", "train.mixed_precision=no"]
FULL = SyntheticSpec(subjects=8, trials=40, seed=0)
# --small: 4 subjects x 10 trials of 13 s (2 subject folds: 2 test, 1 val and 1 training subject
# each), the coupling data, LR, connectivity, no-LLM and the patch-encoder LLM (2 seeds) on the tiny
# backbone (the no-LLM row as wide) with 2 s windows and 0.5 s patches: a real run of every step
# (CV, seeds, pooling, paired verdicts, Holm, the table) in minutes.
SMALL = SyntheticSpec(subjects=4, trials=10, samples=1664, seed=0)
SMALL_ROWS = ["lr", "connectivity", "no-llm", "llm-patch-encoder"]
SMALL_SEEDS = {"llm-patch-encoder": 2}
SMALL_OVERRIDES = [
    "data.window=2s", "data.stride=2s", "data.tokenizer.sub_window=2s",
    "data.tokenizer.sub_stride=2s", "data.tokenizer.patch=0.5s", "model.source=tiny",
    "model.precision=fp32", "train.batch_size=8", "train.eval_every=0", "baseline.eegnet.epochs=1",
    "train.select_after=1", "model.hidden_size=64",
]  # fmt: skip
# Keys of a CV group's settings a reused row may differ in: where files are, not what ran.
WHERE = ("output_dir", "data.root", "data.cache_dir", "train.tracker")
CV = "eeg_emotion.cli.cv"  # what runs a row's CV group


@dataclass(frozen=True)
class Planned:
    """One CV group the bench runs (or reuses): a row's seed on one data set."""

    data: str
    row: str
    seed: int
    group: Path
    command: list[str]
    overrides: list[str]  # what launch/cv.py records as the group's settings


def plan(args: argparse.Namespace, data: str, row: str, seed: int) -> Planned:
    spec = ROWS[row]
    name = row if seed == 0 else f"{row}-seed{seed}"
    # kfold keeps the folders it always had, so its finished rows stay reusable.
    top = "cv" if args.protocol == "kfold" else f"cv-{args.protocol}"
    group = args.work / top / data / name
    overrides = [f"data.root={data_root(args, data)}", f"data.cache_dir={args.work / 'cache'}"]
    overrides += ["train.tracker.kind=none"]  # the bench's tables are its record, not W&B
    overrides += [*(CPU_BUDGET if args.budget == "cpu" else []), *spec.overrides]
    if args.budget == "cpu" and spec.baseline is None:
        overrides += CPU_TRAINED
    if spec.baseline is None and seed:
        overrides += [f"seed={seed}", f"model.init_seed={seed}"]
    if spec.backbone and spec.baseline is None:
        overrides += args.llm  # e.g. the 8B backbone on a GPU
    if args.small:  # the tiny backbone for the rows that have one
        backbone = "model.source="
        overrides += [o for o in SMALL_OVERRIDES if spec.backbone or not o.startswith(backbone)]
    command = [sys.executable, "-m", CV, "--config", str(ROOT / spec.config)]
    command += ["--protocol", args.protocol, "--folds", str(args.folds), "--out", str(group)]
    command += ["--baseline", spec.baseline] if spec.baseline else []
    return Planned(data, row, seed, group, [*command, *overrides], overrides)


def data_root(args: argparse.Namespace, data: str) -> Path:
    return args.work / ("data-small" if args.small else "data") / data


def seeds_of(args: argparse.Namespace, row: str) -> range:
    if args.small:
        return range(SMALL_SEEDS.get(row, 1))
    return range(args.seeds if row in SEEDED else 1)


def changes(planned: Planned, args: argparse.Namespace) -> list[str]:
    """How the CV group already in the planned folder differs from what the row runs now
    (nothing when there is no group there yet)."""
    from eeg_emotion.config import Settings, flatten, load_settings
    from eeg_emotion.evaluation import cv

    if not (planned.group / cv.GROUP_FILE).exists():
        return []
    saved = cv.read_group(planned.group)
    spec = ROWS[planned.row]
    now = load_settings(ROOT / spec.config, planned.overrides).model_dump(mode="json")
    out = [
        f"{key} ({old!r} -> {new!r})"
        for key, old, new in (
            ("protocol", saved.protocol, args.protocol),
            ("folds", saved.num_folds, args.folds),
            ("baseline", saved.baseline, spec.baseline),
        )
        if old != new
    ]
    before, after = flatten(saved.settings), flatten(now)
    # A setting added since the row ran, at the default that keeps what it did, changes nothing.
    defaults = flatten(Settings().model_dump(mode="json"))
    for key in after.keys() - before.keys():
        if key in defaults and after[key] == defaults[key]:
            before[key] = after[key]
    for key in sorted(before.keys() | after.keys()):
        where = any(key == w or key.startswith(w + ".") for w in WHERE)
        if not where and before.get(key) != after.get(key):
            out.append(f"{key} ({before.get(key)!r} -> {after.get(key)!r})")
    return out


def refuse_changed(plans: list[Planned], args: argparse.Namespace) -> None:
    """Before anything runs: every existing group must be the row as it runs now, or a table
    would put old numbers under today's heading."""
    bad = [(p, c) for p in plans if (c := changes(p, args))]
    if bad:
        lines = [
            f"  {p.data} / {p.row}"
            + (f" seed {p.seed}" if p.seed else "")
            + f" ({p.group}): "
            + ", ".join(c[:8])
            + (f" and {len(c) - 8} more" if len(c) > 8 else "")
            for p, c in bad
        ]
        raise SystemExit(
            "refusing to reuse finished rows made with other settings than they would run "
            "with now:\n" + "\n".join(lines) + "\nremove those folders or use another --work"
        )


def run_group(planned: Planned, fork: bool) -> float:
    """One CV group (reused when finished) in a process of its own, forked where `fork` (see
    forked_groups); its wall seconds, recorded with it."""
    group = planned.group
    seconds = group / "bench_seconds.txt"
    if (group / "cv_results.json").exists() and seconds.exists():
        return float(seconds.read_text())
    sys.stdout.write(f"{planned.data} / {group.name} ...\n")  # one write: groups run in threads
    sys.stdout.flush()
    group.parent.mkdir(parents=True, exist_ok=True)
    log = group.with_suffix(".log")
    started = time.perf_counter()
    assert planned.command[1:3] == ["-m", CV]
    with log.open("w") as f:
        code = cv_cli.run_fold(CV, planned.command[3:], fork, output=f)
    if code != 0:
        raise SystemExit(f"{' '.join(planned.command)} failed; see {log}")
    elapsed = time.perf_counter() - started
    seconds.write_text(f"{elapsed:.1f}\n")
    return elapsed


def forked_groups() -> bool:
    """Whether CV groups are forked from this process (cli/cv.py's run_fold, as cv forks its
    folds): then what their folds run is imported here once, and no group pays ~10 s of
    imports again. A row's seconds are then its own work."""
    if not cv_cli.can_fork():
        return False
    cv_cli.preload()
    return True


def finished(planned: Planned) -> bool:
    return (planned.group / "bench_seconds.txt").exists()


def verdicts(
    compare_dir: Path,
    models: dict[str, dict[str, compare.Trials]],
    base: compare.Trials | None,
    reference: str | None,
) -> list[dict]:
    """The reference row against each other row on the same pooled trials, per variant (seed 0,
    the seed ensemble: the other row's same variant where it has one), with compare.md of the
    seed-0 groups; then every row's seed 0 against `base`, the subject majority."""
    out = []
    if reference is not None and len(models) > 1:
        others = [r for r in models if r != reference]
        folders = [models[r][SEED0].folder for r in (reference, *others)]
        compare.write_comparison(folders, compare_dir, overwrite=True)
        for variant, a in models[reference].items():
            for row in others:
                b = models[row].get(variant, models[row][SEED0])
                out += paired_verdicts(a, b, (ROWS[reference].label, ROWS[row].label), variant)
    if base is not None:
        for row, variants in models.items():
            out += paired_verdicts(variants[SEED0], base, (ROWS[row].label, SUBJECT), SEED0)
    return out


def goal_tests(results: dict, reference: str | None) -> list[dict]:
    """The goals' paired tests, Holm-adjusted within each family and variant; the null data's
    tests against chance (every row, Holm over rows and targets); non-inferiority on the
    default data against the best baseline (a CI bound: no p to correct)."""
    out: list[dict] = []
    if reference is None:
        return out
    a = ROWS[reference].label
    for name, rows, data, asks in GOALS:
        labels = {ROWS[r].label for r in rows}
        for variant in (SEED0, ENSEMBLE):
            family = [
                {"goal": name, "asks": asks, "data": d, **v}
                for d in data
                for v in results["data"].get(d, {}).get("verdicts", [])
                if v["a"] == a and v["b"] in labels and v["variant"] == variant
            ]
            for test, p in zip(family, holm([t["p_mcnemar"] for t in family]), strict=True):
                test["p_holm"] = p
            out += family
    null = results["data"].get("null")
    if null:
        family = [
            {"goal": "null at chance", "asks": "no row better than chance", "data": "null",
             "a": label, "b": "chance", "target": t, "variant": SEED0,
             "balanced_accuracy": c["balanced_accuracy"], "p_vs_chance": c["p_vs_chance"]}
            for label, m in null["rows"].items() if not label.endswith(f"({ENSEMBLE})")
            for t, c in m["trials"].items()
        ]  # fmt: skip
        for test, p in zip(family, holm([t["p_vs_chance"] for t in family]), strict=True):
            test["p_holm"] = p
        out += family
    default = results["data"].get("default")
    if default:
        for variant in (SEED0, ENSEMBLE):
            out += _non_inferiority(default, a, variant)
    return out


def _non_inferiority(entry: dict, a: str, variant: str) -> list[dict]:
    baselines = [ROWS[r].label for r in BASELINE_ROWS if ROWS[r].label in entry["rows"]]
    out = []
    for target in {v["target"]: None for v in entry["verdicts"]}:
        if not baselines:
            break
        best = max(baselines, key=lambda b: entry["rows"][b]["trials"][target]["balanced_accuracy"])
        for v in entry["verdicts"]:
            if (v["a"], v["b"], v["target"], v["variant"]) == (a, best, target, variant):
                out.append({
                    "goal": "non-inferior on default", "data": "default",
                    "asks": f"lower CI bound of A - best baseline above {MARGIN}",
                    **v, "met": v["ci95"][0] > MARGIN,
                })  # fmt: skip
    return out


def tabulate(
    args: argparse.Namespace, name: str, done: dict[str, list[Planned]], *, paired: bool = True
) -> dict:
    """One data set's entry from its finished groups: rows, seeds, no-EEG rows and (`paired`)
    the verdicts."""
    entry: dict = {"rows": {}, "verdicts": []}
    models: dict[str, dict[str, compare.Trials]] = {}
    for row, plans in done.items():
        groups = [p.group for p in plans]
        seconds = [float((g / "bench_seconds.txt").read_text()) for g in groups]
        first = compare.load_trials(groups[0])
        m = {
            "seconds": round(sum(seconds)),
            "group_seconds": [round(s) for s in seconds],
            "windows_per_trial": windows_per_trial(groups[0]),
            **trial_entry(first),
            **val_entry(groups[0]),
        }
        models[row] = {SEED0: first}
        if len(groups) > 1:
            m["seeds"] = seed_spread(groups)
            models[row][ENSEMBLE] = ensemble(groups)
        entry["rows"][ROWS[row].label] = m
        if ENSEMBLE in models[row]:
            ens = trial_entry(models[row][ENSEMBLE])
            entry["rows"][f"{ROWS[row].label} ({ENSEMBLE})"] = {
                "seconds": None, "group_seconds": [], "windows_per_trial": m["windows_per_trial"],
                **ens,
            }  # fmt: skip
    if models:
        first_group = next(iter(done.values()))[0].group
        base = no_eeg(first_group, own=True)
        entry[MAJORITY] = trial_entry(no_eeg(first_group, own=False))
        entry[SUBJECT] = trial_entry(base)
        reference = (
            REFERENCE
            if REFERENCE in models
            else next((r for r in models if ROWS[r].baseline is None), None)
        )
        entry["reference"] = ROWS[reference].label if reference else None
        if paired:
            out = args.work / f"compare-{args.protocol}-{name}"
            entry["verdicts"] = verdicts(out, models, base, reference)
            entry["val_verdicts"] = gate_verdicts(done)
    return entry


def gate_verdicts(done: dict[str, list[Planned]]) -> list[dict]:
    """GATE's row (seed 0) against its rows on the same val trials, where both ran."""
    row, others = GATE
    if row not in done:
        return []
    a = compare.load_trials(done[row][0].group, "val")
    return [
        v
        for other in others
        if other in done
        for v in paired_verdicts(
            a, compare.load_trials(done[other][0].group, "val"),
            (ROWS[row].label, ROWS[other].label), SEED0,
        )
    ]  # fmt: skip


def write(args: argparse.Namespace, results: dict) -> str:
    """benchmark-<protocol>.json and .md, as they stand: a later run picks up from them."""
    refs = {e.get("reference") for e in results["data"].values()} - {None}
    key = next((r for r in ROWS if ROWS[r].label in refs), None)
    results["goals"] = goal_tests(results, key)
    stem = args.work / f"benchmark-{args.protocol}"
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1))
    text = markdown(results)
    stem.with_suffix(".md").write_text(text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--work", type=Path, default=Path("runs/cv-benchmark"))
    p.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--protocol", choices=list(PROTOCOLS), default="subject_kfold")
    p.add_argument("--folds", type=int, help="default: 4 for subject_kfold, 5 for kfold")
    p.add_argument(
        "--seeds", type=int, default=3, help=f"training seeds of the rows {', '.join(SEEDED)}"
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="CV groups run at once (default 1: each row's seconds measured alone; --small: 2)",
    )
    p.add_argument("--budget", choices=["cpu", "full"], default="cpu")
    p.add_argument("--small", action="store_true", help="minutes: tiny data and backbone")
    p.add_argument(
        "--llm",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="settings for the rows with a backbone only, e.g. "
        "model.source=meta-llama/Llama-3.1-8B-Instruct",
    )
    p.add_argument(
        "--finished-only",
        action="store_true",
        help="run nothing: tabulate the rows that finished, list the others as not run",
    )
    args = p.parse_args()
    spec = FULL
    if args.small:
        spec, args.data, args.rows = SMALL, ["coupling"], SMALL_ROWS
        args.folds, args.seeds = args.folds or 2, max(SMALL_SEEDS.values())
        args.jobs = max(args.jobs, 2)  # its processes mostly import: two at once on two cores
    args.folds = args.folds or PROTOCOLS[args.protocol]
    if args.folds < 2 or args.seeds < 1 or args.jobs < 1:
        p.error("--folds must be at least 2, --seeds and --jobs at least 1")
    args.work = args.work.resolve()
    plans = {
        (d, r): [plan(args, d, r, s) for s in seeds_of(args, r)]
        for d in args.data
        for r in args.rows
    }
    refuse_changed([x for group in plans.values() for x in group], args)
    os.chdir(ROOT)  # where a group runs, forked or not
    fork = not args.finished_only and forked_groups()
    results: dict = {
        "protocol": args.protocol, "folds": args.folds, "seeds": args.seeds,
        "budget": args.budget,
        "budget_settings": [*(CPU_BUDGET + CPU_TRAINED if args.budget == "cpu" else []),
                            *(SMALL_OVERRIDES if args.small else [])],
        "data": {},
    }  # fmt: skip
    for name in args.data:
        root = data_root(args, name)
        if not (root / f"s{spec.subjects:02d}.dat").exists() and not args.finished_only:
            synthesize(root, replace(spec, **DATA[name]), workers=2, overwrite=True)
        done: dict[str, list[Planned]] = {}
        rows = [
            r for r in args.rows if not args.finished_only or all(map(finished, plans[(name, r)]))
        ]
        not_run = [ROWS[r].label for r in args.rows if r not in rows]
        # --jobs groups at a time, submitted in row order; each row tabulated once its groups are
        # in (its verdicts once the data set's rows are all in): an interrupted run leaves what
        # it measured, and a later one reuses it.
        with ThreadPoolExecutor(args.jobs) as pool:
            running = {r: [pool.submit(run_group, x, fork) for x in plans[(name, r)]] for r in rows}
            for row in rows:
                for future in running[row]:
                    future.result()
                done[row] = plans[(name, row)]
                results["data"][name] = {
                    **tabulate(args, name, done, paired=False), "not_run": not_run
                }  # fmt: skip
                write(args, results)
        results["data"][name] = {**tabulate(args, name, done), "not_run": not_run}
    text = write(args, results)
    print(text)
    if args.small:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
