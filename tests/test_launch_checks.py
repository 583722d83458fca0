"""The launcher's limits, read from the environment `accelerate launch` gives its processes,
refused before torch is imported (the launches themselves: tests/test_train.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from eeg_emotion.config import load_settings
from eeg_emotion.errors import ConfigError
from eeg_emotion.training.launch_checks import check_launcher_environment, deepspeed_stage
from tests.helpers.paths import ROOT

TINY = str(ROOT / "configs" / "tiny.yaml")
ONE_PHASE = "model.phases=[{train: [head, embedding, lora]}]"


def deepspeed_env(monkeypatch, tmp_path, stage: int) -> None:
    config = json.loads((ROOT / "ds_configs" / "zero2.json").read_text())
    config["zero_optimization"]["stage"] = stage
    (tmp_path / "ds.json").write_text(json.dumps(config))
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_CONFIG_FILE", str(tmp_path / "ds.json"))


def test_the_batch_must_split_over_the_launched_processes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    check_launcher_environment(load_settings(TINY, ["train.batch_size=8"]))
    with pytest.raises(ConfigError, match="must split evenly over the 2 processes"):
        check_launcher_environment(load_settings(TINY, ["train.batch_size=7"]))
    monkeypatch.setenv("WORLD_SIZE", "1")
    check_launcher_environment(load_settings(TINY, ["train.batch_size=7"]))


def test_deepspeed_refusals_come_from_its_config_file(monkeypatch, tmp_path):
    deepspeed_env(monkeypatch, tmp_path, 2)
    assert deepspeed_stage() == 2
    check_launcher_environment(load_settings(TINY, [ONE_PHASE]))
    with pytest.raises(ConfigError, match="single phase"):
        check_launcher_environment(load_settings(TINY, []))  # tiny.yaml: two phases
    deepspeed_env(monkeypatch, tmp_path, 3)
    with pytest.raises(ConfigError, match="ZeRO-3 is not supported"):
        check_launcher_environment(load_settings(TINY, [ONE_PHASE]))
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "false")
    assert deepspeed_stage() is None


def test_the_checks_import_no_torch():
    code = "import sys, eeg_emotion.training.launch_checks; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "False", out.stderr
