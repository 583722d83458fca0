"""DEAP channel layout (`data_preprocessed_python`, Geneva order) as data, which channels
`data.channels` selects from each source's recordings, and how channel names compare
(`channel_key`: case, EDF type prefixes and reference suffixes never matter)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from eeg_emotion.errors import ConfigError

EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7", "PO3", "O1",
    "Oz", "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz", "C4", "T8", "CP6", "CP2",
    "P4", "P8", "PO4", "O2",
)  # fmt: skip
PERIPHERAL_CHANNELS: tuple[str, ...] = (
    "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Respiration", "Plethysmograph", "Temperature",
)  # fmt: skip
ALL_CHANNELS: tuple[str, ...] = EEG_CHANNELS + PERIPHERAL_CHANNELS

# Approximate 2-D scalp positions (x: left -> right, y: back -> front, unit circle), used by the
# synthetic generator for spatial correlation and by anyone who wants a topographic plot.
POSITIONS: dict[str, tuple[float, float]] = {
    "Fp1": (-0.31, 0.95), "AF3": (-0.35, 0.80), "F3": (-0.45, 0.58), "F7": (-0.81, 0.59),
    "FC5": (-0.72, 0.33), "FC1": (-0.25, 0.33), "C3": (-0.50, 0.0), "T7": (-1.0, 0.0),
    "CP5": (-0.72, -0.33), "CP1": (-0.25, -0.33), "P3": (-0.45, -0.58), "P7": (-0.81, -0.59),
    "PO3": (-0.35, -0.80), "O1": (-0.31, -0.95), "Oz": (0.0, -1.0), "Pz": (0.0, -0.55),
    "Fp2": (0.31, 0.95), "AF4": (0.35, 0.80), "Fz": (0.0, 0.55), "F4": (0.45, 0.58),
    "F8": (0.81, 0.59), "FC6": (0.72, 0.33), "FC2": (0.25, 0.33), "Cz": (0.0, 0.0),
    "C4": (0.50, 0.0), "T8": (1.0, 0.0), "CP6": (0.72, -0.33), "CP2": (0.25, -0.33),
    "P4": (0.45, -0.58), "P8": (0.81, -0.59), "PO4": (0.35, -0.80), "O2": (0.31, -0.95),
}  # fmt: skip


# EDF(+) signal labels lead with the signal's type ("EEG Fp1", "ECG ECG1") and often end in
# the reference ("EEG Fp1-Ref", "EEG FP1-LE", "Fp1-A1"): neither is part of the electrode's name.
_TYPE_PREFIX = re.compile(
    r"^(eeg|eog|ecg|ekg|emg|meg|mcg|erg|ep|resp|temp|sao2|light|sound|event)\s+(?=\S)", re.I
)
_REFERENCE_SUFFIX = re.compile(r"\s*-\s*(ref|le|re|ar|avg|car|a1|a2|m1|m2)$", re.I)


def channel_key(name: str) -> str:
    """What two channel names must share to be the same channel: the name without EDF's type
    prefix and reference suffix, in lower case, the older 10-20 names T3/T4/T5/T6 as T7/T8/P7/
    P8 (`EEG FP1-REF`, `Fp1` and `fp1` are one channel)."""
    key = _REFERENCE_SUFFIX.sub("", _TYPE_PREFIX.sub("", name.strip())).lower()
    return ELECTRODE_ALIASES.get(key, key).lower()


def channel_index(names: Sequence[str]) -> dict[str, int]:
    """Each name's position in `names`, by its `channel_key` (the first of any that share one)."""
    lookup: dict[str, int] = {}
    for i, name in enumerate(names):
        lookup.setdefault(channel_key(name), i)
    return lookup


def select_channels(spec: Sequence[str] | str) -> list[int]:
    """Indices into the 40 DEAP channels for `"eeg"`, `"all"` or a list of names (any case)."""
    if spec == "eeg":
        return list(range(len(EEG_CHANNELS)))
    if spec == "all":
        return list(range(len(ALL_CHANNELS)))
    lookup = channel_index(ALL_CHANNELS)
    indices = []
    for name in spec:
        if channel_key(name) not in lookup:
            raise ConfigError(f"unknown channel {name!r}; DEAP has {', '.join(ALL_CHANNELS)}")
        indices.append(lookup[channel_key(name)])
    if not indices:
        raise ConfigError("data.channels selects no channel")
    if len(set(indices)) != len(indices):
        raise ConfigError(f"data.channels lists a channel twice: {list(spec)}")
    return indices


