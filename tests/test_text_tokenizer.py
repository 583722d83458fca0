"""The `text` tokenizer: faithful to the original method, but never truncating silently."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from tokenizers import Tokenizer, models, trainers
from transformers import PreTrainedTokenizerFast

from eeg_emotion.data import pipeline
from eeg_emotion.data.tokenize import TextTokenizer
from eeg_emotion.errors import ConfigError
from tests.helpers.paths import data_settings

TEXT = ["data.tokenizer.kind=text", "data.channels=[Fp1, Fp2]", "data.tokenizer.decimate=8"]


@pytest.mark.slow
def test_embedded_tokenizer_codes_and_budget(tiny_root, tmp_path, caplog):
    # 2 channels x 32 steps = 64 symbols; SmolLM2 writes "000" as 3 digit tokens, " 001" as 4.
    s = data_settings(tiny_root, tmp_path, *TEXT, "data.tokenizer.max_tokens=255")
    data = pipeline.build(s)
    assert data.meta["tokens_per_window"] == 3 + 63 * 4 == 255
    assert data.meta["coverage"] == 1.0 and data.vocab_size == 49152
    tok = TextTokenizer(s, 2, 256, hf=_embedded())
    assert tok.fast, "the per-symbol fast path was verified against the full tokenizer"
    sym = tok.symbolizer
    # Decode a row back to its code string and compare with a direct tokenization.
    row = np.asarray(data.tokens[0])
    decoded = tok.hf.decode(row.tolist())
    codes = decoded.split(" ")
    assert (
        len(codes) == 64 and set("".join(codes)) <= {"0", "1"} and all(len(c) == 3 for c in codes)
    )
    assert tok.hf(decoded)["input_ids"] == row.tolist()
    assert sym.edges is None  # a fresh tokenizer: the fitted one lives in the cache

    with pytest.raises(ConfigError, match=r"needs 255 tokens.*max_tokens=100.*truncate=true"):
        pipeline.build(data_settings(tiny_root, tmp_path, *TEXT, "data.tokenizer.max_tokens=100"))
    with caplog.at_level(logging.WARNING):
        cut = pipeline.build(
            data_settings(
                tiny_root,
                tmp_path,
                *TEXT,
                "data.tokenizer.max_tokens=100",
                "data.tokenizer.truncate=true",
            )
        )
    assert cut.tokens.shape[1] == 100 and "39.2 % of each window's signal kept" in caplog.text
    np.testing.assert_array_equal(cut.tokens[:, :100], data.tokens[:, :100])


def _embedded():
    from eeg_emotion.data.tokenize import load_hf_tokenizer

    return load_hf_tokenizer("embedded")


def _merging_tokenizer(folder) -> str:
    """A BPE without a whitespace pre-tokenizer: it learns merges across symbol boundaries."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    trainer = trainers.BpeTrainer(vocab_size=60, special_tokens=["[UNK]", "[PAD]"])
    rng = np.random.default_rng(0)
    corpus = [" ".join(format(i, "03b") for i in rng.integers(0, 8, 50)) for _ in range(200)]
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")
    fast.save_pretrained(folder)
    return str(folder)


def test_merging_tokenizer_uses_the_exact_slow_path(tiny_root, tmp_path):
    path = _merging_tokenizer(tmp_path / "bpe")
    s = data_settings(
        tiny_root,
        tmp_path,
        *TEXT,
        f"data.tokenizer.hf_tokenizer={path}",
        "data.tokenizer.max_tokens=400",
    )
    data = pipeline.build(s)
    hf = PreTrainedTokenizerFast.from_pretrained(path)
    tok = TextTokenizer(s, 2, 256, hf=hf)
    assert not tok.fast
    # Every row is exactly what the tokenizer makes of the window's code string.
    for row in (0, 17):
        n = int(data.lengths[row])
        text = hf.decode(np.asarray(data.tokens[row, :n]).tolist()).replace(" ", "")
        assert len(text) == 64 * 3
        expected = hf(" ".join(text[i : i + 3] for i in range(0, len(text), 3)))["input_ids"]
        assert np.asarray(data.tokens[row, :n]).tolist() == expected
    assert data.lengths.min() < data.lengths.max() <= 400  # lengths vary, nothing was cut
    with pytest.raises(ConfigError, match=r"a window needs \d+ tokens but .*max_tokens=40"):
        pipeline.build(
            data_settings(
                tiny_root,
                tmp_path,
                *TEXT,
                f"data.tokenizer.hf_tokenizer={path}",
                "data.tokenizer.max_tokens=40",
            )
        )


def test_missing_tokenizer_is_a_clear_error(tiny_root, tmp_path):
    s = data_settings(tiny_root, tmp_path, *TEXT, f"data.tokenizer.hf_tokenizer={tmp_path}/none")
    with pytest.raises(ConfigError, match=r"hf_tokenizer=.*cannot load"):
        pipeline.build(s)
