"""Recordings as an amplifier writes them against the same recordings written clean.

    python bench/amplifier.py [--work DIR] [--models lr llm] [--small]

One synthetic EDF dataset (launch/synthesize.py --format edf, the default spectral effect),
written twice from the same seed: clean at 128 Hz, and as an amplifier's output (subjects at
512 and 1000 Hz in turn, DC offsets of up to 5 mV, 50 uV drift, 30 uV of 50 Hz line noise, an
online reference channel and a dead channel marked bad in each channels.tsv). Each model
(configs/mne.yaml: band-power + LR, `--models llm` the LLM too) is trained three times:

- clean: the clean recordings;
- amplifier, preprocessed: `data.filter=[1,45] data.notch=50 data.reference=average`;
- amplifier, raw: resampled to 128 Hz and the bad channel interpolated (what the `mne` source
  always does), nothing else.

Every run scores the same test trials (one split seed): the amplifier rows are compared with
the clean one per target at trial level (launch/compare.py: the clean run's balanced accuracy
minus this one's, with a paired bootstrap CI, and an exact McNemar test). Writes
WORK/amplifier.{json,md}; a finished run is reused (its results.json), so an interrupted bench
picks up where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eeg_emotion.cli import compare as compare_cli  # noqa: E402
from eeg_emotion.cli import cv as cv_cli  # noqa: E402
from eeg_emotion.cli import synthesize as synthesize_cli  # noqa: E402

AMPLIFIER = [
    "--rate", "512", "1000", "--dc-offset", "5000", "--drift", "50", "--line-noise", "30",
    "--line-frequency", "50", "--reference", "Ref", "--dead-channel", "T7",
]  # fmt: skip
PREPROCESS = ["data.filter=[1,45]", "data.notch=50", "data.reference=average"]
ROWS = {  # row: (data set, extra settings)
    "clean": ("clean", []),
    "amplifier, preprocessed": ("amplifier", PREPROCESS),
    "amplifier, raw": ("amplifier", []),
}
MODELS = {"lr": "band-power + LR", "llm": "LLM (configs/mne.yaml)"}
TARGETS = ("valence", "arousal")


def synthesize(root: Path, size: list[str], amplifier: bool) -> None:
    if (root / ".done").exists():
        return
    argv = ["--format", "edf", "--out", str(root), *size, "--seed", "0", "--overwrite"]
    if synthesize_cli.main(argv + (AMPLIFIER if amplifier else [])) != 0:
        raise SystemExit(f"synthesize {root} failed")
    (root / ".done").write_text("")


def train(run: Path, model: str, root: Path, extra: list[str], small: bool) -> None:
    """One run folder (reused when finished), in a process of its own (forked on Linux, as
    launch/cv.py runs its folds)."""
    if (run / "results.json").exists():
        return
    settings = [f"data.root={root}", f"data.cache_dir={run.parent / 'cache'}", f"output_dir={run}"]
    settings += ["train.tracker.kind=none", *extra]
    if small and model == "llm":
        settings += ["model.source=tiny", "model.precision=fp32", "train.epochs=1"]
    command = "eeg_emotion.cli.baseline" if model == "lr" else "eeg_emotion.cli.train"
    argv = ["--config", str(ROOT / "configs" / "mne.yaml"), *settings]
    run.parent.mkdir(parents=True, exist_ok=True)
    with (run.parent / f"{run.name}.log").open("w") as log:
        code = cv_cli.run_fold(command, argv, cv_cli.can_fork(), output=log)
    if code != 0:
        raise SystemExit(f"{run}: exit {code}; see {run.parent / (run.name + '.log')}")


def trial_cell(run: Path, target: str) -> dict:
    cell = json.loads((run / "results.json").read_text())["test"]["trial_level"][target]
    return {"balanced_accuracy": round(cell["balanced_accuracy"], 3),
            "ci95": [round(v, 3) for v in cell["balanced_accuracy_ci95"]],
            "trials": cell["support"]}  # fmt: skip


def paired(clean: Path, other: Path, out: Path) -> dict:
    """The other run against the clean one on the same test trials, per target."""
    if compare_cli.main([str(clean), str(other), "--out", str(out), "--overwrite"]) != 0:
        raise SystemExit(f"compare {clean} {other} failed")
    targets = json.loads((out / "compare.json").read_text())["comparisons"][0]["targets"]
    return {
        t: {"difference": round(targets[t]["all"]["balanced_accuracy_difference"], 3),
            "ci95": [round(v, 3) for v in targets[t]["all"]["balanced_accuracy_difference_ci95"]],
            "p_mcnemar": targets[t]["all"]["p_value_mcnemar"]}
        for t in TARGETS
    }  # fmt: skip


def _difference(v: dict) -> str:
    lo, hi = v["ci95"]
    return f"{v['difference']:+.3f} [{lo:+.2f}, {hi:+.2f}], p={v['p_mcnemar']:.3f}"


def markdown(result: dict) -> str:
    lines = [
        "| model | recordings | valence bal. acc. [95% CI] | arousal bal. acc. [95% CI] "
        "| clean minus this: valence | clean minus this: arousal |",
        "|---|---|---|---|---|---|",
    ]
    for model, rows in result["models"].items():
        for row, entry in rows.items():
            cells = [f"{entry[t]['balanced_accuracy']:.3f} [{entry[t]['ci95'][0]:.2f}, "
                     f"{entry[t]['ci95'][1]:.2f}]" for t in TARGETS]  # fmt: skip
            vs = entry.get("vs_clean")
            diffs = [_difference(vs[t]) if vs else "" for t in TARGETS]
            lines.append(f"| {MODELS[model]} | {row} | " + " | ".join(cells + diffs) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--work", type=Path, default=Path("runs/amplifier"))
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=["lr"])
    p.add_argument("--small", action="store_true", help="seconds: 4 subjects x 8 short trials")
    args = p.parse_args()
    work = args.work.resolve()
    size = ["--subjects", "4", "--trials", "8", "--seconds", "20", "20"]
    if not args.small:
        size = ["--subjects", "8", "--trials", "20", "--seconds", "60", "60"]
    for name in ("clean", "amplifier"):
        synthesize(work / name, size, amplifier=name == "amplifier")
    result: dict = {"size": size, "amplifier": AMPLIFIER, "preprocess": PREPROCESS, "models": {}}
    for model in args.models:
        rows: dict = {}
        for row, (data, extra) in ROWS.items():
            run = work / model / row.replace(", ", "-").replace(" ", "-")
            train(run, model, work / data, extra, args.small)
            rows[row] = {t: trial_cell(run, t) for t in TARGETS}
            if row != "clean":
                clean = work / model / "clean"
                rows[row]["vs_clean"] = paired(clean, run, run / "vs-clean")
        result["models"][model] = rows
        (work / "amplifier.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    (work / "amplifier.md").write_text(table)
    print(table)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
