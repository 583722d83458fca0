"""What depends on `data.source`: the defaults it implies (rate, targets, class counts, the
rating scale's threshold and cuts) and the checks of the data settings against what the source
has. `config.DataSettings` calls these when it validates (they read the sources' facts from
eeg_emotion.data, which imports config first)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from eeg_emotion.config import DataSettings, LabelSettings
from eeg_emotion.data.labels import source_targets
from eeg_emotion.data.signal import source_baseline, source_rate
from eeg_emotion.data.source_options import DEAP_BASELINE_SECONDS, OPTIONS, DeapOptions


def with_source_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Raw data settings with the options' `source` filled in and, for sources other than
    DEAP, where not given: the source's sampling rate, its targets (valence and arousal where
    it has both, else its own), a category target's class count, and a rating scale's
    threshold (its middle) and cuts (its thirds)."""
    data = dict(data)
    source = data.get("source", "deap")
    if source not in OPTIONS:
        return data  # reported by the field's own validation
    options = data.get("options")
    if options is None or isinstance(options, dict):
        options = data["options"] = {"source": source, **(options or {})}
    if source == "deap":
        return data
    try:
        opts = OPTIONS[source].model_validate(options) if isinstance(options, dict) else options
    except ValidationError:
        return data
    if "sampling_rate" not in data and (rate := source_rate(source, opts)) is not None:
        data["sampling_rate"] = rate
    labels = data.get("labels", {})
    if isinstance(labels, LabelSettings):
        labels = {k: getattr(labels, k) for k in labels.model_fields_set}
    if isinstance(labels, dict):
        data["labels"] = _label_defaults(dict(labels), source_targets(source, opts))
    return data


def _label_defaults(labels: dict[str, Any], kinds: dict[str, Any]) -> dict[str, Any]:
    if "targets" not in labels:
        both = [t for t in ("valence", "arousal") if t in kinds]
        labels["targets"] = both if len(both) == 2 else list(kinds)
    targets = labels["targets"]
    first = kinds.get(targets[0]) if isinstance(targets, list) and targets else None
    if first is None:
        return labels
    if first.categories:
        labels.setdefault("num_classes", len(first.categories))
    else:
        span = first.high - first.low
        labels.setdefault("threshold", first.low + span / 2)
        labels.setdefault(
            "cuts", (round(first.low + span / 3, 2), round(first.low + 2 * span / 3, 2))
        )
    return labels


SINGLE_SESSION = ("deap", "dreamer", "amigos")
BASELINE_OPTION = {
    "dreamer": "data.options.baselines (its 61 s before each clip)",
    "amigos": "data.options.baseline_seconds",
    "mne": "data.options.baseline_seconds",
    "seed": "none: SEED has no baseline",
    "seed_iv": "none: SEED-IV has no baseline",
}


def check_source(s: DataSettings) -> None:
    """The options, targets and split must be ones `s.source` has (ValueError naming them)."""

    if s.options.source != s.source:
        raise ValueError(
            f"data.options are options of source {s.options.source!r}, but data.source={s.source}"
        )
    if s.source == "deap" and s.options != DeapOptions():
        raise ValueError(
            "data.options: DEAP's reader is set by data.channels and data.baseline_seconds; "
            "leave data.options out"
        )
    if s.source != "deap":
        _check_reading(s)
    _check_targets(s, source_targets(s.source, s.options))
    if s.split.protocol == "cross_session" and s.source in SINGLE_SESSION:
        raise ValueError(
            f"data.split.protocol=cross_session needs several sessions per subject, and "
            f"{s.source} has one (seed and seed_iv have 3; mne reads ses-<n> from file names)"
        )


def _check_reading(s: DataSettings) -> None:
    """A source other than DEAP: baseline and channels as its reader has them (another
    data.sampling_rate than the source's is the rate its recordings are resampled to)."""

    if s.baseline_seconds != DEAP_BASELINE_SECONDS:
        raise ValueError(
            f"data.baseline_seconds is DEAP's lead before each video; {s.source}'s baseline is "
            f"{BASELINE_OPTION[s.source]}"
        )
    if s.source == "amigos" and s.options.channels != "eeg":
        raise ValueError(
            "data.channels chooses AMIGOS' channels (eeg, all or names): leave "
            "data.options.channels out"
        )
    if s.baseline == "subtract" and source_baseline(s) is None:
        raise ValueError(
            f"data.baseline=subtract but these {s.source} recordings have no baseline (its "
            f"baseline: {BASELINE_OPTION[s.source]}); use data.baseline=drop"
        )


def _check_targets(s: DataSettings, kinds: dict[str, Any]) -> None:
    lab = s.labels
    for i, target in enumerate(lab.targets):
        if target not in kinds:
            names = [repr(k) for k in kinds] or ["(none)"]
            listed = " or ".join(filter(None, [", ".join(names[:-1]), names[-1]]))
            raise ValueError(
                f"data.labels.targets.{i}: Input should be {listed}, the targets of "
                f"data.source={s.source} (got {target!r})"
            )
    first = kinds[lab.targets[0]]
    if first.categories:
        if lab.num_classes != len(first.categories):
            raise ValueError(
                f"data.labels.num_classes: {first.name} has {len(first.categories)} categories "
                f"({', '.join(first.categories)}), so num_classes is {len(first.categories)} "
                f"(got {lab.num_classes})"
            )
        return
    if lab.num_classes not in (2, 3):
        raise ValueError(
            f"data.labels.num_classes: Input should be 2 or 3 for ratings (got {lab.num_classes})"
        )
    scale = f"{first.low:g}..{first.high:g}"
    if not first.low <= lab.threshold <= first.high:
        raise ValueError(
            f"data.labels.threshold={lab.threshold:g} is off {s.source}'s rating scale {scale}"
        )
    if not first.low <= lab.cuts[0] < lab.cuts[1] <= first.high:
        raise ValueError(
            f"data.labels.cuts must be increasing ratings within {scale} ({s.source}'s scale), "
            f"got {lab.cuts}"
        )
