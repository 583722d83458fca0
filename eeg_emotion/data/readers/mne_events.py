"""Where a recording's trials lie: from its annotations, or from its stim channel
(`data.options.stim`) through `mne.find_events`.

Each event whose code is one of `stim.start` starts a trial; trials are numbered 1..n in time
order. A trial ends at the first `stim.end` event after its start (before the next start), or
`stim.seconds` after it. The channel's values are masked with `stim.mask` (`mask_type="and"`)
before the codes are read: a BioSemi BDF's 24-bit `Status` channel carries the trigger codes
in its lower 16 bits and the amplifier's own state in the upper 8, so without the mask a code
1 reads as 0xFF0001 (or, as MNE keeps 17 bits of it, 65537) and nothing matches.

A channel that is not there, a start or end code that never occurs, and a trial without its
end are each one `DataError` naming the recording.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eeg_emotion.data.readers.mne_tables import Row
from eeg_emotion.data.source_options import StimEvents
from eeg_emotion.errors import DataError

NOT_TRIALS = ("bad", "edge", "boundary")  # annotation descriptions that never mark a trial
Span = tuple[int, int, int, Row | None]  # trial number, first sample, length, its table row


@dataclass(frozen=True)
class StimTrial:
    number: int  # 1..n in time order
    sample: int  # the start event's sample, as `mne.find_events` gives it (first_samp counted)
    start: int  # index of its first sample in the recording's data
    length: int  # samples


def find_events(path: Path, raw: Any, stim: StimEvents) -> np.ndarray:
    """The (events, 3) array of `mne.find_events` on the recording's stim channel, masked."""
    import mne

    names = {name.lower(): name for name in raw.ch_names}
    channel = names.get(stim.channel.lower())
    if channel is None:
        raise DataError(
            path, f"no stim channel {stim.channel!r} (channels: {', '.join(raw.ch_names)})"
        )
    try:
        return mne.find_events(
            raw,
            stim_channel=channel,
            consecutive=True,
            shortest_event=1,
            mask=stim.mask,
            mask_type="and",
            verbose="error",
        )
    except Exception as exc:  # a damaged data section surfaces here
        raise DataError(
            path, f"cannot read its {channel} channel ({type(exc).__name__}: {exc})"
        ) from None


def stim_trials(path: Path, raw: Any, stim: StimEvents) -> list[StimTrial]:
    """Every trial the stim channel marks, in time order."""
    events = find_events(path, raw, stim)
    codes = events[:, 2]
    present = sorted({int(c) for c in codes})
    shown = ", ".join(map(str, present[:20])) or "none"
    masked = f" (masked with {stim.mask:#x})" if stim.mask is not None else ""
    wanted = [("start", c) for c in stim.start] + ([("end", stim.end)] if stim.end else [])
    for role, code in wanted:
        if code not in present:
            raise DataError(
                path,
                f"the {role} code {code} never occurs in its {stim.channel} channel{masked}; "
                f"its codes: {shown}",
            )
    rate = float(raw.info["sfreq"])
    starts = np.flatnonzero(np.isin(codes, stim.start))
    ends = np.flatnonzero(codes == stim.end) if stim.end is not None else None
    trials = []
    for number, i in enumerate(starts, 1):
        sample = int(events[i, 0])
        if ends is None:
            length = round(float(stim.seconds or 0) * rate)
        else:
            following = starts[number] if number < len(starts) else len(codes)
            after = ends[(ends > i) & (ends < following)]
            if after.size == 0:
                until = "the next trial's start" if number < len(starts) else "the recording's end"
                raise DataError(
                    path,
                    f"trial {number} (code {int(codes[i])} at sample {sample}) has no end code "
                    f"{stim.end} before {until}",
                )
            length = int(events[after[0], 0]) - sample
        trials.append(StimTrial(number, sample, sample - int(raw.first_samp), length))
    return trials


def trial_spans(path: Path, raw: Any, rows: list[Row], rate: float) -> list[tuple[int, int]]:
    """(first sample, length) of the annotation each row names."""
    ann = raw.annotations
    starts = raw.time_as_index(ann.onset, use_rounding=True, origin=ann.orig_time)
    lengths = np.round(ann.duration * rate).astype(int)
    spans, used = [], set()
    for row in rows:
        start, length = round(row.onset * rate), round(row.duration * rate)
        hits = np.flatnonzero((np.abs(starts - start) <= 1) & (np.abs(lengths - length) <= 1))
        if hits.size == 0:
            raise DataError(
                row.table,
                f"line {row.line}: no annotation of {path.name} at onset {row.onset:g} s with "
                f"duration {row.duration:g} s (it has {len(ann)} annotations"
                + ("; trials in a stim channel: data.options.stim)" if not len(ann) else ")"),
            )
        if int(hits[0]) in used:
            raise DataError(row.table, f"{row.at(path)}: a second row for the same trial")
        used.add(int(hits[0]))
        spans.append((int(starts[hits[0]]), int(lengths[hits[0]])))
    return spans


def annotated(raw: Any, trial_type: str | None, rate: float) -> list[Span]:
    """Without a table: the annotations that mark trials (those of `trial_type` when given,
    else all but bad, edge and boundary ones), numbered 1..n in onset order."""
    ann = raw.annotations
    starts = raw.time_as_index(ann.onset, use_rounding=True, origin=ann.orig_time)
    picked = [
        (int(start), round(float(duration) * rate))
        for start, duration, text in zip(starts, ann.duration, ann.description, strict=True)
        if (text == trial_type if trial_type else not text.lower().startswith(NOT_TRIALS))
    ]
    return [(i, start, length, None) for i, (start, length) in enumerate(sorted(picked), 1)]
