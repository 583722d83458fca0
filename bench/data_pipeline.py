"""Data pipeline benchmark: generation, cold and warm preprocessing, peak memory, TorchEEG.

    python bench/data_pipeline.py [--subjects 32] [--work /tmp/eeg-bench]
                                  [--torcheeg-python .venv-torcheeg/bin/python]
    python bench/data_pipeline.py --small    # seconds: 2 subjects x 12 trials, TorchEEG on both
    python bench/data_pipeline.py --format all|deap|dreamer|seed|seed_iv|amigos [--small]

Each phase runs in its own process so its peak RSS (ru_maxrss) is its own. Prints one
JSON object. TorchEEG (its DEAPDataset with a band differential-entropy offline transform: the
same 8 s / 4 s-stride windows as our band_power tokens) needs its own environment because it
pins an old scipy: `bash bench/setup_torcheeg.sh` makes `.venv-torcheeg`.

`--format` times instead, per format, our reader + build (the format's configs/*.yaml, cold)
against TorchEEG's class of that dataset (DEAPDataset, DREAMERDataset, SEEDDataset,
SEEDIVDataset, AMIGOSDataset, the same band differential entropy on the same windows) on the
same synthetic files (`FORMAT_SIZES`; `--small`: `SMALL_FORMAT_SIZES`), both in one run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAND_POWER = ["data.tokenizer.kind=band_power"]
SYMBOLS = [
    "data.tokenizer.kind=symbols",
    "data.tokenizer.continuous=false",  # continuous values are band_power's only
    "data.tokenizer.decimate=4",
    "data.tokenizer.max_tokens=8192",
]


def phase_generate(work: Path, subjects: int, trials: int) -> dict:
    from eeg_emotion.data.synthetic import SyntheticSpec, synthesize

    start = time.perf_counter()
    synthesize(work / "deap", SyntheticSpec(subjects=subjects, trials=trials, seed=0), workers=2)
    return {"seconds": time.perf_counter() - start}


def phase_build(
    work: Path, cache: str, overrides: list[str], subjects: int | None, fmt: str = "deap"
) -> dict:
    from eeg_emotion.config import load_settings
    from eeg_emotion.data.pipeline import build

    extra = (
        [f"data.subjects=[{','.join(str(s) for s in range(1, subjects + 1))}]"] if subjects else []
    )
    settings = load_settings(
        ROOT / "configs" / CONFIGS[fmt],
        [f"data.root={work / fmt}", f"data.cache_dir={work / cache}", *overrides, *extra],
    )
    start, cpu = time.perf_counter(), time.process_time()
    data = build(settings.data, progress=False)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "cpu_s": time.process_time() - cpu,
        "rows": len(data.rows),
        "tokens_per_window": data.meta["tokens_per_window"],
    }


# ---------------------------------------------------------------- --format: one per format

CONFIGS = {"deap": "demo.yaml"} | {f: f"{f}.yaml" for f in ("dreamer", "seed", "seed_iv", "amigos")}
# Each format's synthetic copy (synthetic_formats.FormatSpec fields; the rest the real dataset's):
# a few hundred 8 s windows each. AMIGOS' long videos 17-20 are read by neither side (ours:
# long_videos drop; TorchEEG: num_trial=16), so they are kept short.
FORMAT_SIZES: dict[str, dict] = {
    "deap": {"subjects": 2, "trials": 10, "seconds": (60, 60)},
    "dreamer": {"subjects": 2, "trials": 6, "seconds": (65, 120)},
    "seed": {"subjects": 1, "sessions": 2, "trials": 4, "seconds": (90, 120)},
    "seed_iv": {"subjects": 1, "sessions": 3, "trials": 3},
    "amigos": {"subjects": 1, "long_seconds": (20, 30)},
}
SMALL_FORMAT_SIZES: dict[str, dict] = {  # enough trials for every part of each config's split
    "deap": {"subjects": 2, "trials": 8, "seconds": (12, 12)},
    "dreamer": {"subjects": 2, "trials": 8, "seconds": (10, 14)},
    "seed": {"subjects": 1, "sessions": 2, "trials": 8, "seconds": (10, 14)},
    "seed_iv": {"subjects": 1, "sessions": 3, "trials": 4, "seconds": (10, 14)},
    "amigos": {"subjects": 2, "seconds": (14, 18), "long_seconds": (14, 18)},
}
# TorchEEG's baseline: seconds before each trial its classes average (DEAP 3, DREAMER 61,
# AMIGOS 5, read from the files' first seconds); SEED and SEED-IV have none.
TORCHEEG_BASELINE = {"deap": 3, "dreamer": 61, "amigos": 5}

TORCHEEG_CODE = """
import json, os, sys, time
from torcheeg import datasets, transforms
names = {"deap": "DEAPDataset", "dreamer": "DREAMERDataset", "seed": "SEEDDataset",
         "seed_iv": "SEEDIVDataset", "amigos": "AMIGOSDataset"}
