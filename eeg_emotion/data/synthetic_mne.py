"""Synthetic EDF, BDF and FIF recordings as a lab's amplifier leaves them (synthetic_formats.py
writes them): one continuous recording per subject, its trials marked by annotations or by a
`Status` channel's events, the ratings in a BIDS events file beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from eeg_emotion.data import synthetic, synthetic_amplifier
from eeg_emotion.data.channels import EEG_CHANNELS, PERIPHERAL_CHANNELS
from eeg_emotion.data.synthetic_sizes import FS, FormatSpec, part_key, run_jobs, trial_lengths

MNE_EXTRA = {"hEOG": "eog", "GSR": "misc"}  # kept beside the EEG: readers must drop them


def write_mne(ext: str) -> Callable[[Path, FormatSpec, int], None]:
    """The writer of one MNE format: a recording per subject, `ext` its file extension."""

    def write(folder: Path, spec: FormatSpec, workers: int) -> None:
        args = [(spec, s, folder, ext) for s in range(1, (spec.subjects or 8) + 1)]
        run_jobs(mne_file, args, workers)

    return write


def mne_file(spec: FormatSpec, subject: int, folder: Path, ext: str) -> None:
    """One continuous recording `sub-NN_task-emotion_eeg.<ext>`: each trial a rest then a
    stimulus, marked by an annotation; ratings in the BIDS events file beside it."""
    import mne

    n, lead = spec.trials or 10, round((spec.baseline_seconds or 0) * FS)
    lengths = trial_lengths(spec, 100 + subject, n, FS)
    samples = max(lead + max(lengths), 3 * FS)
    deap = synthetic.SyntheticSpec(1, n, samples, spec.seed, spec.effect, spec.effect_kind)
    data, labels = synthetic.subject_recording(deap, part_key((7, subject)), onset=lead)
    all_channels = EEG_CHANNELS + PERIPHERAL_CHANNELS
    keep = [*range(len(EEG_CHANNELS)), *(all_channels.index(c) for c in MNE_EXTRA)]
    pieces, starts, position = [], [], 0
    for i, length in enumerate(lengths):
        pieces.append(data[i, keep, : lead + length])
        starts.append(position + lead)
        position += lead + length
    pieces.append(data[0, keep, : 2 * FS + (-position % FS)])  # rest up to whole seconds
    signal = np.concatenate(pieces, axis=1)
    names = [*EEG_CHANNELS, *MNE_EXTRA]
    types = ["eeg"] * len(EEG_CHANNELS) + list(MNE_EXTRA.values())
    rate, amp = FS, spec.amplifier
    if amp is not None:
        signal, names, types, rate = synthetic_amplifier.record(
            amp, signal, names, types, FS, subject, spec.seed
        )
    signal[[t in ("eeg", "eog") for t in types]] *= 1e-6  # volts, as MNE keeps them
    stem = f"sub-{subject:02d}_task-emotion"
    if amp is not None and amp.dead_channel is not None:
        table = folder / f"{stem}_channels.tsv"
        synthetic_amplifier.write_channels_table(table, names, types, amp.dead_channel)
    if ext != "fif":  # EDF and BDF have no channel types: their labels carry them ("EEG Fp1")
        names = [f"{t.upper()} {c}" for c, t in zip(names, types, strict=True)]
    raw = mne.io.RawArray(signal, mne.create_info(names, float(rate), types), verbose="error")
    onsets, durations = np.array(starts) / FS, np.array(lengths) / FS
    status = amp.status if amp is not None else None
    if status is None:  # trials as annotations; with a Status channel, as its events alone
        raw.set_annotations(mne.Annotations(onsets, durations, ["stimulus"] * n))
    if ext != "fif":
        mne.export.export_raw(folder / f"{stem}_eeg.{ext}", raw, fmt=ext, verbose="error")
    else:
        raw.save(folder / f"{stem}_eeg.fif", verbose="error")
    if status is not None:
        spans = [(round(o * rate), round(d * rate)) for o, d in zip(onsets, durations, strict=True)]
        synthetic_amplifier.write_status(folder / f"{stem}_eeg.{ext}", rate, spans, status)
        synthetic_amplifier.write_stim_events(folder / f"{stem}_events.tsv", spans, rate, labels)
        return
    lines = ["onset\tduration\ttrial_type\tvalence\tarousal\tdominance\tliking"]
    for onset, duration, row in zip(onsets, durations, labels, strict=True):
        cells = [repr(float(onset)), repr(float(duration)), "stimulus"]
        lines.append("\t".join(cells + [repr(float(v)) for v in row]))
    (folder / f"{stem}_events.tsv").write_text("\n".join(lines) + "\n")
