"""Every device measurement of the fast path in one process; bench/gpu_all.sh runs it.

Steps, each timed and recorded even when it fails: the throughput of the classifier with
`model.kernels` plain and fast against peft + Trainer (bench/gpu_throughput.py: 1024 tokens with
and without checkpointing, 2048 with it; tokens/s, MFU, peak memory, the planner's estimate),
`pytest -m gpu`, then a tiny 4-bit run trained with the fast kernels and evaluated and predicted
from (launch/train.py, evaluate.py, predict.py, their own `main`s). Writes OUT/gpu_all.json and
OUT/gpu_all.md. `--rehearse`: the same steps on the CPU at tiny sizes (the tests run it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# (tokens, checkpointing, windows) of ours; the Trainer's as TOKENS:BATCH:CHECKPOINTING
DEVICE_CASES = ["1024:1:8", "1024:0:2", "1024:0:8", "2048:1:8"]
DEVICE_TRAINER = ["1024:8:1", "1024:2:0"]
REHEARSAL_CASES = ["16:1:2", "16:0:2", "32:1:2"]


def step(results: dict, name: str, fn: Any) -> Any:
    """Run one step; its status, seconds and any error go into `results["steps"]`."""
    start = time.perf_counter()
    entry: dict[str, Any] = {"name": name}
    try:
        value = fn()
        entry["status"] = "ok" if value in (None, 0) or not isinstance(value, int) else "failed"
        entry["exit_code"] = value if isinstance(value, int) else 0
    except BaseException as exc:  # a failed step must not stop the others
        value = None
        entry.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:500])
        traceback.print_exc()
    entry["seconds"] = round(time.perf_counter() - start, 1)
    results["steps"].append(entry)
    print(f"gpu_all: {name}: {entry['status']} in {entry['seconds']} s", flush=True)
    return value


def throughput(out: Path, rehearse: bool) -> dict:
    import gpu_throughput

    path = out / "gpu_throughput.json"
    cases = REHEARSAL_CASES if rehearse else DEVICE_CASES
    argv = ["--kernels", "plain", "fast", "--cases", *cases, "--out", str(path)]
    # The rehearsal in 4-bit as on the device (the tiny config is fp32): the path that prepares
    # the quantized backbone for training runs too, in both kernels and the Trainer's.
    argv += (
        ["--small", "model.precision=4bit"]
        if rehearse
        else ["--warmup", "1", "--steps", "3", "--trainer", *DEVICE_TRAINER]
    )
    code = gpu_throughput.main(argv)
    if code:
        raise RuntimeError(f"gpu_throughput.py exited {code}")
    return json.loads(path.read_text())


def gpu_tests(out: Path) -> dict:
    """`pytest -m gpu` in this process (its imports are done; its training tests start their
    own processes); every test skips without CUDA."""
    import pytest

    report = out / "pytest_gpu.xml"
    args = ["-m", "gpu", "-q", "-rs", "-p", "no:cacheprovider", f"--junitxml={report}"]
    code = int(pytest.main([*args, str(ROOT / "tests" / "test_gpu.py")]))
    text = report.read_text() if report.exists() else ""
    counts = {k: _attr(text, k) for k in ("tests", "failures", "errors", "skipped")}
    return {"exit_code": code, **counts}


def _attr(xml: str, name: str) -> int:
    marker = f' {name}="'
    return int(xml.split(marker, 1)[1].split('"', 1)[0]) if marker in xml else -1


def run_commands(work: Path, rehearse: bool) -> dict:
    from eeg_emotion.cli import evaluate, predict, synthesize, train

    data, run = work / "data", work / "run"
    size = (
        ["--subjects", "2", "--trials", "4"] if rehearse else ["--subjects", "3", "--trials", "12"]
    )
    codes = {"synthesize": synthesize.main(["--out", str(data), *size, "--samples", "1664"])}
    # QLoRA in bf16 on the GPU; the rehearsal keeps the tiny config's fp32 (4-bit on this CPU
    # costs time the tests do not have; tests/test_fused_lora.py checks it there).
    qlora = (
        []
        if rehearse
        else ["model.precision=4bit", "model.compute_dtype=bf16", "train.mixed_precision=bf16"]
    )
    codes["train"] = train.main(
        [
            "--config", str(ROOT / "configs" / "tiny.yaml"), f"data.root={data}",
            f"data.cache_dir={work / 'cache'}", f"output_dir={run}", "model.kernels=fast",
            "model.phases=[{train: [head, embedding, lora]}]", "train.epochs=1", *qlora,
        ]
    )  # fmt: skip
    log = (run / "train.log").read_text() if (run / "train.log").exists() else ""
    codes["evaluate"] = evaluate.main([str(run), "--split", "test"])
    predictions = work / "predictions.csv"
    codes["predict"] = predict.main([str(run), "--input", str(data), "--out", str(predictions)])
    keep = ("kernels:", "attention: SDPA")
    lines = [
        line.split(" INFO ", 1)[-1] for line in log.splitlines() if any(k in line for k in keep)
    ]
    rows = len(predictions.read_text().splitlines()) - 1 if predictions.exists() else 0
    return {"exit_codes": codes, "train_log": lines, "prediction_rows": rows}


def markdown(results: dict) -> str:
    """One table of every row (ours per kernels, the Trainer), then the steps."""
    columns = "path kernels tokens checkpointing windows tokens/s MFU peak_GB planner_GB SDPA"
    head = "| " + " | ".join(c.replace("_", " ") for c in columns.split()) + " |"
    lines = [f"# gpu_all on {results.get('device', '?')} ({results['date']})", "", head]
    lines.append("|" + "---|" * 10)
    tp = results.get("throughput") or {}
    for r in [*tp.get("ours", []), *tp.get("trainer", [])]:
        mfu = f"{100 * r['mfu']:.1f} %" if r.get("mfu") is not None else ""
        rate = "out of memory" if r.get("oom") else r.get("tokens_per_s", "")
        cells = [
            r["path"], r.get("kernels", ""), r["tokens"], "on" if r["checkpointing"] else "off",
            r["batch"], rate, mfu, r.get("peak_gb") or "", r.get("planner_gb", ""),
            r.get("sdpa", ""),
        ]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += [
        "",
        "| kernels | tokens | checkpointing | windows | speed vs peft+Trainer | memory ratio |",
    ]
    lines.append("|---|---|---|---|---|---|")
    for r in tp.get("ratios", []):
        ck = "on" if r["checkpointing"] else "off"
        cells = [r["kernels"], r["tokens"], ck, r["batch"], r["speed_ratio"], r["memory_ratio"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += ["", "| step | status | seconds |", "|---|---|---|"]
    lines += [f"| {s['name']} | {s['status']} | {s['seconds']} |" for s in results["steps"]]
    for key in ("pytest_gpu", "commands"):
        if results.get(key):
            lines += ["", f"{key}: `{json.dumps(results[key])}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True, help="folder for gpu_all.json and gpu_all.md")
    p.add_argument("--rehearse", action="store_true", help="CPU, tiny sizes")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    if not args.rehearse and not torch.cuda.is_available():
        print("gpu_all: no CUDA device (use --rehearse for the CPU rehearsal)", file=sys.stderr)
        return 2
    results: dict[str, Any] = {
        "mode": "rehearsal" if args.rehearse else "device",
        "date": time.strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "steps": [],
    }
    results["throughput"] = step(results, "throughput", lambda: throughput(out, args.rehearse))
    results["pytest_gpu"] = step(results, "pytest -m gpu", lambda: gpu_tests(out))
    results["commands"] = step(
        results, "train, evaluate, predict", lambda: run_commands(out / "work", args.rehearse)
    )
    (out / "gpu_all.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "gpu_all.md").write_text(markdown(results))
    print(markdown(results))
    return 0 if all(s["status"] == "ok" for s in results["steps"]) else 1


if __name__ == "__main__":
    sys.exit(main())
