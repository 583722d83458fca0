"""RUN/best/README.md: the model card of a trained classifier, in the Hugging Face Hub's format.

Built with huggingface_hub's own ModelCard / ModelCardData / EvalResult, from what the run
folder records (config.yaml, results.json, best/classifier.json): base model and its license,
the data settings, split protocol, seeds, what was fitted on training data, the training
settings and compute, the test results per trial with their CIs, and the limitations. A Llama
base model's card carries its license's attribution ("Built with Llama") and naming terms.
`check` reads a card back with the same parser and names what would keep it off the Hub.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from eeg_emotion import fileio
from eeg_emotion.config import load_settings
from eeg_emotion.data.synthetic_record import is_synthetic
from eeg_emotion.errors import DataError

CARD = "README.md"
EMBEDDED_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # model.source=embedded
# Hub license ids of Llama base models, by their Hub id's prefix (longest first wins).
LLAMA_LICENSES = {
    "meta-llama/Llama-2": "llama2",
    "meta-llama/Meta-Llama-3-": "llama3",
    "meta-llama/Llama-3.1": "llama3.1",
    "meta-llama/Meta-Llama-3.1": "llama3.1",
    "meta-llama/Llama-3.2": "llama3.2",
    "meta-llama/Llama-3.3": "llama3.3",
}
LICENSE_NAMES = {
    "llama2": "Llama 2 Community License",
    "llama3": "Meta Llama 3 Community License",
    "llama3.1": "Llama 3.1 Community License",
    "llama3.2": "Llama 3.2 Community License",
    "llama3.3": "Llama 3.3 Community License",
}
DATASETS = {  # data.source -> the dataset's name on the card
    "deap": "DEAP",
    "dreamer": "DREAMER",
    "seed": "SEED",
    "seed_iv": "SEED-IV",
    "amigos": "AMIGOS",
    "mne": "own recordings",
}


def base_model(model: dict[str, Any]) -> str:
    """What the adapter was trained on: a Hub id, or the local folder of a tiny / local one."""
    source = str(model["source"])
    if source == "embedded":
        return EMBEDDED_HUB_ID
    if source == "tiny":
        from eeg_emotion.model.backbone import tiny_dir
        from eeg_emotion.model_settings import ModelSettings

        return str(tiny_dir(ModelSettings.model_validate(model)))
    return source


def license_of(base: str) -> str:
    """The base model's Hub license id ("other" where the project cannot tell)."""
    llama = [k for k in LLAMA_LICENSES if base.startswith(k)]
    if llama:
        return LLAMA_LICENSES[max(llama, key=len)]
    return "apache-2.0" if base == EMBEDDED_HUB_ID or Path(base).is_dir() else "other"


def write_card(run: Path) -> Path:
    """RUN/best/README.md from the run's records; returns its path."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    # Typed, so that a key the run left at its default still has its value.
    typed = load_settings(run / "config.yaml", [])
    settings = typed.model_dump(mode="json")
    settings["data"]["source"] = typed.data.source  # left out of the dump at its default
    results = fileio.read_json(run / "results.json")
    model, data = settings["model"], settings["data"]
    base = base_model(model)
    license_id = license_of(base)
    dataset = DATASETS.get(data["source"], data["source"])
    synthetic = is_synthetic(data["root"])
    name = f"eeg-emotion {Path(run).name}"
    evals = [
        EvalResult(
            task_type="other",
            task_name=f"EEG emotion classification: {target}",
            dataset_type=data["source"],
            dataset_name=f"{dataset}{' (synthetic)' if synthetic else ''}",
            dataset_config=target,  # one model-index entry per target
            dataset_split="test",
            metric_type=metric,
            metric_name=f"{metric.replace('_', ' ')} per trial",
            metric_value=round(float(m[metric]), 4),
        )
        for target, m in _trial_targets(results["test"]).items()
        for metric in ("balanced_accuracy", "accuracy")
    ]
    card_data = ModelCardData(
        model_name=name,
        base_model=base,
        library_name="peft",
        license=license_id,
        tags=["eeg", "emotion-recognition", "lora", "peft", "eeg-emotion"]
        + (["synthetic-data"] if synthetic else []),
        datasets=[dataset],
        eval_results=evals,
    )
    text = "\n".join(_body(run, settings, results, base, license_id, dataset, synthetic))
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n\n{text}\n")
    path = run / "best" / CARD
    fileio.write_file(path, str(card))
    return path


def _trial_targets(test: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per target, the test metrics per trial (the honest unit), else per window."""
    level = test.get("trial_level") or test
    return {t: m for t, m in level.items() if isinstance(m, dict) and "balanced_accuracy" in m}