out = {}
for fmt, root, io_path, rate, baseline in json.loads(sys.argv[1]):
    extra = {"num_baseline": baseline, "baseline_chunk_size": 128} if baseline else {}
    extra.update({"mat_path": root} if fmt == "dreamer" else {"root_path": root})
    extra.update({"num_trial": 16} if fmt == "amigos" else {})
    start, cpu = time.perf_counter(), time.process_time()
    ds = getattr(datasets, names[fmt])(
        io_path=io_path, chunk_size=8 * rate, overlap=4 * rate,
        offline_transform=transforms.BandDifferentialEntropy(sampling_rate=rate),
        num_worker=0, verbose=False, **extra)
    out[fmt] = {"seconds": time.perf_counter() - start, "cpu_s": time.process_time() - cpu,
                "rows": len(ds)}
print(json.dumps(out))
"""


def torcheeg_command(teeg: Path, jobs: list[tuple[str, Path, Path]]) -> list[str]:
    """TorchEEG's class of each format on the files in its folder (what it takes: DREAMER.mat,
    Preprocessed_EEG, eeg_raw_data, or the folder), one after another in one process of its
    own interpreter `teeg` (its imports paid once, outside the timings); `jobs` holds
    (format, folder, io_path)."""
    inner = {"dreamer": "DREAMER.mat", "seed": "Preprocessed_EEG", "seed_iv": "eeg_raw_data"}
    rows = [
        [fmt, str(folder / inner[fmt] if fmt in inner else folder), str(io_path),
         200 if fmt in ("seed", "seed_iv") else 128, TORCHEEG_BASELINE.get(fmt, 0)]
        for fmt, folder, io_path in jobs
    ]  # fmt: skip
    return [str(teeg), "-c", TORCHEEG_CODE, json.dumps(rows)]


def compare_formats(args: argparse.Namespace, me: list[str], work: Path) -> dict:
    """Per format: our reader + build and TorchEEG's class on the same synthetic files, timed
    in the same run (wall and CPU time), with their ratios."""
    from eeg_emotion.data.synthetic_formats import FormatSpec, write_synthetic

    teeg = Path(args.torcheeg_python)
    formats = list(CONFIGS) if args.format == "all" else [args.format]
    sizes = SMALL_FORMAT_SIZES if args.small else FORMAT_SIZES
    report: dict = {"formats": {}}
    for fmt in formats:
        write_synthetic(fmt, work / fmt, FormatSpec(**sizes[fmt]), workers=2)
    # Each side reads every format in one process of its own, its imports paid once, outside
    # the timings (ours: every reader imported first).
    ours_all = run_child([*me, "--formats", ",".join(formats), "--phase", "band_power:formats"])
    jobs = [(f, work / f, work / f"torcheeg-io-{f}") for f in formats]
    theirs_all = run_child(torcheeg_command(teeg, jobs)) if teeg.exists() else {}
    for fmt in formats:
        ours = ours_all[fmt]
        row = {
            "sizes": sizes[fmt],
            "ours_s": round(ours["seconds"], 3),
            "ours_cpu_s": round(ours["cpu_s"], 3),
            "ours_rows": ours["rows"],
            "tokens_per_window": ours["tokens_per_window"],
            "torcheeg_s": None,
        }
        if fmt in theirs_all:
            theirs = theirs_all[fmt]
            row.update(
                {
                    "torcheeg_s": round(theirs["seconds"], 3),
                    "torcheeg_cpu_s": round(theirs["cpu_s"], 3),
                    "torcheeg_rows": theirs["rows"],
                    "torcheeg_ratio": round(theirs["seconds"] / ours["seconds"], 1),
                    "torcheeg_cpu_ratio": round(theirs["cpu_s"] / ours["cpu_s"], 1),
                }
            )
        report["formats"][fmt] = row
    if not teeg.exists():
        report["torcheeg_note"] = f"not measured: no TorchEEG interpreter at {teeg}"
    return report


def run_child(cmd: list[str], env: dict | None = None) -> dict:
    """Run a phase in a fresh process; return its JSON result (peak RSS as it measured it)."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed:\n{err[-2000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_mb"] = result.pop("_rss_mb", None)
    return result


