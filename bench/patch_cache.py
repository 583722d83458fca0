"""Size and build time of the patch input's dataset cache on full-size DEAP, against the
band-power cache of the same windows (the demo's input) built in the same run.

    python bench/patch_cache.py [--data data/synthetic-full] [--work runs/patch-cache]
    python bench/patch_cache.py --small   # seconds: 2 subjects x 4 trials; prints JSON

Full size: 32 subjects x 40 trials x 40 channels x 63 s at 128 Hz (synthesized once into
--data when missing, seed 0), configs/demo_patch.yaml's and configs/demo.yaml's data settings
(8 s windows every 4 s: 17,920 windows). Each cache is built from nothing into its own folder
under --work; reported: the cache's bytes on disk (and of its largest array), bytes per window,
build wall seconds, peak resident memory of the build (a child process each), and the time to
open it (memory-mapped) and read one random batch of 16 windows.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"patch": "configs/demo_patch.yaml", "band_power": "configs/demo.yaml"}

BUILD = """
import json, resource, sys, time
from eeg_emotion.config import load_settings
from eeg_emotion.data import pipeline
settings = load_settings(sys.argv[1], sys.argv[2:]).data
started = time.perf_counter()
data = pipeline.build(settings, progress=False)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "path": str(data.path), "peak_rss_mb": round(peak)}))
"""


def build(config: str, data: Path, cache: Path) -> dict:
    """Build one cache in a child process: wall seconds and peak RSS of the build alone."""
    shutil.rmtree(cache, ignore_errors=True)
    cmd = [sys.executable, "-c", BUILD, str(ROOT / config)]
    cmd += [f"data.root={data}", f"data.cache_dir={cache}"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"building {config} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(kind: str, data: Path, work: Path) -> dict:
    import numpy as np

    from eeg_emotion.data import pipeline

    built = build(CONFIGS[kind], data, work / f"cache-{kind}")
    folder = Path(built["path"])
    sizes = {f.name: f.stat().st_size for f in folder.iterdir()}
    started = time.perf_counter()
    token_data = pipeline.TokenData.load(folder)
    rows = np.random.default_rng(0).choice(len(token_data.tokens), 16, replace=False)
    batch = [np.array(token_data.tokens[r]) for r in rows]
    if token_data.values is not None:
        batch += [np.array(token_data.values[r]) for r in rows]
    windows = int(token_data.meta["num_rows"])
    largest = max(sizes, key=lambda n: sizes[n])
    return {
        "windows": windows,
        "tokens_per_window": int(token_data.meta["tokens_per_window"]),
        "cache_mb": round(sum(sizes.values()) / 2**20, 1),
        "largest_file": largest,
        "largest_mb": round(sizes[largest] / 2**20, 1),
        "bytes_per_window": round(sum(sizes.values()) / windows),
        "build_seconds": round(built["seconds"], 1),
        "build_peak_rss_mb": built["peak_rss_mb"],
        "open_and_read_batch_ms": round(1000 * (time.perf_counter() - started), 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=Path("data/synthetic-full"))
    p.add_argument("--work", type=Path, default=Path("runs/patch-cache"))
    p.add_argument("--small", action="store_true", help="seconds: 2 subjects x 4 trials")
    args = p.parse_args()
    from eeg_emotion.data.synthetic import SyntheticSpec, synthesize

    spec = SyntheticSpec(subjects=32, trials=40, seed=0)
    if args.small:
        spec = SyntheticSpec(subjects=2, trials=4, seed=0)
        args.data = args.work / "data-small"
    if not (args.data / f"s{spec.subjects:02d}.dat").exists():
        synthesize(args.data, spec, workers=2, overwrite=True)
    args.work.mkdir(parents=True, exist_ok=True)
    result: dict = {kind: measure(kind, args.data, args.work) for kind in CONFIGS}
    result["source_files_mb"] = round(
        sum(f.stat().st_size for f in args.data.glob("s*.dat")) / 2**20, 1
    )
    patch, peer = result["patch"], result["band_power"]
    result["patch_vs_band_power"] = {
        "size": round(patch["cache_mb"] / peer["cache_mb"], 1),
        "size_vs_source_files": round(patch["cache_mb"] / result["source_files_mb"], 3),
        "build_time": round(patch["build_seconds"] / peer["build_seconds"], 2),
    }
    for kind, r in result.items():
        print(f"{kind}: {r}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
