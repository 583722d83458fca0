"""The signal steps of `data.*` applied to one recording before windows, each through MNE:

1. resampling to `data.sampling_rate` where the recording's rate differs
   (`mne.filter.resample`, polyphase: `scipy.signal.resample_poly` with MNE's anti-aliasing
   window and reflected edges), every channel;
2. the band-pass `data.filter` (`mne.filter.filter_data`: zero-phase FIR, firwin design, MNE's
   automatic transition bands and length), EEG channels;
3. the notch `data.notch` and its harmonics below Nyquist (`mne.filter.notch_filter`), EEG
   channels;
4. bad channels (`data.bad_channels`, and the mne source's BIDS channels.tsv) interpolated by
   spherical splines from their standard 10-05 positions (`interpolate_bads` with
   `make_standard_montage("colin27_1005")`; channels found by `channel_key`, so `EEG FP1-Ref`
   has Fp1's position), refused where a channel has no position or fewer than
   `MIN_NEIGHBOURS` others have one (`check_interpolable`: the channels a model was trained on
   and a recording lacks are interpolated the same way, `eeg_emotion.data.montage`);
5. the reference `data.reference` (`set_eeg_reference`): the average of the EEG channels or
   the mean of named ones (which then read zero), EEG channels.

Each trial is processed with its baseline in front of it (one stretch of signal), so the two
are cut apart again at the new rate. The spatial steps (4, 5) are instantaneous, so they see
every trial of a recording at once. A channel is EEG unless it is one of the sources' known
peripheral channels (DEAP's EOG, EMG, GSR ..., AMIGOS' ECG and GSR). With the defaults nothing
runs and the recording is returned as it is, byte for byte.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from eeg_emotion.config import DataSettings
from eeg_emotion.data.channels import PERIPHERAL_CHANNELS, channel_index, channel_key
from eeg_emotion.data.readers.recording import Recording
from eeg_emotion.errors import DataError

log = logging.getLogger(__name__)

MONTAGE = "colin27_1005"  # MNE's standard 10-05 positions (standard_1005 before MNE 1.13)
NOT_EEG = {channel_key(c) for c in (*PERIPHERAL_CHANNELS, "ECG_Right", "ECG_Left", "GSR")}
# Spherical splines fit the scalp field through the placed channels: with fewer than this many
# the interpolated signal is a guess, not an estimate.
MIN_NEIGHBOURS = 4


def is_eeg(name: str) -> bool:
    """Whether a channel is EEG: any but the sources' known peripheral channels."""
    return channel_key(name) not in NOT_EEG


@functools.cache
def _placed_keys() -> frozenset[str]:
    import mne

    return frozenset(channel_key(c) for c in mne.channels.make_standard_montage(MONTAGE).ch_names)


def placed(names: list[str]) -> list[bool]:
    """Whether each channel has a standard 10-05 position (`MONTAGE`, by `channel_key`)."""
    return [channel_key(c) in _placed_keys() for c in names]


def check_interpolable(
    bads: list[str], channels: list[str], where: str | Path, what: str = "bad channel"
) -> None:
    """DataError where one of `bads` (`what`: bad channels, or channels a model needs) has no
    standard position, or fewer than `MIN_NEIGHBOURS` of the other EEG `channels` have one."""
    have = dict(zip(channels, placed(channels), strict=True))
    unplaced = [c for c in bads if not have[c]]
    many = len(unplaced) > 1
    if unplaced:
        raise DataError(
            where,
            f"{what}{'s' if many else ''} {', '.join(unplaced)} {'have' if many else 'has'} "
            f"no standard 10-05 position ({MONTAGE}), so {'they' if many else 'it'} cannot be "
            "interpolated" + ("; leave it out with data.channels" if what == "bad channel" else ""),
        )
    bad_keys = {channel_key(b) for b in bads}
    good = [c for c in channels if channel_key(c) not in bad_keys and is_eeg(c) and have[c]]
    if len(good) < MIN_NEIGHBOURS:
        raise DataError(
            where,
            f"cannot interpolate {what}{'s' if len(bads) > 1 else ''} {', '.join(bads)}: only "
            f"{len(good)} other EEG channel{'' if len(good) == 1 else 's'} with a standard "
            f"position ({', '.join(good) or 'none'}), at least {MIN_NEIGHBOURS} needed",
        )


def line_frequencies(notch: float, rate: float) -> list[float]:
    """The line frequency and its harmonics below the Nyquist frequency of `rate`."""
    return [float(f) for f in np.arange(notch, rate / 2, notch)]


def bad_channels(rec: Recording, settings: DataSettings) -> list[str]:
    """The recording's bad channels: its reader's (BIDS channels.tsv) and data.bad_channels'
    entry for its file (named as under data.root, or by its name alone)."""
    try:
        label = rec.path.relative_to(settings.root).as_posix()
    except ValueError:
        label = rec.path.name
    named = settings.bad_channels.get(label) or settings.bad_channels.get(rec.path.name) or []
    return list(dict.fromkeys([*rec.bad_channels, *named]))


