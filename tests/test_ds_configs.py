"""Every DeepSpeed JSON passes DeepSpeed's own validation once Accelerate fills its "auto"s."""

from __future__ import annotations

import json

import pytest
import yaml
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.utils import DistributedType
from deepspeed.runtime.config import DeepSpeedConfig

from tests.helpers.paths import ROOT

CONFIGS = sorted((ROOT / "ds_configs").glob("*.json"))


def filled(config: dict) -> dict:
    """What Accelerate does with "auto": batch sizes, accumulation, clipping, precision, buckets."""
    out = json.loads(json.dumps(config))
    out.update(
        train_batch_size=8,
        train_micro_batch_size_per_gpu=8,
        gradient_accumulation_steps=1,
        gradient_clipping=1.0,
    )
    out["bf16"], out["fp16"] = {"enabled": True}, {"enabled": False}
    for key, value in out["zero_optimization"].items():
        if value == "auto":
            out["zero_optimization"][key] = 576 * 576  # hidden_size-based, as Accelerate computes
    return out


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_deepspeed_accepts_the_config(path):
    raw = json.loads(path.read_text())
    for key in (
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "gradient_clipping",
    ):
        assert raw[key] == "auto", f"{key} must be filled by Accelerate"
    assert raw["bf16"]["enabled"] == "auto"
    config = DeepSpeedConfig(filled(raw))
    assert config.zero_optimization_stage == raw["zero_optimization"]["stage"]
    bad = filled(raw)
    bad["zero_optimization"]["reduce_bucket_sise"] = 1  # a typo is caught
    with pytest.raises(Exception, match="reduce_bucket_sise"):
        DeepSpeedConfig(bad)


def test_accelerate_configs_point_at_existing_json():
    names = {p.name for p in CONFIGS}
    assert names == {"zero2.json"}  # ZeRO-3 is refused at start (see docs/training.md)
    for path in (ROOT / "ds_configs").glob("accelerate_zero*.yaml"):
        cfg = yaml.safe_load(path.read_text())
        assert cfg["distributed_type"] == "DEEPSPEED"
        assert (ROOT / cfg["deepspeed_config"]["deepspeed_config_file"]).exists()


@pytest.mark.parametrize(
    "path", sorted((ROOT / "ds_configs").glob("accelerate_*.yaml")), ids=lambda p: p.name
)
def test_accelerate_reads_its_config_files(path, tmp_path):
    """`accelerate launch --config_file` reads them with this loader, which refuses unknown
    keys; test_train.py launches a 2-process run with accelerate_ddp.yaml."""
    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig)
    assert config.num_machines == 1 and config.machine_rank == 0 and not config.use_cpu
    if path.name == "accelerate_ddp.yaml":
        assert config.distributed_type == DistributedType.MULTI_GPU
        assert config.num_processes == 2
    else:
        assert config.distributed_type == DistributedType.DEEPSPEED
        ds = config.deepspeed_config
        assert (ROOT / ds["deepspeed_config_file"]).is_file() and ds["zero3_init_flag"] is False
    bad = yaml.safe_load(path.read_text())
    bad["num_processs"] = 2  # a typo is caught
    typo = tmp_path / path.name
    typo.write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match="num_processs"):
        load_config_from_file(str(typo))
