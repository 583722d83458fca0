"""Each data source's reader options (`data.options`), and the constants they default to.

Options only, on the settings base: `config` types `data.options` with these and every reader
takes its own, so neither imports the other, and loading the settings loads no reader.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from eeg_emotion.numbers import Seconds, real, whole
from eeg_emotion.settings_base import Section

# DEAP's recordings start this long before each video; its reader and synthetic copies agree.
DEAP_BASELINE_SECONDS = 3.0
# AMIGOS participants TorchEEG leaves out by default, whose recordings it calls invalid.
TORCHEEG_EXCLUDED = (9, 12, 21, 22, 23, 24, 33)
# The file types the MNE reader looks for under its root.
MNE_EXTENSIONS = [".edf", ".bdf", ".gdf", ".fif", ".fif.gz", ".vhdr", ".set", ".cnt"]


class DeapOptions(Section):
    source: Literal["deap"] = "deap"
    channels: Literal["eeg", "all"] = "eeg"  # the 32 EEG channels, or all 40
    # The seconds before each video become the trial's baseline; 0 leaves them in the trial.
    baseline_seconds: Seconds = DEAP_BASELINE_SECONDS


class DreamerOptions(Section):
    source: Literal["dreamer"] = "dreamer"
    # Each clip's 61 s pre-clip recording becomes the trial's baseline; false leaves it out.
    baselines: bool = True


class SeedOptions(Section):
    source: Literal["seed"] = "seed"


class SeedIVOptions(Section):
    source: Literal["seed_iv"] = "seed_iv"
    sampling_rate: Literal[200, 1000] = 200


class AmigosOptions(Section):
    source: Literal["amigos"] = "amigos"
    excluded: list[Annotated[int, whole(0, 1_000_000)]] = Field(
        default_factory=lambda: list(TORCHEEG_EXCLUDED)
    )
    long_videos: Literal["drop", "when_present", "required"] = "drop"
    baseline_seconds: Seconds = 5.0
    channels: Literal["eeg", "all"] = "eeg"
    nan_labels: Literal["error", "skip"] = "error"


class StimEvents(Section):
    """Trials from a stim channel's event codes (`mne.find_events`), not from annotations."""

    channel: str = "Status"  # BioSemi BDF's; any channel of the recording by name
    # The codes that start a trial: each such event is one trial, numbered 1..n in time order.
    start: list[Annotated[int, whole(1, 2**31 - 1)]]
    # Where each trial ends: at the first `end` code after its start, or `seconds` after it.
    end: Annotated[int, whole(1, 2**31 - 1)] | None = None
    seconds: Seconds | None = None
    # The bits that hold the codes (`find_events(mask=..., mask_type="and")`): BioSemi's
    # trigger codes are the lower 16 of its 24-bit Status channel, whose upper bits the
    # amplifier sets; None takes the channel's values as they are.
    mask: Annotated[int, whole(1, 2**31 - 1)] | None = 0xFFFF

    @field_validator("start", mode="before")
    @classmethod
    def _one_code(cls, value: object) -> object:
        return [value] if isinstance(value, int) else value

    @model_validator(mode="after")
    def _check(self) -> StimEvents:
        if not self.start:
            raise ValueError("stim.start: name at least one code that starts a trial")
        if (self.end is None) == (self.seconds is None):
            raise ValueError("stim: give either end (a code) or seconds (a fixed duration)")
        if self.seconds is not None and self.seconds <= 0:
            raise ValueError(f"stim.seconds must be > 0, got {self.seconds}")
        if self.end is not None and self.end in self.start:
            raise ValueError(f"stim.end {self.end} is also a start code")
        for code in [*self.start, *([self.end] if self.end is not None else [])]:
            if self.mask is not None and code & self.mask != code:
                raise ValueError(f"stim: code {code} has bits outside the mask {self.mask:#x}")
        return self


class MneOptions(Section):
    source: Literal["mne"] = "mne"
    labels: str | None = None  # a CSV under the root; None: a BIDS *_events.tsv per recording
    # With a CSV: use only the recordings it lists (else one found under the root that it does
    # not list is an error naming it).
    listed_only: bool = False
    # Trials from a stim channel's events (None: from the recording's annotations); the label
    # table then names each trial by its number (`trial`: 1..n) or its event's `sample`.
    stim: StimEvents | None = None
    ratings: list[str] = Field(default_factory=lambda: ["valence", "arousal"])
    scale: tuple[Annotated[float, real(-1e6, 1e6)], Annotated[float, real(-1e6, 1e6)]] = (1.0, 9.0)
    category: str | None = None  # a column of class names, used instead of ratings
    classes: list[str] = Field(default_factory=list)  # class names in id order (`category`)
    trial_type: str | None = None  # events.tsv: only rows of this trial_type are trials
    channels: Literal["eeg"] | list[str] = "eeg"
    baseline_seconds: Seconds = 0.0
    nan_labels: Literal["error", "skip"] = "error"
    extensions: list[str] = Field(default_factory=lambda: list(MNE_EXTENSIONS))

    @model_validator(mode="after")
    def _check(self) -> MneOptions:
        if self.category is not None and not self.classes:
            raise ValueError("category needs classes: the class names in class-id order")
        if self.category is None and not self.ratings:
            raise ValueError("name the rating columns (ratings) or a category column")
        if not self.scale[0] < self.scale[1]:
            raise ValueError(f"scale must be (low, high) with low < high, got {self.scale}")
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> Any:
        # At their defaults the newer options are left out: saved settings and cache keys
        # stay as they were before them.
        out = handler(self)
        if isinstance(out, dict):
            for key, default in (("stim", None), ("listed_only", False)):
                if key in out and out[key] == default:
                    del out[key]
        return out


OPTIONS: dict[str, type[BaseModel]] = {
    "deap": DeapOptions,
    "dreamer": DreamerOptions,
    "seed": SeedOptions,
    "seed_iv": SeedIVOptions,
    "amigos": AmigosOptions,
    "mne": MneOptions,
}
# Any source's options: the `source` field picks the model.
SourceOptions = Annotated[
    DeapOptions | DreamerOptions | SeedOptions | SeedIVOptions | AmigosOptions | MneOptions,
    Field(discriminator="source"),
]