def preprocess(
    rec: Recording, settings: DataSettings, where: str | Path | None = None
) -> Recording:
    """`rec` with every step of `settings` applied (the same object where none applies)."""
    where = where or rec.path
    bads = bad_channels(rec, settings)
    target = float(settings.sampling_rate)
    temporal = settings.filter is not None or settings.notch is not None
    spatial = bool(bads) or settings.reference != "none"
    if rec.sampling_rate == target and not temporal and not spatial:
        return rec
    eeg = [i for i, c in enumerate(rec.channels) if is_eeg(c)]
    index = channel_index(rec.channels)
    for name in bads:
        if channel_key(name) not in index:
            raise DataError(
                where,
                f"bad channel {name!r} is not one of its channels ({', '.join(rec.channels)})",
            )
    names = {key: rec.channels[i] for key, i in index.items()}
    pieces = []  # (baseline, trial) per trial, at the target rate, filtered
    for i, trial in enumerate(rec.trials):
        lead = None if rec.baselines is None else rec.baselines[i]
        x = trial if lead is None else np.concatenate([lead, trial], axis=-1)
        x = np.asarray(x, np.float64)
        x = resample(x, rec.sampling_rate, target)
        x = band_pass(x, target, settings, eeg)
        cut = 0 if lead is None else round(lead.shape[-1] * target / rec.sampling_rate)
        pieces.append((x, cut))
    if spatial:
        whole = np.concatenate([x for x, _ in pieces], axis=-1)
        whole = rereference(
            whole, rec.channels, eeg, target, [names[channel_key(b)] for b in bads], settings, where
        )
        bounds = np.cumsum([x.shape[-1] for x, _ in pieces])[:-1]
        pieces = [
            (x, cut) for x, (_, cut) in zip(np.split(whole, bounds, axis=-1), pieces, strict=True)
        ]
    if rec.sampling_rate != target:
        log.info("%s: resampled from %g Hz to %g Hz", where, rec.sampling_rate, target)
    return replace(
        rec,
        trials=[np.ascontiguousarray(x[:, cut:]) for x, cut in pieces],
        baselines=None
        if rec.baselines is None
        else [np.ascontiguousarray(x[:, :cut]) for x, cut in pieces],
        sampling_rate=target,
        bad_channels=(),
    )


def resample(x: np.ndarray, rate: float, target: float) -> np.ndarray:
    """(channels, samples) from `rate` to `target` Hz, polyphase (as `Raw.resample(...,
    method="polyphase")`); unchanged at the same rate."""
    if rate == target:
        return x
    import mne

    return mne.filter.resample(x, target, rate, method="polyphase", verbose="error")


def band_pass(x: np.ndarray, rate: float, settings: DataSettings, picks: list[int]) -> np.ndarray:
    """The band-pass, then the notch and its harmonics, of the `picks` rows of `x`."""
    import mne

    if settings.filter is not None and picks:
        low, high = settings.filter
        x = mne.filter.filter_data(x, rate, low, high, picks=picks, verbose="error")
    if settings.notch is not None and picks:
        freqs = line_frequencies(settings.notch, rate)
        x = mne.filter.notch_filter(x, rate, freqs, picks=picks, verbose="error")
    return x


def rereference(
    x: np.ndarray,
    channels: tuple[str, ...],
    eeg: list[int],
    rate: float,
    bads: list[str],
    settings: DataSettings,
    where: str | Path,
) -> np.ndarray:
    """Bad channels interpolated, then the reference, through an MNE Raw of `x`."""
    import mne

    types = ["eeg" if i in eeg else "misc" for i in range(len(channels))]
    info = mne.create_info(list(channels), rate, types)
    raw = mne.io.RawArray(x, info, verbose="error")
    if bads:
        _interpolate(raw, bads, where)
    ref = settings.reference
    if ref != "none":
        if isinstance(ref, list):
            lookup = {channel_key(channels[i]): channels[i] for i in eeg}
            missing = [c for c in ref if channel_key(c) not in lookup]
            if missing:
                raise DataError(
                    where,
                    f"data.reference names {', '.join(missing)}, which it does not have among "
                    f"its EEG channels ({', '.join(lookup.values())})",
                )
            ref = [lookup[channel_key(c)] for c in ref]
        mne.set_eeg_reference(raw, ref, copy=False, verbose="error")
    return np.asarray(raw.get_data())


def _interpolate(raw: Any, bads: list[str], where: str | Path) -> None:
    """Spherical-spline interpolation of `bads` from the standard positions of the others."""
    import mne

    check_interpolable(bads, raw.ch_names, where)
    # Positions by `channel_key` (MNE matches names exactly, in any case): renamed for the
    # montage, named as before after.
    keys = {c: channel_key(c) for c in raw.ch_names}
    renamed = len(set(keys.values())) == len(keys) and any(k != c for c, k in keys.items())
    if renamed:
        raw.rename_channels(keys, verbose="error")
    montage = mne.channels.make_standard_montage(MONTAGE)
    raw.set_montage(montage, match_case=False, on_missing="ignore", verbose="error")
    placed = {ch["ch_name"]: bool(np.isfinite(ch["loc"][:3]).all()) for ch in raw.info["chs"]}
    # EEG channels without a position take no part (typed misc here, EEG again after).
    types = dict(zip(raw.ch_names, raw.get_channel_types(), strict=True))
    others = [c for c, ok in placed.items() if not ok and types[c] == "eeg"]
    if others:
        raw.set_channel_types(dict.fromkeys(others, "misc"), verbose="error")
    raw.info["bads"] = [keys[b] if renamed else b for b in bads]
    raw.interpolate_bads(reset_bads=True, mode="accurate", origin="auto", verbose="error")
    if others:
        raw.set_channel_types(dict.fromkeys(others, "eeg"), verbose="error")
    if renamed:
        raw.rename_channels({k: c for c, k in keys.items()}, verbose="error")