def _body(
    run: Path,
    s: dict[str, Any],
    results: dict[str, Any],
    base: str,
    license_id: str,
    dataset: str,
    is_synthetic: bool,
) -> list[str]:
    d, m, t, split = s["data"], s["model"], s["train"], s["data"]["split"]
    tok = d["tokenizer"]
    status = fileio.read_json(run / "status.json", default={})
    lines = [f"# EEG emotion classifier ({', '.join(d['labels']['targets'])})", ""]
    if license_id in LICENSE_NAMES:
        lines += [
            "**Built with Llama.** "
            f"{LICENSE_NAMES[license_id]}, Copyright (c) Meta Platforms, Inc. All Rights "
            "Reserved. Its terms apply to this adapter: a model distributed from it carries "
            '"Llama" at the beginning of its name, and this notice.',
            "",
        ]
    lines += [
        f"A LoRA adapter (peft) on `{base}` with a pooling classification head on EEG tokens, "
        "trained by the eeg-emotion toolkit. `head.safetensors` holds the head and EEG "
        "embedding, `adapter/` the adapter, `classifier.json` the model's settings and "
        "`preprocessor.*` the statistics fitted on training data.",
        "",
        "## Data",
        "",
        f"- dataset: {dataset} (`data.source={d['source']}`), channels `{d['channels']}`, "
        f"window {d['window']} stride {d['stride']}, baseline `{d['baseline']}`",
        f"- targets: {', '.join(d['labels']['targets'])}, {d['labels']['num_classes']} classes "
        f"(threshold {d['labels']['threshold']})",
        f"- input: tokenizer `{tok['kind']}` (at most {tok['max_tokens']} tokens per window)",
        f"- preprocessing fitted on the training split only: normalization `{d['normalize']}`, "
        f"quantization bin edges ({d['quantize']['num_bins']} bins, fitted on "
        f"`{d['quantize']['fit_on']}`); saved in `preprocessor.*`",
        "",
        "## Split protocol and seeds",
        "",
        f"- `{split['protocol']}` (fold {split['fold']} of {split['num_folds']}, val fraction "
        f"{split['val_fraction']}, test fraction {split['test_fraction']}); no trial is in two "
        "parts unless the protocol is `segment`",
        f"- seeds: run {s['seed']}, split {split['seed']}",
        "",
        "## Training",
        "",
        f"- backbone `{m['source']}` ({m['precision']}), LoRA r={m['lora']['r']} "
        f"alpha={m['lora']['alpha']}",
        f"- {t['epochs']} epochs, batch {t['batch_size']}, lr head {t['lr_head']}, lr LoRA "
        f"{t['lr_lora']}; best model on val `{t['best_metric']}`"
        + (f" at step {results['best']['step']}" if results.get("best") else ""),
        f"- compute: {_compute(run, status)}",
        "",
        "## Test results per trial (95 % CIs resample whole trials)",
        "",
        "| target | balanced accuracy [95 % CI] | accuracy | majority baseline | trials |",
        "|---|---|---|---|---|",
    ]
    for target, r in _trial_targets(results["test"]).items():
        lo, hi = r.get("balanced_accuracy_ci95") or (float("nan"), float("nan"))
        lines.append(
            f"| {target} | {r['balanced_accuracy']:.3f} [{lo:.2f}, {hi:.2f}] | "
            f"{r['accuracy']:.3f} | {r['majority_baseline']:.3f} | {r.get('support', '')} |"
        )
    lines += ["", "## Limitations", ""]
    if is_synthetic:
        lines.append(
            "- **Trained and tested on synthetic EEG** (`eeg-emotion synthesize`): its planted "
            "effects are not real physiology. This model says nothing about real recordings."
        )
    lines += [
        "- The participants of one dataset; ratings are self-reports. Results on other people, "
        "devices or montages are not known.",
        "- Not a medical device; not for decisions about individuals.",
        "",
        "## Use",
        "",
        "`eeg-emotion predict` runs the whole model on new recordings; the adapter alone:",
        "",
        "```python",
        "from peft import PeftModel",
        "from transformers import AutoModel",
        f'base = AutoModel.from_pretrained("{base}")',
        'model = PeftModel.from_pretrained(base, "<this repo>", subfolder="adapter")',
        "```",
    ]
    return lines


