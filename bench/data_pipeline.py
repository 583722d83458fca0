"""Data pipeline benchmark: generation, cold and warm preprocessing, peak memory, TorchEEG.

    python bench/data_pipeline.py [--subjects 32] [--work /tmp/eeg-bench]
                                  [--torcheeg-python .venv-torcheeg/bin/python]
    python bench/data_pipeline.py --small    # seconds: 2 subjects x 12 trials, TorchEEG on both

Each phase runs in its own process so its peak RSS (ru_maxrss) is its own. Prints one
JSON object. TorchEEG (its DEAPDataset with a band differential-entropy offline transform: the
same 8 s / 4 s-stride windows as our band_power tokens) needs its own environment because it
pins an old scipy: `bash bench/setup_torcheeg.sh` makes `.venv-torcheeg`.
"""

from __future__ import annotations

import argparse
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


def phase_build(work: Path, cache: str, overrides: list[str], subjects: int | None) -> dict:
    from eeg_emotion.config import load_settings
    from eeg_emotion.data.pipeline import build

    extra = (
        [f"data.subjects=[{','.join(str(s) for s in range(1, subjects + 1))}]"] if subjects else []
    )
    settings = load_settings(
        ROOT / "configs" / "demo.yaml",
        [f"data.root={work / 'deap'}", f"data.cache_dir={work / cache}", *overrides, *extra],
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


TORCHEEG_CODE = """
import json, sys, time
from torcheeg.datasets import DEAPDataset
from torcheeg import transforms
root, io_path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
start, cpu = time.perf_counter(), time.process_time()
ds = DEAPDataset(root_path=root, io_path=io_path, chunk_size=1024, overlap=512, num_baseline=3,
                 baseline_chunk_size=128, num_channel=32,
                 offline_transform=transforms.BandDifferentialEntropy(sampling_rate=128),
                 label_transform=transforms.Select('valence'), num_worker=0, verbose=False)
print(json.dumps({"seconds": time.perf_counter() - start, "cpu_s": time.process_time() - cpu,
                  "rows": len(ds)}))
"""


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
    else:
        name, cache = args.phase.split(":")
        overrides = BAND_POWER if name == "band_power" else SYMBOLS
        subset = args.subset or None
        result = phase_build(work, cache, overrides, subset)
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
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--subset", type=int, default=0, help=argparse.SUPPRESS)
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
        theirs = run_child(
            [str(teeg), "-c", TORCHEEG_CODE, str(subset), str(work / "torcheeg-io"), str(n)]
        )
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
