"""The search space file: settings keys with ranges or choices, the sampler and the pruner.

    sampler: {kind: tpe, seed: 0, startup_trials: 4}      # tpe or random
    pruner: {kind: median, startup_trials: 2, warmup_steps: 0}   # median or none
    params:
      train.lr_head: {low: 1.0e-4, high: 1.0e-2, log: true}   # a float range
      model.lora.r: {low: 4, high: 16, step: 4}                # whole numbers at both ends
      data.window: {choices: [2s, 4s]}                         # numbers, text, true / false

Every key is a settings key (`key.sub`, as on the command line). Each end of a range and each
choice is checked against the settings before any work: an unknown key, a value the setting
refuses or a malformed range is one error naming the file and the key. Keys that say where
things go, or that would change the split (and with it the val and test trials), are refused.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from eeg_emotion.config import load_settings, read_yaml
from eeg_emotion.errors import ConfigError
from eeg_emotion.numbers import SEED_MAX, Range

if TYPE_CHECKING:
    import optuna

# Set by tune for every trial, or fixed for the whole study: the split must be the same for
# every trial, or each would be chosen on other val trials and could have trained on test ones.
NOT_SEARCHED = (
    "output_dir",
    "data.root",
    "data.cache_dir",
    "data.split",
    "train.resume",
    "train.tracker",
)
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "none")
COUNT = Range(0, 10**6, integer=True)
FINITE = Range(-1e300, 1e300)
Choice = str | int | float | bool


@dataclass(frozen=True)
class Param:
    """One searched key: a range (low, high, log, step) or a list of choices."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Choice, ...] = ()

    @property
    def integer(self) -> bool:
        return not self.choices and all(
            isinstance(v, int) for v in (self.low, self.high, self.step) if v is not None
        )

    def values_to_check(self) -> list[Any]:
        """What the settings must accept: every choice, or both ends of the range and, for a
        float range, a value between them that is no whole number (a whole-number setting
        refuses it: its range must be written without decimal points)."""
        if self.choices:
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.integer:
            return [self.low, self.high]
        inside = self.low + 0.382 * (self.high - self.low)
        if self.log:
            inside = math.exp(math.log(self.low) + 0.382 * math.log(self.high / self.low))
        return [self.low, self.high, inside]

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.choices:
            return trial.suggest_categorical(self.key, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.integer:
            step = int(self.step or 1)
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class Space:
    path: str
    sampler: dict[str, Any]
    pruner: dict[str, Any]
    params: tuple[Param, ...]

    def suggest(self, trial: optuna.Trial) -> dict[str, Choice]:
        return {p.key: p.suggest(trial) for p in self.params}

    def as_dict(self) -> dict[str, Any]:
        """What the study records (a rerun with another space is refused)."""
        params: dict[str, Any] = {}
        for p in self.params:
            if p.choices:
                params[p.key] = {"choices": list(p.choices)}
            else:
                params[p.key] = {"low": p.low, "high": p.high, "log": p.log, "step": p.step}
        return {"sampler": self.sampler, "pruner": self.pruner, "params": params}


def overrides_of(params: dict[str, Any]) -> list[str]:
    """A trial's values as `key=value` overrides; JSON is YAML, and a float's repr reads back
    as the same number."""
    return [f"{key}={json.dumps(value)}" for key, value in params.items()]


def load_space(path: str | Path, config: str | Path, overrides: list[str]) -> Space:
    """Read and check the space file against the settings of `config` + `overrides`."""
    where = str(path)
    try:
        raw = read_yaml(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the search space ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: the top level must be a mapping (sampler, pruner, params)")
    unknown = sorted(set(raw) - {"sampler", "pruner", "params"})
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (sampler, pruner or params)")
    sampler = _section(where, "sampler", raw.get("sampler"), SAMPLERS, ("seed", "startup_trials"))
    pruner = _section(
        where, "pruner", raw.get("pruner"), PRUNERS, ("startup_trials", "warmup_steps")
    )
    params = raw.get("params")
    if not isinstance(params, dict) or not params:
        raise ConfigError(f"{where}: params must map settings keys to ranges or choices")
    space = Space(where, sampler, pruner, tuple(_param(where, k, v) for k, v in params.items()))
    check_against_settings(space, config, overrides)
    return space


def _section(
    where: str, name: str, raw: Any, kinds: tuple[str, ...], counts: tuple[str, ...]
) -> dict[str, Any]:
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {name} must be a mapping (kind, {', '.join(counts)})")
    out: dict[str, Any] = {"kind": raw.get("kind", kinds[0])}
    if out["kind"] not in kinds:
        raise ConfigError(
            f"{where}: {name}.kind must be one of {', '.join(kinds)}, got {out['kind']!r}"
        )
    for key, value in raw.items():
        if key == "kind":
            continue
        if key not in counts:
            raise ConfigError(f"{where}: unknown key '{name}.{key}' ({', '.join(counts)})")
        rule = Range(0, SEED_MAX, integer=True) if key == "seed" else COUNT
        problem = rule.why_not(value)
        if problem:
            raise ConfigError(f"{where}: {name}.{key}: {problem}")
        out[key] = int(value)
    return out


def _param(where: str, key: Any, spec: Any) -> Param:
    at = f"{where}: params.{key}"
    if not isinstance(key, str) or not key:
        raise ConfigError(f"{at}: a param is a settings key such as train.lr_head")
    refused = next((k for k in NOT_SEARCHED if key == k or key.startswith(k + ".")), None)
    if refused is not None:
        raise ConfigError(
            f"{at}: {refused} is not searched (where things go, or the split: every trial must "
            "be chosen on the same val trials, with the test trials left out)"
        )
    if not isinstance(spec, dict):
        raise ConfigError(f"{at}: give {{low: .., high: ..}} or {{choices: [..]}}")
    if "choices" in spec:
        return _choices(at, key, spec)
    extra = sorted(set(spec) - {"low", "high", "log", "step"})
    if extra or "low" not in spec or "high" not in spec:
        what = f"unknown key '{extra[0]}'" if extra else "a range needs low and high"
        raise ConfigError(f"{at}: {what} (a range: low, high, log, step; or choices)")
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    for name, value in (
        ("low", low),
        ("high", high),
        *([("step", step)] if step is not None else []),
    ):
        problem = FINITE.why_not(value)
        if problem:
            raise ConfigError(f"{at}.{name}: {problem}")
    if not isinstance(log, bool):
        raise ConfigError(f"{at}.log: must be true or false, got {log!r}")
    if not low < high:
        raise ConfigError(f"{at}: low must be below high, got low={low}, high={high}")
    if log and low <= 0:
        raise ConfigError(f"{at}: a log range needs low > 0, got low={low}")
    if step is not None and (step <= 0 or log):
        why = "cannot be combined with log: true" if log else f"must be > 0, got {step}"
        raise ConfigError(f"{at}.step: {why}")
    if isinstance(low, int) != isinstance(high, int):
        raise ConfigError(
            f"{at}: low and high must both be whole numbers (an integer range) or both have a "
            f"decimal point (a float range), got low={low}, high={high}"
        )
    return Param(key, low, high, log, step)


def _choices(at: str, key: str, spec: dict[str, Any]) -> Param:
    choices = spec["choices"]
    if set(spec) != {"choices"}:
        raise ConfigError(f"{at}: choices stand alone (no low, high, log or step beside them)")
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{at}.choices: must be a non-empty list")
    for value in choices:
        scalar = isinstance(value, (str, bool)) or (
            isinstance(value, (int, float)) and math.isfinite(value)
        )
        if not scalar:
            raise ConfigError(
                f"{at}.choices: each choice is a finite number, text or true/false, got {value!r}"
            )
    if len({json.dumps(v) for v in choices}) != len(choices):
        raise ConfigError(f"{at}.choices: has duplicates: {choices}")
    return Param(key, choices=tuple(choices))


def check_against_settings(space: Space, config: str | Path, overrides: list[str]) -> None:
    """Every choice and both ends of every range, each as an override on top of the study's
    settings: the settings' own checks name an unknown key or a refused value."""
    given = {token.lstrip("-").partition("=")[0] for token in overrides}
    source = f"{config} + overrides: "
    for param in space.params:
        if param.key in given:
            raise ConfigError(
                f"{space.path}: params.{param.key}: also given as an override; a searched key "
                "takes its values from the space only"
            )
        for value in param.values_to_check():
            try:
                load_settings(config, [*overrides, *overrides_of({param.key: value})])
            except ConfigError as exc:
                problem = str(exc).removeprefix(source)
                raise ConfigError(f"{space.path}: params.{param.key}: {problem}") from None
