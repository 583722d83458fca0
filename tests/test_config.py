"""Settings: YAML + key.sub=value overrides, validated up front with one clear error."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from eeg_emotion.config import dump_settings, load_settings, parse_overrides
from eeg_emotion.data.signal import parse_duration
from eeg_emotion.errors import ConfigError
from tests.helpers.paths import ROOT

# Search spaces (tune --space) sit beside the settings files; each names the config it goes with.
SPACES = {"tune_space.yaml": "tiny.yaml"}


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_shipped_configs_load(name):
    if name in SPACES:
        from eeg_emotion.tuning.space import load_space

        config = ROOT / "configs" / SPACES[name]
        assert load_space(ROOT / "configs" / name, config, []).params
        return
    settings = load_settings(ROOT / "configs" / name)
    assert settings.data.root


def test_overrides_are_typed_and_nested():
    s = load_settings(
        ROOT / "configs" / "demo.yaml",
        [
            "data.window=1024",
            "data.split.fold=2",
            "data.subjects=[1,2]",
            "data.quantize.per_channel=true",
            "data.labels.high_if='>='",
        ],
    )
    assert s.data.window == 1024 and s.data.split.fold == 2 and s.data.subjects == [1, 2]
    assert s.data.quantize.per_channel is True and s.data.labels.high_if == ">="
    assert parse_overrides(["a.b=1", "a.c=x y"]) == {"a": {"b": 1, "c": "x y"}}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.widnow=3"], "unknown key 'data.widnow' (did you mean 'data.window'?)"),
        (["data.split.protocol=random"], "data.split.protocol: Input should be 'trial'"),
        (["data.labels.num_classes=4"], "data.labels.num_classes: Input should be 2 or 3"),
        (
            ["data.quantize.num_bins=1"],
            "data.quantize.num_bins: must be a whole number in [2, 4096], got 1",
        ),
        (
            ["data.labels.targets=[valence, mood]"],
            "data.labels.targets.1: Input should be 'valence'",
        ),
        (["data.labels.cuts=[6, 4]"], "cuts must be increasing"),
        (["data.window"], "not of the form key.sub=value"),
        (["data.split.protocol=kfold", "data.split.fold=7"], "fold 7 is out of range"),
    ],
)
def test_bad_settings_are_one_clear_error(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_settings(ROOT / "configs" / "tiny.yaml", overrides)
    assert message in str(info.value)
    assert str(info.value).startswith(str(ROOT / "configs" / "tiny.yaml"))


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_settings(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)
    bad.write_text("- a list")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_settings(bad)
    for empty in ("", "\n# only a comment\n"):
        bad.write_text(empty)
        with pytest.raises(ConfigError, match=r"bad\.yaml: the config file is empty"):
            load_settings(bad)


def test_resolved_settings_round_trip(tmp_path):
    s = load_settings(ROOT / "configs" / "tiny.yaml", ["data.window=3s"])
    dump_settings(s, tmp_path / "config.yaml")
    assert load_settings(tmp_path / "config.yaml") == s


def test_durations():
    assert parse_duration(1024, 128, "w") == 1024
    assert parse_duration("8s", 128, "w") == 1024
    assert parse_duration("0.5s", 128, "w") == 64
    for bad in ("8 minutes", "0", "0.3s"):
        with pytest.raises(ConfigError, match="w="):
            parse_duration(bad, 128, "w")


def test_the_reference_config_is_the_reference_method():
    from eeg_emotion.model.plan import input_spec

    s = load_settings(ROOT / "configs" / "llama31_8b_qlora.yaml")
    m = s.model
    assert m.source == "meta-llama/Llama-3.1-8B-Instruct"
    assert (m.precision, m.double_quant, m.compute_dtype) == ("4bit", True, "bf16")
    assert (m.lora.r, m.lora.alpha, m.lora.dropout) == (16, 8, 0.1)
    assert set(m.lora.target_modules) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    }  # fmt: skip
    assert [p.train for p in m.phases] == [["head", "embedding"], ["head", "embedding", "lora"]]
    assert s.data.tokenizer.kind == "band_power" and s.data.split.protocol == "trial"
    assert s.data.baseline == "drop" and s.data.quantize.edges == "quantile"
    spec = input_spec(s)
    assert len(spec.channel) == 1024 and not s.data.tokenizer.truncate  # 32 x 4 bands x 8 s


def _loaded_after(statement: str) -> list[str]:
    """The project's and scipy's modules a fresh interpreter holds after `statement`."""
    code = f"""import json, sys
{statement}
print(json.dumps([m for m in sys.modules if m.split(".")[0] in ("eeg_emotion", "scipy")]))"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_settings_sit_below_the_readers():
    """Loading the settings loads no reader and no scipy (every command starts with them), and
    nothing the settings import imports them back."""
    loaded = _loaded_after("import eeg_emotion.config")
    assert not [m for m in loaded if m.startswith("scipy")]
    assert not [m for m in loaded if m.startswith("eeg_emotion.data.readers")]
    below = [m for m in loaded if m != "eeg_emotion.config"]
    assert "eeg_emotion.config" not in _loaded_after("\n".join(f"import {m}" for m in below))
