"""The signal steps applied to each recording before windows (`data.filter`, `data.notch`,
`data.reference`, `data.bad_channels`, and `data.sampling_rate` as the target rate): their
types, their defaults and the checks that need only the settings.

A leaf module (pydantic and `eeg_emotion.numbers` only) that `config.DataSettings` types its
fields with. Fitted on nothing, the steps are part of the saved data settings, so a run's
config.yaml, its model's preprocessor.json and the dataset cache key all record them; settings
at their defaults dump without them, so that caches and saved settings of the preprocessed
releases stay what they were. `eeg_emotion.data.preprocess` applies them through MNE.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from eeg_emotion.numbers import real

# A filter edge or a line frequency, in Hz (checked against the target rate's Nyquist below).
EdgeHz = Annotated[float, real(0, 100_000, low_open=True)]
# data.filter: [low, high] in Hz; null on one side leaves that side open (high-pass only with
# [0.5, null], low-pass only with [null, 45]).
BandPass = tuple[EdgeHz | None, EdgeHz | None]
# data.reference: none (as recorded), average (of the EEG channels), or the channels to
# re-reference to (their mean; e.g. [M1, M2]).
Reference = Literal["none", "average"] | list[str]
# data.bad_channels: per recording (its file as named under data.root, e.g. sub-01_eeg.edf or
# s01.dat) the channels to interpolate; the mne source adds those its BIDS channels.tsv marks.
BadChannels = dict[str, list[str]]

# The default of every preprocessing field: a setting at its default is left out of the dump.
DEFAULTS: dict[str, Any] = {"filter": None, "notch": None, "reference": "none", "bad_channels": {}}


def check_preprocessing(
    sampling_rate: float,
    band: BandPass | None,
    notch: float | None,
    reference: Reference,
    bad_channels: BadChannels,
) -> None:
    """ValueError naming the key for a filter edge or a notch at or above the target rate's
    Nyquist frequency, a band whose low edge is not below its high one, or an empty list."""
    nyquist = sampling_rate / 2
    at = f"half of data.sampling_rate={sampling_rate:g}"
    if band is not None:
        low, high = band
        if low is None and high is None:
            raise ValueError("data.filter: give a low edge, a high edge or both, e.g. [0.5, 45]")
        for name, edge in (("low", low), ("high", high)):
            if edge is not None and edge >= nyquist:
                raise ValueError(
                    f"data.filter: the {name} edge {edge:g} Hz is not below the Nyquist "
                    f"frequency {nyquist:g} Hz ({at})"
                )
        if low is not None and high is not None and not low < high:
            raise ValueError(f"data.filter: the low edge {low:g} Hz must be below {high:g} Hz")
    if notch is not None and notch >= nyquist:
        raise ValueError(
            f"data.notch: {notch:g} Hz is not below the Nyquist frequency {nyquist:g} Hz ({at})"
        )
    if isinstance(reference, list) and (not reference or len(set(reference)) != len(reference)):
        raise ValueError(
            f"data.reference: name one or more distinct channels, or average, or none "
            f"(got {reference})"
        )
    for recording, names in bad_channels.items():
        if not names:
            raise ValueError(f"data.bad_channels: {recording!r} lists no channel")


def drop_defaults(settings: Any, dumped: dict[str, Any]) -> None:
    """Leave every preprocessing setting at its default out of a data settings dump."""
    for name, default in DEFAULTS.items():
        if getattr(settings, name) == default:
            dumped.pop(name, None)