def pick_names(spec: Sequence[str], available: Sequence[str], source: str) -> tuple[str, ...]:
    """The names of `spec` as `available` spells them (matched by `channel_key`), checked."""
    lookup = {key: available[i] for key, i in channel_index(available).items()}
    unknown = [name for name in spec if channel_key(name) not in lookup]
    if unknown:
        raise ConfigError(f"unknown channel {unknown[0]!r}; {source} has {', '.join(available)}")
    names = tuple(lookup[channel_key(name)] for name in spec)
    if not names:
        raise ConfigError("data.channels selects no channel")
    if len(set(names)) != len(names):
        raise ConfigError(f"data.channels lists a channel twice: {list(spec)}")
    return names


def source_channels(source: str, options: Any, spec: Sequence[str] | str) -> tuple[str, ...] | None:
    """The channels `spec` (data.channels) takes from `source`'s recordings, in order: `eeg`
    its EEG channels, `all` every channel it records, or a list of names. None where only the
    recordings tell (`mne` with `eeg` or `all`: the channels its reader keeps)."""
    from eeg_emotion.data.readers import amigos, dreamer, seed

    if source == "deap":
        return tuple(ALL_CHANNELS[i] for i in select_channels(spec))
    if source == "mne":
        return None if isinstance(spec, str) else tuple(spec)
    eeg, every = {
        "dreamer": (dreamer.CHANNELS, dreamer.CHANNELS),
        "seed": (seed.CHANNELS, seed.CHANNELS),
        "seed_iv": (seed.CHANNELS, seed.CHANNELS),
        "amigos": (amigos.EEG_CHANNELS, amigos.ALL_CHANNELS),
    }[source]
    if spec == "eeg":
        return eeg
    if spec == "all":
        return every
    return pick_names(spec, every, source)


# Electrode names of the 10-20 / 10-10 system (with the cerebellar CB1/CB2 that SEED's cap
# adds): the patch input keys its channel embedding by these, so one model reads datasets of
# any montage. The order is fixed for good: a saved model's embedding rows follow it.
ELECTRODES: tuple[str, ...] = (
    "Fp1", "Fpz", "Fp2", "AF9", "AF7", "AF5", "AF3", "AF1", "AFz", "AF2", "AF4", "AF6", "AF8",
    "AF10", "F9", "F7", "F5", "F3", "F1", "Fz", "F2", "F4", "F6", "F8", "F10", "FT9", "FT7",
    "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "FT8", "FT10", "T9", "T7", "C5", "C3", "C1",
    "Cz", "C2", "C4", "C6", "T8", "T10", "TP9", "TP7", "CP5", "CP3", "CP1", "CPz", "CP2", "CP4",
    "CP6", "TP8", "TP10", "P9", "P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8", "P10",
    "PO9", "PO7", "PO5", "PO3", "PO1", "POz", "PO2", "PO4", "PO6", "PO8", "PO10", "O9", "O1",
    "Oz", "O2", "O10", "Iz", "A1", "A2", "M1", "M2", "CB1", "CB2",
)  # fmt: skip
# The older 10-20 names of four temporal/parietal sites.
ELECTRODE_ALIASES = {"t3": "T7", "t4": "T8", "t5": "P7", "t6": "P8"}
_ELECTRODE_IDS = {name.lower(): i for i, name in enumerate(ELECTRODES)}


def electrode_ids(names: Sequence[str]) -> list[int]:
    """Each channel's index in `ELECTRODES` (matched by `channel_key`)."""
    ids, unknown = [], []
    for name in names:
        key = channel_key(name)
        if key not in _ELECTRODE_IDS:
            unknown.append(name)
        else:
            ids.append(_ELECTRODE_IDS[key])
    if unknown:
        raise ConfigError(
            f"data.tokenizer.kind=patch keys each channel by its 10-20/10-10 electrode name; "
            f"{', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} not one "
            "(select EEG channels only, e.g. data.channels=eeg)"
        )
    return ids
