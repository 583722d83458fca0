"""best/README.md, the Hub model card written when training ends, and `eeg-emotion push`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from eeg_emotion.evaluation import model_card
from eeg_emotion.fileio import read_json
from tests.helpers.training import command, run


@pytest.fixture(scope="module")
def tiny_run(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny training run (in this process), shared by the module's tests."""
    tmp = tmp_path_factory.mktemp("card")
    out = tmp / "run"
    run(command(tiny_root, tmp / "cache", out))
    return out


def push(*args: str) -> tuple[int, str, str]:
    import contextlib
    import io

    from eeg_emotion.cli import push as cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(args), prog="eeg-emotion push")
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_card_parses_with_the_hubs_parser_and_carries_the_results(tiny_run):
    card = ModelCard.load(tiny_run / "best" / "README.md")
    meta = card.data.to_dict()
    assert meta["library_name"] == "peft"
    assert meta["license"] == "apache-2.0" and meta["datasets"] == ["DEAP"]
    assert "synthetic-data" in meta["tags"]
    _, results = model_index_to_eval_results(meta["model-index"])
    test = read_json(tiny_run / "results.json")["test"]["trial_level"]
    got = {(r.dataset_config, r.metric_type): r.metric_value for r in results}
    for target in ("valence", "arousal"):
        for metric in ("balanced_accuracy", "accuracy"):
            assert got[(target, metric)] == round(test[target][metric], 4)
    text = card.text
    assert "Trained and tested on synthetic EEG" in text  # synthesize recorded its folder
    for words in ("## Split protocol and seeds", "`trial`", "fitted on the training split"):
        assert words in text


def test_peft_loads_best_on_the_cards_base_model(tiny_run):
    from peft import PeftModel
    from transformers import AutoModel

    base_id = ModelCard.load(tiny_run / "best" / "README.md").data.base_model
    model = PeftModel.from_pretrained(
        AutoModel.from_pretrained(base_id), str(tiny_run / "best" / "adapter")
    )
    assert any("lora_A" in name for name, _ in model.named_parameters())


def published(tiny_run: Path, tmp_path: Path, base: str) -> Path:
    """A copy of the run whose card names `base` as its base model."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_run / "best", copy / "best")
    card = ModelCard.load(copy / "best" / "README.md")
    card.data.base_model = base
    card.data.license = model_card.license_of(base)
    card.save(copy / "best" / "README.md")
    return copy


def test_push_dry_run_lists_the_files_and_checks_the_card(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 34)
    good = published(tiny_run, tmp_path, model_card.EMBEDDED_HUB_ID)
    before = sorted(p.name for p in good.rglob("*"))
    code, out, err = push(str(good), "--repo", "org/eeg-model", "--dry-run")
    assert code == 0, err
    for name in ("README.md", "adapter/adapter_model.safetensors", "head.safetensors"):
        assert f"  {name}  (" in out
    assert "the Hub's card parser accepts it" in out
    assert sorted(p.name for p in good.rglob("*")) == before  # nothing written, no token
    assert not any("hf_xxxx" in p.read_text(errors="replace") for p in good.rglob("*.md"))


def test_push_refuses_a_bad_card(tiny_run, tmp_path):
    # The tiny run's base model is a local folder: the Hub could not link it.
    code, out, err = push(str(tiny_run), "--repo", "org/eeg-model", "--dry-run")
    assert code == 2 and "is a local folder, not a Hub model id" in err
    assert "  head.safetensors  (" in out  # listed first
    # A Llama base model's name terms: "Llama" first in the repository's name.
    llama = published(tiny_run, tmp_path, "meta-llama/Llama-3.1-8B")
    card = (llama / "best" / "README.md").read_text()
    assert "license: llama3.1" in card
    code, _, err = push(str(llama), "--repo", "org/eeg-model", "--dry-run")
    assert code == 2 and '"Llama" at the beginning' in err
    assert push(str(llama), "--repo", "org/Llama-eeg-model", "--dry-run")[0] == 0
    # A card the parser cannot read.
    (llama / "best" / "README.md").write_text("---\nbase_model: [unclosed\n---\ntext\n")
    code, _, err = push(str(llama), "--repo", "org/Llama-eeg-model", "--dry-run")
    assert code == 2 and "not a model card huggingface_hub can read" in err
