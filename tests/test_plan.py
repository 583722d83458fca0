"""launch/plan.py and scripts/wheelhouse.sh, as users run them; the planner's view of the model
inputs against built data. (bench/gpu_throughput.py's small mode: tests/test_bench.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import venv

import pytest

from eeg_emotion.config import load_settings
from eeg_emotion.data import pipeline
from eeg_emotion.model.embedding import InputSpec
from eeg_emotion.model.plan import input_spec
from tests.helpers import training
from tests.helpers.paths import ROOT

PY = sys.executable


def run(*args: str, env: dict | None = None, expect: int = 0) -> subprocess.CompletedProcess:
    return training.run(list(args), env=env, expect=expect)


def test_plan_counts_the_reference_model_without_gpu_or_download():
    # No network: the architecture comes from the file the project ships. Through
    # `python -m eeg_emotion`, the way the installed package runs a command.
    out = run(
        PY,
        "-m",
        "eeg_emotion",
        "plan",
        "--config",
        "configs/llama31_8b_qlora.yaml",
        env={"HF_HUB_OFFLINE": "1"},
    )
    plan = json.loads(out.stdout.strip().splitlines()[-1])
    assert plan["base_params"] == 7_504_924_672  # headless: 8.03 B minus the LM head
    assert plan["lm_head_params"] == 128256 * 4096
    assert plan["lora_params"] == 41_943_040  # r=16 on 7 projections x 32 layers
    assert plan["trainable_params"] == plan["lora_params"] + plan["head_params"]
    assert plan["tokens_per_window"] == 1024 and plan["per_device_batch"] == 16
    assert plan["gradient_checkpointing"] is True
    mem = plan["memory_gb"]
    assert 4.0 < mem["weights"] < 5.0  # nf4 + double quant, bf16 embedding
    assert plan["est_peak_gb"] == plan["est_peak_gb_checkpointing"]
    assert plan["est_peak_gb_no_checkpointing"] > 5 * plan["est_peak_gb_checkpointing"]
    assert plan["fits"] == {"24GB": True, "40GB": True, "80GB": True}
    assert "7.505 B headless (+ 525.3 M LM head, never loaded)" in out.stdout
    # Without checkpointing, 16 windows of 1024 tokens fit no card; 8 per GPU of 8 fit 80 GB.
    no_gc = ["model.gradient_checkpointing=false"]
    plan = json.loads(
        run(PY, "launch/plan.py", "--config", "configs/llama31_8b_qlora.yaml", *no_gc)
        .stdout.strip()
        .splitlines()[-1]
    )
    assert not any(plan["fits"].values())
    out = run(
        PY,
        "launch/plan.py",
        "--config",
        "configs/llama31_8b_qlora.yaml",
        "--processes",
        "8",
        "train.batch_size=32",
        *no_gc,
    )
    plan = json.loads(out.stdout.strip().splitlines()[-1])
    assert plan["per_device_batch"] == 4 and plan["fits"]["80GB"] and not plan["fits"]["40GB"]


def test_plan_reads_steps_per_epoch_from_the_data_and_refuses_bad_settings(tiny_root, tmp_path):
    base = ["--config", "configs/tiny.yaml", f"data.root={tiny_root}", f"data.cache_dir={tmp_path}"]
    plan = json.loads(run(PY, "launch/plan.py", *base).stdout.strip().splitlines()[-1])
    # 3 subjects x 12 trials x 5 windows; 24 training trials -> 120 windows / batch 8
    assert plan["steps_per_epoch"] == 15
    out = run(PY, "launch/plan.py", *base, "--processes", "3", expect=2)
    assert "does not split over 3" in out.stderr
    out = run(PY, "launch/plan.py", *base, "model.lora.rank=4", expect=2)
    assert "unknown key 'model.lora.rank'" in out.stderr


EEG_INPUTS = {
    "band_power": [],
    "band_power_continuous": ["data.tokenizer.continuous=true"],
    "symbols": [
        "data.tokenizer.kind=symbols",
        "data.channels=[Fp1, Fp2]",
        "data.tokenizer.decimate=4",
    ],
    "symbols_truncated": ["data.tokenizer.kind=symbols", "data.tokenizer.truncate=true"],
}


@pytest.mark.parametrize("overrides", EEG_INPUTS.values(), ids=EEG_INPUTS.keys())
def test_the_planner_expects_the_inputs_that_built_data_gives(tiny_root, tmp_path, overrides):
    base = [f"data.root={tiny_root}", f"data.cache_dir={tmp_path}"]
    settings = load_settings(ROOT / "configs" / "tiny.yaml", [*base, *overrides])
    data = pipeline.build(settings.data, progress=False)
    planned = input_spec(settings)
    assert planned == InputSpec.from_data(data)
    assert planned.kind == "eeg" and len(planned.channel) == data.tokens.shape[1]
    assert planned.continuous == (data.values is not None)


@pytest.mark.slow
def test_the_planner_bounds_text_inputs_by_max_tokens(tiny_root, tmp_path):
    text = ["data.tokenizer.kind=text", "data.channels=[Fp1, Fp2]", "data.tokenizer.decimate=8"]
    base = [f"data.root={tiny_root}", f"data.cache_dir={tmp_path}"]
    settings = load_settings(ROOT / "configs" / "tiny.yaml", [*base, *text])
    planned, built = input_spec(settings), InputSpec.from_data(pipeline.build(settings.data))
    # Without loading the LLM tokenizer the planner knows neither its vocabulary nor the exact
    # token count: it plans for max_tokens, the most a window may take.
    assert (planned.vocab_size, built.vocab_size) == (0, 49152)
    assert len(planned.channel) == 256 > len(built.channel) == 3 + 63 * 4
    same = ("kind", "targets", "num_classes", "hf_tokenizer", "continuous")
    assert [getattr(planned, k) for k in same] == [getattr(built, k) for k in same]
    assert built.kind == "text" and built.hf_tokenizer == "embedded"


@pytest.mark.slow
def test_wheelhouse_then_offline_install(tmp_path):
    wheels = tmp_path / "wheels"
    run("bash", "scripts/wheelhouse.sh", str(wheels), "--packages", "pyyaml tqdm")
    assert {p.name.split("-")[0].lower() for p in wheels.glob("*.whl")} == {"pyyaml", "tqdm"}
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=True)
    python = str(env_dir / "bin" / "python")
    run(python, "-m", "pip", "install", "--no-index", "--find-links", str(wheels), "pyyaml", "tqdm")
    run(python, "-c", "import yaml, tqdm")
    out = run("bash", "scripts/wheelhouse.sh", expect=2)
    assert "WHEELHOUSE=DIR bash scripts/install.sh" in out.stdout
