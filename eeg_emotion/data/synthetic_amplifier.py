"""What an amplifier adds to the synthetic EDF / BDF / FIF recordings (`synthesize --format
edf|bdf|fif --rate ... --dc-offset ... --drift ... --line-noise ... --reference ...
--dead-channel ...`), on top of the clean 128 Hz signal of `synthetic.subject_recording`:

- its rate: the signal is upsampled to `rate` Hz (polyphase, `scipy.signal.resample_poly`);
  the planted effects all lie below 45 Hz, so they stay where they were;
- a DC offset per EEG channel, drawn within +-`dc_offset` microvolts;
- slow drift: per EEG channel a sum of three sinusoids of 0.01-0.1 Hz, `drift` microvolts
  each;
- line noise: `line_noise` microvolts at `line_frequency` (50 or 60 Hz), the same phase on
  every EEG channel with a gain of 0.5-1.5 per channel;
- an online reference: every EEG channel carries the noise of a reference electrode
  (`REFERENCE_UV` microvolts, white), and an extra EEG channel `reference` holds that noise
  and a little of its own, so re-referencing to it (or to the average) removes it;
- a dead channel: `dead_channel` reads only `DEAD_UV` microvolts of noise, and the BIDS
  `<name>_channels.tsv` beside the recording marks it `status: bad`;
- (BDF only) a BioSemi `Status` channel instead of annotations: `status = (start, end)` puts
  the code `start` at each stimulus onset and `end` where it stops, each held `STATUS_HOLD_S`,
  on top of the upper bits `STATUS_UPPER` that a BioSemi amplifier keeps set (`write_status`).

Each recording's rate is `rates[(subject - 1) % len(rates)]`, so `--rate 512 1000` writes a
dataset of mixed rates. The draws are seeded by the spec's seed and the subject.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

REFERENCE_UV = 20.0  # the online reference's noise, in every EEG channel
DEAD_UV = 0.1  # what a dead channel still reads
LINE_FREQUENCIES = (50.0, 60.0)
STATUS_UPPER = 0xFF0000  # a BioSemi amplifier's own state bits, set in every Status sample
STATUS_HOLD_S = 0.02  # how long a trigger code stays on


@dataclass(frozen=True)
class Amplifier:
    rates: tuple[int, ...] = (128,)  # per subject in turn
    dc_offset: float = 0.0  # microvolts: each EEG channel's offset is drawn in +-this
    drift: float = 0.0  # microvolts per slow sinusoid
    line_noise: float = 0.0  # microvolts
    line_frequency: float = 50.0
    reference: str | None = None  # the name of the online reference's own channel
    dead_channel: str | None = None  # an EEG channel that records nothing
    status: tuple[int, int] | None = None  # BDF: a Status channel's trial start and end codes

    def check(self, eeg: tuple[str, ...], fmt: str = "bdf", baseline_seconds: float = 1) -> None:
        """ValueError for a setting the recordings cannot have."""
        lowered = {c.lower() for c in eeg}
        start, end = self.status or (1, 2)
        checks = [
            (self.status is not None and fmt != "bdf", "a Status channel is for --format bdf"),
            (
                not (1 <= start <= 0xFFFF and 1 <= end <= 0xFFFF and start != end),
                f"the Status codes must be two different whole numbers in 1..65535, got "
                f"{self.status}",
            ),
            (
                self.status is not None and baseline_seconds <= STATUS_HOLD_S,
                "a Status channel needs a rest between trials (baseline seconds > 0.02)",
            ),
            (not self.rates or min(self.rates) < 1, "rates must be whole Hz >= 1"),
            (self.line_frequency not in LINE_FREQUENCIES, "line_frequency is 50 or 60 Hz"),
            (
                self.line_noise > 0 and self.line_frequency >= min(self.rates) / 2,
                f"line noise at {self.line_frequency:g} Hz needs rates above "
                f"{2 * self.line_frequency:g} Hz (got {min(self.rates)})",
            ),
            (
                self.reference is not None and self.reference.lower() in lowered,
                f"the reference channel {self.reference!r} is already an EEG channel",
            ),
            (
                self.dead_channel is not None and self.dead_channel.lower() not in lowered,
                f"the dead channel {self.dead_channel!r} is not one of {', '.join(eeg)}",
            ),
            (min(self.dc_offset, self.drift, self.line_noise) < 0, "amplitudes must be >= 0"),
        ]
        for failed, problem in checks:
            if failed:
                raise ValueError(problem)

    def rate(self, subject: int) -> int:
        return self.rates[(subject - 1) % len(self.rates)]


def record(
    amp: Amplifier,
    signal: np.ndarray,
    names: list[str],
    types: list[str],
    rate_in: int,
    subject: int,
    seed: int,
) -> tuple[np.ndarray, list[str], list[str], int]:
    """(signal in microvolts at the subject's rate, names, types, rate) of `signal`
    (channels, samples) at `rate_in` Hz, as the amplifier `amp` records it."""
    rate = amp.rate(subject)
    ratio = Fraction(rate, rate_in)
    x = resample_poly(signal, ratio.numerator, ratio.denominator, axis=-1)
    rng = np.random.default_rng([seed, 35, subject])
    eeg = np.array([t == "eeg" for t in types])
    n, t = int(eeg.sum()), np.arange(x.shape[-1]) / rate
    if amp.dead_channel is not None:
        dead = [c.lower() for c in names].index(amp.dead_channel.lower())
        x[dead] = rng.normal(0, DEAD_UV, x.shape[-1])
    x[eeg] += rng.uniform(-amp.dc_offset, amp.dc_offset, (n, 1))
    freqs = rng.uniform(0.01, 0.1, (n, 3, 1))
    phases = rng.uniform(0, 2 * np.pi, (n, 3, 1))
    x[eeg] += amp.drift * np.sin(2 * np.pi * freqs * t + phases).sum(axis=1)
    gains = rng.uniform(0.5, 1.5, (n, 1))
    hum = np.sin(2 * np.pi * amp.line_frequency * t + rng.uniform(0, 2 * np.pi))
    x[eeg] += amp.line_noise * gains * hum
    if amp.reference is not None:
        common = rng.normal(0, REFERENCE_UV, x.shape[-1])
        own = rng.normal(0, DEAD_UV, x.shape[-1])
        x[eeg] += common
        at = int(np.flatnonzero(eeg)[-1]) + 1  # after the last EEG channel
        x = np.insert(x, at, common + own, axis=0)
        names = [*names[:at], amp.reference, *names[at:]]
        types = [*types[:at], "eeg", *types[at:]]
    return x, names, types, rate


def write_channels_table(path: Path, names: list[str], types: list[str], bad: str | None) -> None:
    """A BIDS channels.tsv: each channel's name, type, unit and status (`bad` for `bad`)."""
    lines = ["name\ttype\tunits\tstatus"]
    for name, kind in zip(names, types, strict=True):
        status = "bad" if bad is not None and name.lower() == bad.lower() else "good"
        unit = "V" if kind in ("eeg", "eog") else "n/a"
        lines.append(f"{name}\t{kind.upper()}\t{unit}\t{status}")
    path.write_text("\n".join(lines) + "\n")


def write_status(
    path: Path, rate: int, spans: list[tuple[int, int]], codes: tuple[int, int]
) -> None:
    """Add a BioSemi `Status` channel to the BDF at `path` (at `rate` Hz, as its other
    channels): `STATUS_UPPER` throughout, and on top the code `codes[0]` from each span's
    (first sample, length) start and `codes[1]` from its end, each for `STATUS_HOLD_S`.
    Written as the 24-bit digital values themselves (its physical range is its digital one),
    as the amplifier writes them."""
    import edfio

    bdf = edfio.read_bdf(path)
    status = np.full(round(bdf.duration * rate), STATUS_UPPER, np.int64)
    hold = max(2, round(STATUS_HOLD_S * rate))
    for start, length in spans:
        status[start : start + hold] |= codes[0]
        status[start + length : start + length + hold] |= codes[1]
    digital = np.where(status >= 2**23, status - 2**24, status).astype(np.int32)  # 24-bit signed
    signal = edfio.BdfSignal.from_digital(
        digital, rate, label="Status", digital_range=(-(2**23), 2**23 - 1)
    )
    bdf.append_signals(signal)
    bdf.write(path)


def write_stim_events(
    path: Path, spans: list[tuple[int, int]], rate: int, labels: np.ndarray
) -> None:
    """The BIDS events table of a recording whose trials its Status channel marks: each
    trial's onset and duration, its `sample` and number (`trial`, 1..n), and its ratings."""
    lines = ["onset\tduration\tsample\ttrial\ttrial_type\tvalence\tarousal\tdominance\tliking"]
    for number, ((start, length), row) in enumerate(zip(spans, labels, strict=True), 1):
        cells = [repr(start / rate), repr(length / rate), str(start), str(number), "stimulus"]
        lines.append("\t".join(cells + [repr(float(v)) for v in row]))
    path.write_text("\n".join(lines) + "\n")
