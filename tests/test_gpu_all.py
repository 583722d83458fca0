"""bench/gpu_all.sh's CPU rehearsal: the device script's every step runs at tiny sizes, and its
JSON and markdown table hold every row the device run will fill."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers.paths import ROOT


def test_gpu_all_rehearsal_writes_every_row_and_the_table(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_all.sh"), "--rehearse"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "gpu_all.json").read_text())
    assert result["mode"] == "rehearsal" and result["device"] == "cpu"
    assert [s["name"] for s in result["steps"]] == [
        "throughput",
        "pytest -m gpu",
        "train, evaluate, predict",
    ]
    assert all(s["status"] == "ok" for s in result["steps"]), result["steps"]
    tp = result["throughput"]
    # Plain and fast at the three settings (1024 on/off, 2048 on at the device's sizes).
    rows = {(r["kernels"], r["tokens"], r["checkpointing"]) for r in tp["ours"]}
    assert rows == {(k, t, c) for k in ("plain", "fast") for t, c in ((16, 1), (16, 0), (32, 1))}
    for row in tp["ours"]:
        assert row["tokens_per_s"] > 0 and row["planner_gb"] > 0 and row["sdpa"], row
    assert tp["device"] == "cpu" and tp["backbone"] == "tiny" and tp["real_weights"] is False
    assert tp["peak_bf16_flops"] is None  # no MFU without a known peak
    [theirs] = tp["trainer"]
    assert theirs["path"] == "peft+Trainer" and theirs["tokens_per_s"] > 0
    # The Trainer path's steps were the Trainer's; ours were the bench's own step function.
    stepped = {"ours": ["gpu_throughput"], "peft+Trainer": ["transformers.trainer"]}
    assert tp["stepped_by"] == stepped
    assert {r["kernels"] for r in tp["ratios"]} == {"plain", "fast"}
    for ratio in tp["ratios"]:  # each kernels' row at the Trainer's size, over the Trainer's
        [same] = [
            r for r in tp["ours"]
            if (r["kernels"], r["tokens"], r["batch"], r["checkpointing"])
            == (ratio["kernels"], ratio["tokens"], ratio["batch"], ratio["checkpointing"])
        ]  # fmt: skip
        expected = same["tokens_per_s"] / theirs["tokens_per_s"]
        assert ratio["speed_ratio"] == pytest.approx(expected, rel=0.01), (ratio, same, theirs)
    assert tp["kernels"]["fast"].startswith("kernels: fast (fused LoRA on 14 projections")
    assert result["pytest_gpu"]["exit_code"] == 0 and result["pytest_gpu"]["tests"] > 0
    commands = result["commands"]
    assert set(commands["exit_codes"].values()) == {0} and commands["prediction_rows"] > 0
    assert any(line.startswith("kernels: fast") for line in commands["train_log"])
    table = (out / "gpu_all.md").read_text()
    assert table.count("| ours | fast |") == 3 and table.count("| ours | plain |") == 3
    assert "| peft+Trainer |" in table and "| pytest -m gpu | ok |" in table