def child_main(args: argparse.Namespace) -> None:
    import resource

    work = Path(args.work)
    if args.phase == "generate":
        result = phase_generate(work, args.subjects, args.trials)
    elif args.phase == "band_power:formats":
        for fmt in args.formats.split(","):  # lazy imports out of the timings
            importlib.import_module(f"eeg_emotion.data.readers.{fmt}")
        result = {
            fmt: phase_build(work, f"cache-{fmt}", BAND_POWER, None, fmt)
            for fmt in args.formats.split(",")
        }
    else:
        name, cache = args.phase.split(":")
        overrides = BAND_POWER if name == "band_power" else SYMBOLS
        subset = args.subset or None
        result = phase_build(work, cache, overrides, subset, args.format or "deap")
    # The generator's worker processes count too (largest single process).
    rss = max(
        resource.getrusage(who).ru_maxrss
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    result["_rss_mb"] = rss / 1024
    print(json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--subjects", type=int, default=32)
    p.add_argument("--trials", type=int, default=40, help="synthetic trials per subject")
    p.add_argument("--work", default="/tmp/eeg-bench")
    p.add_argument("--torcheeg-python", default=str(ROOT / ".venv-torcheeg" / "bin" / "python"))
    p.add_argument("--torcheeg-subjects", type=int, default=4, help="subjects timed through both")
    p.add_argument("--keep", action="store_true", help="keep the work folder")
    p.add_argument(
        "--small", action="store_true", help="seconds: 2 subjects x 12 trials, TorchEEG on both"
    )
    p.add_argument(
        "--format",
        choices=[*CONFIGS, "all"],
        help="instead: our reader + build vs TorchEEG on that format's synthetic files",
    )
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--subset", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--formats", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.small:
        args.subjects, args.trials, args.torcheeg_subjects = 2, 12, 2
    if args.phase:
        return child_main(args)

    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    me = [sys.executable, __file__, "--work", str(work), "--subjects", str(args.subjects)]
    me += ["--trials", str(args.trials)]
    if args.format:
        report = compare_formats(args, me, work)
        report["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(report, indent=1))
        return None
    gen = run_child([*me, "--phase", "generate"])
    band = run_child([*me, "--phase", "band_power:cache"])
    sym = run_child([*me, "--phase", "symbols:cache"])
    warm = run_child([*me, "--phase", "band_power:cache"])
    # Warm start as a user sees it: the whole preprocess command, imports included.
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "launch" / "preprocess.py"),
            "--config",
            str(ROOT / "configs" / "demo.yaml"),
            f"data.root={work / 'deap'}",
            f"data.cache_dir={work / 'cache'}",
            *BAND_POWER,
        ],
        check=True,
        capture_output=True,
    )
    warm_cli = time.perf_counter() - start
    report = {
        "subjects": args.subjects,
        "trials": args.trials,
        "generate_s": round(gen["seconds"], 2),
        "cold_s": round(band["seconds"], 2),
        "cold_symbols_s": round(sym["seconds"], 2),
        "warm_s": round(warm["seconds"], 3),
        "warm_cli_s": round(warm_cli, 2),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in (gen, band, sym, warm)), 1),
        "peak_rss_mb_by_phase": {
            "generate": round(gen["peak_rss_mb"], 1),
            "cold_band_power": round(band["peak_rss_mb"], 1),
            "cold_symbols": round(sym["peak_rss_mb"], 1),
            "warm": round(warm["peak_rss_mb"], 1),
        },
        "rows": band["rows"],
        "tokens_per_window": {
            "band_power": band["tokens_per_window"],
            "symbols": sym["tokens_per_window"],
        },
        "torcheeg_s": None,
    }
    teeg = Path(args.torcheeg_python)
    if teeg.exists():
        n = min(args.torcheeg_subjects, args.subjects)
        subset = work / "deap-subset"
        subset.mkdir()
        for s in range(1, n + 1):
            os.link(work / "deap" / f"s{s:02d}.dat", subset / f"s{s:02d}.dat")
        theirs = run_child(torcheeg_command(teeg, [("deap", subset, work / "torcheeg-io")]))["deap"]
        ours = run_child([*me, "--phase", "band_power:cache-subset", "--subset", str(n)])
        report.update(
            {
                "torcheeg_subjects": n,
                "torcheeg_s": round(theirs["seconds"], 2),
                "torcheeg_rows": theirs["rows"],
                "ours_same_subjects_s": round(ours["seconds"], 2),
                "ours_same_subjects_rows": ours["rows"],
                "torcheeg_ratio": round(theirs["seconds"] / ours["seconds"], 1),
                # CPU time (all threads): what other work on a shared machine moves least.
                "torcheeg_cpu_s": round(theirs["cpu_s"], 2),
                "ours_same_subjects_cpu_s": round(ours["cpu_s"], 2),
                "torcheeg_cpu_ratio": round(theirs["cpu_s"] / ours["cpu_s"], 1),
            }
        )
    else:
        report["torcheeg_note"] = f"not measured: no TorchEEG interpreter at {teeg}"
    report["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
