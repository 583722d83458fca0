"""EEG emotion classifier: (EEG embedding ->) Llama backbone with LoRA -> readout -> head.

With `model.source: none` there is no backbone: the embedding feeds the readout directly.

`text` token ids go through the backbone's own embeddings; `symbols` / `band_power` ids through
the trainable `EEGEmbedding` (model/embedding.py).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F
from transformers import PretrainedConfig

from eeg_emotion import fileio
from eeg_emotion.config import TrainSettings
from eeg_emotion.errors import ConfigError
from eeg_emotion.model.backbone import DTYPES, load_backbone
from eeg_emotion.model.embedding import EEGEmbedding, InputSpec
from eeg_emotion.model.front_end import summary_width
from eeg_emotion.model.kernels import apply_kernels
from eeg_emotion.model.pooling import Readout, bidirectional_mask
from eeg_emotion.model_settings import ModelSettings

FORMAT_VERSION = 1
NO_BACKBONE = "none"  # model.source of the no-LLM model
# model.loss.class_weights=auto weights a target whose rarest training class has under this
# share of the commonest's windows.
UNBALANCED = 0.8


def is_lora_param(name: str) -> bool:
    """Whether a backbone parameter (by its peft name) belongs to the LoRA adapter."""
    return "lora_" in name


def _read(path: Path) -> dict[str, torch.Tensor]:
    """A saved weights file, or one clear error naming it."""
    try:
        return load_file(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: missing (the saved model is incomplete)") from None
    except (OSError, SafetensorError) as exc:
        raise ConfigError(f"{path}: cannot read it ({exc})") from None


@contextlib.contextmanager
def without_bitsandbytes_layers() -> Iterator[None]:
    """peft builds each LoRA layer through a list of dispatchers, and while bitsandbytes is
    installed, the list's 4-bit and 8-bit entries import it: with torch's compiler, seconds of
    every process's start-up. A backbone without quantized layers matches neither entry, so
    they are left out of the list (peft's own availability checks, answered no)."""
    import peft.tuners.lora.model as lora_model

    names = ("is_bnb_available", "is_bnb_4bit_available")
    saved = {name: getattr(lora_model, name, None) for name in names}
    if None in saved.values():  # a peft that checks elsewhere: nothing to leave out
        yield
        return
    for name in names:
        setattr(lora_model, name, lambda: False)
    try:
        yield
    finally:
        for name, check in saved.items():
            setattr(lora_model, name, check)


def build_head(settings: ModelSettings, in_features: int, out_features: int) -> nn.Sequential:
    # LLM hidden states carry a few huge outlier dimensions; normalizing the pooled features
    # keeps the head's initial logits small and its learning rate meaningful.
    if settings.head.kind == "linear":
        return nn.Sequential(nn.LayerNorm(in_features), nn.Linear(in_features, out_features))
    return nn.Sequential(
        nn.LayerNorm(in_features),
        nn.Linear(in_features, settings.head.hidden),
        nn.GELU(),
        nn.Dropout(settings.head.dropout),
        nn.Linear(settings.head.hidden, out_features),
    )


class EEGEmotionClassifier(nn.Module):
    # Buffers, registered in __init__.
    class_weight: torch.Tensor
    position_ids: torch.Tensor
    channel_of_token: torch.Tensor
    head: nn.Sequential

    def __init__(
        self,
        settings: ModelSettings,
        inputs: InputSpec,
        backbone: nn.Module | None = None,
        device: str | int | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        self.inputs = inputs
        self.backbone: nn.Module | None = None
        if settings.source == NO_BACKBONE:
            self._init_without_backbone(settings, inputs)
            return
        # A transformers model: its attributes (config, get_input_embeddings) are not typed.
        backbone = backbone if backbone is not None else load_backbone(settings, device)
        base: Any = backbone
        hidden: int = base.config.hidden_size
        self.config = base.config  # DeepSpeed's "auto" bucket sizes read hidden_size
        checkpointing = settings.checkpointing
        gc_kwargs = {"use_reentrant": False}  # reentrant checkpointing breaks DDP and frozen inputs
        if settings.precision == "4bit":
            backbone = prepare_model_for_kbit_training(
                backbone,
                use_gradient_checkpointing=checkpointing,
                gradient_checkpointing_kwargs=gc_kwargs,
            )
            # peft upcasts every weight that is not 4-bit (token embedding, norms) to fp32. The
            # fp32 norms then make every later activation fp32, and with it every backward
            # matmul through the 4-bit layers (bitsandbytes runs those without autocast): about
            # 3x slower on an H100, plus 2.1 GB of fp32 embedding at 8B that nothing trains.
            # Keep them in the compute dtype, as a bf16 model has them (RMSNorm still computes
            # its statistics in fp32).
            compute = DTYPES[settings.compute_dtype]
            for param in backbone.parameters():
                if param.dtype == torch.float32 and param.__class__.__name__ != "Params4bit":
                    param.data = param.data.to(compute)
        elif checkpointing:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=gc_kwargs)
        lora = settings.lora
        config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,  # type: ignore[arg-type]  # peft takes a float too
            lora_dropout=lora.dropout,
            target_modules=list(lora.target_modules),
            bias="none",
        )
        unquantized = settings.precision != "4bit"
        with without_bitsandbytes_layers() if unquantized else contextlib.nullcontext():
            self.backbone = get_peft_model(backbone, config)
        # What the adapted backbone computes with (model.kernels): the line train.log shows.
        self.kernels = apply_kernels(self.backbone, settings)
        self.embedding: EEGEmbedding | None = None
        if inputs.kind == "eeg":
            std = float(base.get_input_embeddings().weight.float().std())
            self.embedding = EEGEmbedding(inputs, hidden, std, settings.front_end)
        self._init_after_backbone(settings, inputs, hidden)

    def _init_without_backbone(self, settings: ModelSettings, inputs: InputSpec) -> None:
        """The no-LLM model: the EEG embedding, the readout and the head, nothing between."""
        hidden = settings.hidden_size
        self.kernels = "kernels: none (no backbone)"
        self.config = PretrainedConfig()  # DeepSpeed's "auto" bucket sizes read hidden_size
        self.config.hidden_size = hidden
        self.embedding = EEGEmbedding(inputs, hidden, 1.0, settings.front_end)
        self._init_after_backbone(settings, inputs, hidden)

    def _init_after_backbone(self, settings: ModelSettings, inputs: InputSpec, hidden: int) -> None:
        """Readout, head, the token positions and channels, class weights, the first phase."""
        self.readout = Readout(settings.readout, inputs, hidden)
        outputs = inputs.num_classes * len(inputs.targets)
        width = self.readout.width + summary_width(inputs, settings.front_end)
        self.head = build_head(settings, width, outputs)
        # Token positions as the backbone reads them: their index, or their time step.
        time = torch.tensor(inputs.time, dtype=torch.long)
        index = torch.arange(len(inputs.time))
        positions = time if settings.positions == "time" and bool((time >= 0).all()) else index
        self.register_buffer("position_ids", positions, persistent=False)
        self.register_buffer(
            "channel_of_token", torch.tensor(inputs.channel, dtype=torch.long), persistent=False
        )
        # (targets, classes): a buffer, so it lives on the model's device (no copy per batch).
        self.register_buffer(
            "class_weight", torch.ones(len(inputs.targets), inputs.num_classes), persistent=False
        )
        # Per target, whether its loss uses `class_weight` (`set_class_weights` decides `auto`).
        self.weighted = [settings.loss.class_weights == "balanced"] * len(inputs.targets)
        self.backbone_grad = True
        self.set_phase(["head", "embedding", "lora"])

    # -- training phases -------------------------------------------------------------------
    def set_phase(self, train: Iterable[str]) -> None:
        """Make exactly these parts trainable: head, embedding, lora, backbone (not 4-bit)."""
        train = set(train)
        if "backbone" in train and self.settings.precision == "4bit":
            raise ConfigError(
                "cannot unfreeze a 4-bit backbone: its weights are frozen integer codes that "
                "bitsandbytes cannot update; use model.precision=bf16 for full fine-tuning"
            )
        for name, param in self.backbone_parameters():
            if is_lora_param(name):
                param.requires_grad = "lora" in train or "backbone" in train
            else:
                param.requires_grad = "backbone" in train and param.dtype.is_floating_point
        if self.embedding is not None:
            self.embedding.requires_grad_("embedding" in train)
        self.head.requires_grad_("head" in train)
        self.trained_backbone = getattr(self, "trained_backbone", False) or "backbone" in train
        embedding_trains = self.embedding is not None and "embedding" in train
        # Nothing below the head trains: run the backbone without an autograd graph.
        self.backbone_grad = bool(train & {"lora", "backbone"}) or embedding_trains

    def backbone_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The backbone's named parameters (LoRA included); none without a backbone."""
        return list(self.backbone.named_parameters()) if self.backbone is not None else []

    def lora_delta(self) -> float:
        """How far LoRA has moved the backbone: the Frobenius norm of every adapted weight's
        update (alpha / r) B A, over all adapted projections. B starts at zero, so 0 means LoRA
        has not trained. ||BA||_F^2 = trace((B^T B)(A A^T)): r x r products, cheap at 8B."""
        total = 0.0
        scale = self.settings.lora.alpha / self.settings.lora.r
        with torch.no_grad():
            for module in self.backbone.modules() if self.backbone is not None else []:
                a: Any = getattr(module, "lora_A", None)
                b: Any = getattr(module, "lora_B", None)
                if not isinstance(a, nn.ModuleDict) or "default" not in a:
                    continue
                first: Any = a["default"]
                wa, wb = first.weight.float(), b["default"].weight.float()  # (r, in), (out, r)
                total += float(torch.trace((wb.T @ wb) @ (wa @ wa.T))) * scale**2
        return total**0.5

    def trainable_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by group, for separate learning rates (head+embedding vs LoRA/backbone)."""
        head = list(self.head.parameters()) + (
            list(self.embedding.parameters()) if self.embedding else []
        )
        named = self.backbone_parameters()
        lora = [p for n, p in named if is_lora_param(n)]
        base = [p for n, p in named if not is_lora_param(n) and p.dtype.is_floating_point]
        return {"head": head, "lora": lora, "backbone": base}

    def set_class_weights(self, labels: torch.Tensor) -> dict[str, bool]:
        """'balanced' weights from training labels (rows, targets): n / (classes * count).
        `auto` uses them for a target whose classes are unbalanced (the rarest under
        UNBALANCED x the commonest), no weights for the others. Returns, per target, whether
        its loss is weighted."""
        kind = self.settings.loss.class_weights
        for i in range(len(self.inputs.targets)):
            counts = torch.bincount(labels[:, i].long(), minlength=self.inputs.num_classes).float()
            self.class_weight[i] = counts.sum() / (len(counts) * counts.clamp(min=1))
            unbalanced = bool(counts.min() < UNBALANCED * counts.max())
            self.weighted[i] = kind == "balanced" or (kind == "auto" and unbalanced)
        return dict(zip(self.inputs.targets, self.weighted, strict=True))

    # -- forward -------------------------------------------------------------------------
    def pooled(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The readout of the last hidden state, with the front end's window summary beside it
        where `model.front_end.to_head` (B, the head's input width), fp32."""
        n = input_ids.shape[1]
        with torch.set_grad_enabled(self.backbone_grad and torch.is_grad_enabled()):
            embeds = summary = None
            if self.embedding is not None:
                embeds, summary = self.embedding.encode(input_ids, values)
                if self.training and self.settings.channel_dropout > 0:
                    embeds = self._drop_channels(embeds)
            if self.backbone is None:
                assert embeds is not None  # settings refuse text inputs without a backbone
                return self._with_summary(self.readout(embeds.float(), attention_mask), summary)
            backbone: Any = self.backbone
            mask: torch.Tensor = attention_mask
            if self.settings.attention == "bidirectional":
                mask = bidirectional_mask(attention_mask, backbone.config, backbone.dtype)
            positions = self.position_ids[:n].expand(input_ids.shape[0], n)
            if embeds is not None:
                embeds = embeds.to(backbone.get_input_embeddings().weight.dtype)
                out = backbone(inputs_embeds=embeds, attention_mask=mask, position_ids=positions)
            else:
                out = backbone(input_ids=input_ids, attention_mask=mask, position_ids=positions)
            return self._with_summary(self.readout(out.last_hidden_state, attention_mask), summary)

    @staticmethod
    def _with_summary(read: torch.Tensor, summary: torch.Tensor | None) -> torch.Tensor:
        """The readout, and the front end's window summary beside it where it goes to the head."""
        return read if summary is None else torch.cat([read, summary.to(read.dtype)], -1)

    def _drop_channels(self, embeds: torch.Tensor) -> torch.Tensor:
        """Zero every token of an electrode with probability `channel_dropout`, per window."""
        channels = self.channel_of_token[: embeds.shape[1]]
        count = int(channels.max()) + 1
        keep = torch.rand(embeds.shape[0], count, device=embeds.device)
        keep = (keep >= self.settings.channel_dropout).to(embeds.dtype)
        per_token = keep[:, channels.clamp(min=0)]  # (B, L); tokens without a channel stay
        per_token = torch.where(channels >= 0, per_token, torch.ones_like(per_token))
        return embeds * per_token.unsqueeze(-1)

    def classify(self, pooled: torch.Tensor) -> dict[str, torch.Tensor]:
        # The head runs without autocast in its own dtype: fp32, or bf16 where DeepSpeed has
        # cast every parameter (it adds no autocast of its own).
        dtype: torch.dtype = self.head[-1].weight.dtype  # type: ignore[assignment]
        with torch.autocast(pooled.device.type, enabled=False):
            logits = self.head(pooled.to(dtype)).float()
        return dict(
            zip(self.inputs.targets, logits.split(self.inputs.num_classes, dim=-1), strict=True)
        )

    def loss(self, logits: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        """Sum over targets of cross-entropy (optional class weights, label smoothing)."""
        total = torch.zeros((), device=labels.device)
        for i, target in enumerate(self.inputs.targets):
            total = total + F.cross_entropy(
                logits[target].float(),
                labels[:, i],
                weight=self.class_weight[i].float() if self.weighted[i] else None,
                label_smoothing=self.settings.loss.label_smoothing,
            )
        return total

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        labels: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        logits = self.classify(self.pooled(input_ids, attention_mask, values))
        out: dict[str, Any] = {"logits": logits}
        if labels is not None:
            out["loss"] = self.loss(logits, labels)
        return out

    @contextlib.contextmanager
    def reading_electrodes(self, electrodes: Iterable[int]) -> Iterator[int]:
        """Within: a patch model reads only the token positions of `electrodes` (ids in
        `data.channels.ELECTRODES`), each with its trained channel, band, time and position
        (gaps where the others were), so a recording that lacks some of its channels is read
        with the ones it has. Yields how many positions are kept."""
        wanted = set(electrodes)
        keep = torch.tensor(
            [i for i, e in enumerate(self.inputs.channel) if e in wanted], dtype=torch.long
        )
        holders: list[tuple[nn.Module, str]] = [
            (self, "position_ids"),
            (self, "channel_of_token"),
            (self.readout, "channels"),
        ]
        if self.embedding is not None:
            names = ("channel_ids", "band_ids", "time_ids", "slot_offset", "slot_ids")
            holders += [(self.embedding, n) for n in names]
            if self.embedding.front_end is not None:
                holders += [(self.embedding.front_end, n) for n in ("slot", "patch_of")]
        saved = [(m, n, getattr(m, n)) for m, n in holders]
        try:
            for module, name, tensor in saved:
                setattr(module, name, tensor[keep.to(tensor.device)])
            yield len(keep)
        finally:
            for module, name, tensor in saved:
                setattr(module, name, tensor)

    @staticmethod
    def probabilities(logits: dict[str, torch.Tensor]) -> torch.Tensor:
        """(batch, targets, classes) class probabilities in float32, targets in order."""
        return torch.stack([torch.softmax(v.float(), -1) for v in logits.values()], 1)

    # -- save / load ---------------------------------------------------------------------
    def head_state(self) -> dict[str, torch.Tensor]:
        state = {f"head.{k}": v for k, v in self.head.state_dict().items()}
        if self.embedding is not None:
            state.update({f"embedding.{k}": v for k, v in self.embedding.state_dict().items()})
        # fp32 on disk whatever the training dtype (DeepSpeed bf16 casts the head too).
        return {
            k: (v.float() if v.is_floating_point() else v).detach().cpu().contiguous()
            for k, v in state.items()
        }

    def save_pretrained(self, folder: str | Path) -> None:
        """Adapter (peft, safetensors) + head/embedding (safetensors) + settings (JSON).
        Never the (4-bit) base weights, unless a bf16/fp32 backbone was itself trained."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.backbone is not None:
            self.backbone.save_pretrained(str(folder / "adapter"))  # type: ignore[operator]
        save_file(self.head_state(), folder / "head.safetensors")
        if self.trained_backbone:
            base = {
                n: p.detach().cpu().contiguous()
                for n, p in self.backbone_parameters()
                if not is_lora_param(n)
            }
            save_file(base, folder / "backbone.safetensors")
        meta = {
            "format_version": FORMAT_VERSION,
            "model": self.settings.model_dump(mode="json"),
            "inputs": asdict(self.inputs),
            "trained_backbone": self.trained_backbone,
        }
        (folder / "classifier.json").write_text(json.dumps(meta, indent=1))

    def load_trained(self, folder: str | Path) -> None:
        """Load what `save_pretrained` wrote; any key or shape mismatch is an error."""
        folder = Path(folder)
        if self.backbone is not None:
            self._load_adapter(folder)
        self._load_head(folder)

    def _load_adapter(self, folder: Path) -> None:
        adapter = _read(folder / "adapter" / "adapter_model.safetensors")
        expected = set(get_peft_model_state_dict(self.backbone).keys())
        if set(adapter) != expected:
            missing, extra = sorted(expected - set(adapter)), sorted(set(adapter) - expected)
            raise ConfigError(
                f"{folder}/adapter does not match this model: missing {missing[:3]}, "
                f"unexpected {extra[:3]} ({len(missing)} / {len(extra)} keys)"
            )
        try:
            set_peft_model_state_dict(self.backbone, adapter)
        except RuntimeError as exc:  # same keys, other shapes (e.g. another LoRA rank)
            first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
            raise ConfigError(f"{folder}/adapter does not match this model: {first}") from None

    def _load_head(self, folder: Path) -> None:
        head = _read(folder / "head.safetensors")
        try:
            self.head.load_state_dict(
                {k.removeprefix("head."): v for k, v in head.items() if k.startswith("head.")}
            )
            if self.embedding is not None:
                self.embedding.load_state_dict(
                    {
                        k.removeprefix("embedding."): v
                        for k, v in head.items()
                        if k.startswith("embedding.")
                    }
                )
            elif any(k.startswith("embedding.") for k in head):
                raise RuntimeError("an EEG embedding was saved but this model takes text tokens")
        except RuntimeError as exc:
            raise ConfigError(
                f"{folder}/head.safetensors does not match this model: {exc}"
            ) from None
        if (folder / "backbone.safetensors").exists():
            base = _read(folder / "backbone.safetensors")
            params = dict(self.backbone_parameters())
            if set(base) - set(params):
                raise ConfigError(f"{folder}/backbone.safetensors has unknown keys")
            with torch.no_grad():
                for name, value in base.items():
                    params[name].copy_(value)

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, device: str | int | None = None
    ) -> EEGEmotionClassifier:
        folder = Path(folder)
        try:
            meta = fileio.load_json(folder / "classifier.json")
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{folder}: not a saved classifier ({exc})") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise ConfigError(
                f"{folder}: unsupported classifier format {meta.get('format_version')}"
            )
        model = cls(
            ModelSettings.model_validate(meta["model"]), InputSpec(**meta["inputs"]), device=device
        )
        model.load_trained(folder)
        model.trained_backbone = bool(meta.get("trained_backbone"))
        return model.eval()


def make_optimizer(
    model: EEGEmotionClassifier, train: TrainSettings, parts: set[str]
) -> torch.optim.Optimizer:
    """AdamW with a learning rate per part, one group per part that some phase trains
    (DeepSpeed rejects a group with nothing to train)."""
    wanted = {
        "head": bool(parts & {"head", "embedding"}),
        "lora": bool(parts & {"lora", "backbone"}),
        "backbone": "backbone" in parts,
    }
    lr = {"head": train.lr_head, "lora": train.lr_lora, "backbone": train.lr_backbone}
    return torch.optim.AdamW(
        [
            {"params": params, "lr": lr[name], "name": name}
            for name, params in model.trainable_groups().items()
            if wanted[name] and params
        ],
        weight_decay=train.weight_decay,
    )