def _compute(run: Path, status: dict[str, Any]) -> str:
    log = run / "train.log"
    where = "unknown"
    if log.is_file():
        found = re.search(r"(\d+ process(?:\(es\))? on [^\n,;]+)", log.read_text(errors="replace"))
        where = found.group(1) if found else where
    step = status.get("step")
    return f"{where}; {step} optimizer steps" if step is not None else where


def check(best: Path, repo: str | None = None) -> list[str]:
    """What keeps `best`'s card off the Hub: it must parse with huggingface_hub's ModelCard,
    carry the metadata the Hub links (base_model as a Hub id, library_name peft, license,
    datasets, model-index results) and no access token; under a Llama license, the repository
    `repo` must be named as its terms require ("Llama" first). [] when none."""
    from huggingface_hub import ModelCard
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.repocard_data import model_index_to_eval_results
    from huggingface_hub.utils import validate_repo_id

    path = best / CARD
    if not path.is_file():
        return ["no model card (a run finished before cards were written?)"]
    try:
        card = ModelCard.load(path)
    except Exception as exc:  # the parser's own reasons: YAML, missing header, ...
        return [f"not a model card huggingface_hub can read ({exc})"]
    meta, problems = card.data.to_dict(), []
    for key in ("base_model", "library_name", "license", "datasets", "model-index"):
        if not meta.get(key):
            problems.append(f"metadata has no {key}")
    if meta.get("library_name") not in (None, "peft"):
        problems.append(f"library_name is {meta['library_name']!r}, not 'peft'")
    if meta.get("model-index"):
        try:
            model_index_to_eval_results(meta["model-index"])
        except Exception as exc:
            problems.append(f"model-index does not parse ({exc})")
    base = str(meta.get("base_model") or "")
    try:
        if base:
            validate_repo_id(base)
    except HFValidationError:
        problems.append(
            f"base_model {base!r} is a local folder, not a Hub model id: the Hub cannot link "
            "or load it (train on the embedded backbone or a Hub model to publish)"
        )
    name = (repo or "").rsplit("/", 1)[-1]
    if repo and meta.get("license") in LICENSE_NAMES and not name.startswith("Llama"):
        problems.append(
            f'the {LICENSE_NAMES[meta["license"]]} asks for "Llama" at the beginning of a '
            f"derived model's name: name the repository e.g. Llama-{name}, not {name}"
        )
    if re.search(r"hf_[A-Za-z0-9]{30,}", path.read_text(errors="replace")):
        problems.append("the card holds what looks like a Hugging Face access token")
    return problems


def check_or_raise(best: Path, repo: str | None = None) -> None:
    problems = check(best, repo)
    if problems:
        raise DataError(best / CARD, "; ".join(problems))
