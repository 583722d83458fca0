"""One rule for every number a user gives: finite, of the right kind, and inside a stated range.

`Range` states the range once. `Range.field()` is the pydantic type of a setting and
`Range.arg` the argparse type of a command-line option; both refuse with the same sentence,
which the caller prefixes with the key or the option (`train.lr_lora: ...`,
`argument --seed: ...`). So no `inf`, `nan`, negative seed or absurd size reaches numpy, torch
or scikit-learn. A leaf module (pydantic only), below the settings and the commands.
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

# numpy's and torch's seeds are unsigned 32-bit.
SEED_MAX = 2**32 - 1
# A day of recording, in seconds: no window, trial or baseline is longer.
DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    integer: bool = False
    low_open: bool = False  # (low, ..: low itself refused
    high_open: bool = False

    def text(self) -> str:
        kind = "a whole number" if self.integer else "a finite number"
        left = "(" if self.low_open else "["
        right = ")" if self.high_open else "]"
        return f"{kind} in {left}{_show(self.low)}, {_show(self.high)}{right}"

    def why_not(self, value: Any) -> str | None:
        """None when `value` is a number in the range, else what is wrong with it."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be {self.text()}, got {value!r}"
        if not math.isfinite(value) or (self.integer and value != int(value)):
            return f"must be {self.text()}, got {_show(value)}"
        low_bad = value <= self.low if self.low_open else value < self.low
        high_bad = value >= self.high if self.high_open else value > self.high
        if low_bad or high_bad:
            return f"must be {self.text()}, got {_show(value)}"
        return None

    def parse(self, value: Any) -> int | float:
        """`value` (a number, or its text) as an int or float in the range; ValueError if not."""
        if isinstance(value, str):
            value = _number(value.strip())
        problem = self.why_not(value)
        if problem:
            raise ValueError(problem)
        return int(value) if self.integer else float(value)

    def _validate(self, value: Any) -> Any:
        if value is None:  # Optional settings keep None; the field's type decides if allowed
            return value
        try:
            return self.parse(value)
        except ValueError as exc:
            raise PydanticCustomError("number_range", str(exc)) from None

    def field(self) -> Any:
        """The pydantic annotation: `x: Annotated[float, R.field()]`."""
        return BeforeValidator(self._validate)

    def arg(self, text: str) -> int | float:
        """argparse type: argparse names the option in front of the message."""
        try:
            return self.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


def _number(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text  # not a number: why_not names it


def _show(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def whole(low: int, high: int) -> Any:
    """The validator of a whole-number setting in [low, high]: `Annotated[int, whole(1, 9)]`."""
    return Range(low, high, integer=True).field()


def real(low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> Any:
    """The validator of a finite real setting (open ends refuse the bound itself)."""
    return Range(low, high, low_open=low_open, high_open=high_open).field()


Seed = Annotated[int, whole(0, SEED_MAX)]
Probability = Annotated[float, real(0, 1, high_open=True)]  # dropouts, fractions, smoothing
LearningRate = Annotated[float, real(0, 10, low_open=True)]
Seconds = Annotated[float, real(0, DAY_SECONDS)]

# A length in samples (1024, "1024") or seconds ("8s", "7.5s"); samples are whole and >= 1.
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*(s|samples)?\s*$")
_DURATION_SAMPLES = Range(1, 10**8, integer=True)
_DURATION_SECONDS = Range(0, DAY_SECONDS, low_open=True)


def _duration(value: Any) -> Any:
    hint = "give samples as a whole number (1024) or seconds as text ('8s', '2.5s')"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PydanticCustomError("number_range", f"{hint}, got {value!r}")
    match = _DURATION.match(str(value))
    if not match:
        raise PydanticCustomError("number_range", f"{hint}, got {value!r}")
    number, unit = float(match.group(1)), match.group(2)
    rule = _DURATION_SECONDS if unit == "s" else _DURATION_SAMPLES
    problem = rule.why_not(number)
    if problem:
        what = "seconds" if unit == "s" else "samples"
        raise PydanticCustomError("number_range", f"{what} {problem}")
    return value


Duration = Annotated[int | str, BeforeValidator(_duration)]
