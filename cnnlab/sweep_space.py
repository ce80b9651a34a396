"""A sweep's search space: `--param SPEC` parsed, checked, and turned into Optuna suggestions.

    lr=log:1e-3..0.3            a log-uniform float range (both bounds > 0)
    warmup_epochs=0..2          a uniform range: ints for an int field, else floats
    momentum=0,0.9              a choice (commas separate the values)
    model.activation=relu,sigmoid           a model knob (`cnnlab models NAME` lists them)
    model.channels=6-16,32-64   a choice whose values are lists ('-' joins a list's items)

A name is a TrainConfig field or `model.KNOB`. Every value is checked here, before any trial
runs, so a bad spec is one line (ConfigError) and nothing in the sweep folder changes.
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass
from typing import Any

from cnnlab.errors import ConfigError, suggest
from cnnlab.train_config import TrainConfig, parse_hw

__all__ = ["PRUNERS", "SAMPLERS", "Param", "apply_params", "check_knobs", "check_values",
           "grid_size", "grid_space", "parse_param", "suggest_params", "train_command",
           "train_flags"]

# Fields a sweep must not vary: what the run is (model, dataset), where files go, or how the
# sweep itself works (seeds come from --seeds, validation from the sweep's val_size).
FIXED = ("model", "dataset", "data_root", "seed", "val_size", "score_test", "monitor",
         "progress", "dry_run", "image_size")
MODEL_PREFIX = "model."
SAMPLERS = ("tpe", "random", "grid")  # Optuna's TPE (model-based), random search, the full grid
PRUNERS = ("median", "halving", "off")  # Optuna's median rule and successive halving


@dataclass(frozen=True)
class Param:
    """One dimension of the search space."""

    name: str  # a TrainConfig field, or model.KNOB
    kind: str  # "choice", "int", "float" (uniform ranges) or "log" (a log-uniform range)
    low: float = 0.0
    high: float = 0.0
    choices: tuple[Any, ...] = ()  # typed values (str for sizes and model knobs)
    integer: bool = False  # a range of whole numbers
    spec: str = ""  # as written, for messages and the summary

    @property
    def knob(self) -> str | None:
        """The model knob's name, or None for a TrainConfig field."""
        return self.name[len(MODEL_PREFIX):] if self.name.startswith(MODEL_PREFIX) else None

    def describe(self) -> str:
        if self.kind == "choice":
            return ", ".join(map(str, self.choices))
        return f"{'log ' if self.kind == 'log' else ''}{self.low:g}..{self.high:g}"


def _fields() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _field_base(tp: Any) -> Any:
    """int, float, bool, str or tuple for a TrainConfig annotation (None stripped)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    base = args[0] if args else tp
    return tuple if typing.get_origin(base) is tuple else base


def parse_param(spec: str) -> Param:
    """Param from 'NAME=VALUES'; ConfigError naming what is wrong and what to write instead."""
    name, eq, values = spec.partition("=")
    name, values = name.strip(), values.strip()
    if not eq or not name or not values:
        raise ConfigError(f"--param {spec!r} is not NAME=VALUES; e.g. lr=log:1e-3..0.3, "
                          "momentum=0,0.9 or model.activation=relu,sigmoid")
    if name.startswith(MODEL_PREFIX):
        if not name[len(MODEL_PREFIX):]:
            raise ConfigError(f"--param {spec!r} names no model knob; write model.KNOB=VALUES "
                              "(`cnnlab models NAME` lists a model's knobs)")
        base = None
    else:
        fields = _fields()
        if name not in fields:
            raise ConfigError(f"--param {spec!r}: unknown parameter {name!r}"
                              f"{suggest(name, list(fields))}; sweep a training setting "
                              "(`cnnlab train --help`) or a model knob as model.KNOB")
        if name in FIXED:
            raise ConfigError(f"--param {spec!r}: {name} is not swept ({_why_fixed(name)})")
        base = _field_base(fields[name])
    if ".." in values:
        return _range(name, spec, values, base)
    items = [v.strip() for v in values.split(",")]
    if any(not v for v in items):
        raise ConfigError(f"--param {spec!r} has an empty value; separate values with commas")
    if len(set(items)) != len(items):
        raise ConfigError(f"--param {spec!r} names a value twice")
    return Param(name, "choice", choices=tuple(_typed(name, v, base, spec) for v in items),
                 spec=spec)


def _why_fixed(name: str) -> str:
    if name == "seed":
        return "run every configuration with several seeds: --seeds 0,1,2"
    if name in ("val_size", "score_test", "monitor"):
        return "the sweep sets it: it selects on validation (--metric), never on test"
    return "it names what the sweep trains or how runs are shown, not a hyperparameter"


def _range(name: str, spec: str, values: str, base: Any) -> Param:
    log = values.startswith("log:")
    lo_text, _, hi_text = values[4 if log else 0:].partition("..")
    try:
        lo, hi = float(lo_text), float(hi_text)
    except ValueError:
        raise ConfigError(f"--param {spec!r}: a range is LOW..HIGH with numbers (e.g. "
                          "lr=log:1e-3..0.3, warmup_epochs=0..2)") from None
    if base not in (None, int, float):
        raise ConfigError(f"--param {spec!r}: {name} is not a number; list its values instead "
                          f"({name}=A,B)")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ConfigError(f"--param {spec!r}: the bounds must be finite numbers")
    if lo == hi:
        raise ConfigError(f"--param {spec!r} is an empty range ({lo_text}..{hi_text}); give "
                          "LOW < HIGH, or one value as a choice")
    if lo > hi:
        raise ConfigError(f"--param {spec!r} is reversed; write {name}="
                          f"{'log:' if log else ''}{hi_text}..{lo_text}")
    if log and lo <= 0:
        raise ConfigError(f"--param {spec!r}: a log range needs bounds > 0 (got {lo_text}); "
                          f"e.g. {name}=log:1e-4..{hi_text}")
    whole = lo.is_integer() and hi.is_integer() and "." not in lo_text + hi_text \
        and "e" not in (lo_text + hi_text).lower()
    is_int = base is int or (base is None and whole)
    if base is int and not (lo.is_integer() and hi.is_integer()):
        raise ConfigError(f"--param {spec!r}: {name} is a whole number; give whole bounds")
    kind = "log" if log else ("int" if is_int else "float")
    return Param(name, kind, lo, hi, integer=is_int, spec=spec)


def _typed(name: str, text: str, base: Any, spec: str) -> Any:
    """A choice's text as the field's type; model knobs stay text (the zoo parses them)."""
    if base is None:  # 6-16 is the list 6,16; 1x64-2x128 the blocks 1x64,2x128; 1e-3 a number
        try:
            float(text)
            return text
        except ValueError:
            return text.replace("-", ",")
    try:
        if base is bool:
            low = text.lower()
            if low not in ("true", "false", "on", "off", "yes", "no", "1", "0"):
                raise ValueError
            value: Any = low in ("true", "on", "yes", "1")
        elif base is int:
            value = int(text)
        elif base is float:
            value = float(text)
        elif base is tuple:
            value = text if text.lower() != "none" else "none"
            if value != "none":
                parse_hw(text)
        else:
            value = text
    except (ValueError, TypeError) as err:
        kind = {bool: "on/off", int: "a whole number", float: "a number",
                tuple: "a size H,W written HxW (e.g. 32x32)"}.get(base, "text")
        raise ConfigError(f"--param {spec!r}: {text!r} is not {kind} for {name}") from err
    return value


def _field_value(name: str, value: Any) -> Any:
    """A choice as the TrainConfig field holds it (a size text becomes (H, W))."""
    if _field_base(_fields()[name]) is tuple and isinstance(value, str):
        return None if value == "none" else parse_hw(value)
    return value


def check_values(config: TrainConfig, params: list[Param]) -> None:
    """ConfigError when the base config refuses a value on its own (e.g. momentum=1.5); values
    that clash only with another parameter's (nesterov with momentum=0) fail just that trial."""
    for p in params:
        if p.knob is not None:
            continue
        values = p.choices if p.kind == "choice" else (p.low, p.high)
        for v in values:
            value = _field_value(p.name, int(v) if p.integer else v)
            try:
                config.replace(**{p.name: value})
            except ConfigError as err:
                raise ConfigError(f"--param {p.spec!r}: {' '.join(str(err).split())}") from None


def grid_space(params: list[Param]) -> dict[str, list[Any]]:
    """Every value of every parameter, for the grid sampler (ranges of floats have none)."""
    space: dict[str, list[Any]] = {}
    for p in params:
        if p.kind == "choice":
            space[p.name] = list(p.choices)
        elif p.integer and p.kind == "int":
            space[p.name] = list(range(int(p.low), int(p.high) + 1))
        else:
            raise ConfigError(f"--sampler grid needs listed values, but --param {p.spec!r} is a "
                              f"{'log ' if p.kind == 'log' else ''}range of floats; list the "
                              "values (e.g. lr=0.01,0.03,0.1) or use --sampler tpe/random")
    return space


def grid_size(params: list[Param]) -> int:
    return math.prod(len(v) for v in grid_space(params).values())


def suggest_params(trial: Any, params: list[Param]) -> dict[str, Any]:
    """One configuration from an Optuna trial: {name: value}."""
    out: dict[str, Any] = {}
    for p in params:
        if p.kind == "choice":
            out[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.integer:
            out[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.kind == "log")
        else:
            out[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.kind == "log")
    return out


def apply_params(config: TrainConfig, model_kwargs: dict[str, Any], values: dict[str, Any],
                 model: str) -> tuple[TrainConfig, dict[str, Any]]:
    """(config, model kwargs) of one configuration; model knobs checked by the zoo."""
    fields = {k: _field_value(k, v) for k, v in values.items() if not k.startswith(MODEL_PREFIX)}
    knobs = {k[len(MODEL_PREFIX):]: v for k, v in values.items() if k.startswith(MODEL_PREFIX)}
    kwargs = {**model_kwargs, **parse_knobs(model, knobs)}
    return config.replace(**fields), kwargs


def parse_knobs(model: str, knobs: dict[str, Any]) -> dict[str, Any]:
    """Typed model kwargs from knob texts, checked by the zoo (ConfigError naming the knob)."""
    if not knobs:
        return {}
    from cnnlab.models import parse_model_args

    return parse_model_args(model, {k: str(v) for k, v in knobs.items()})


def check_knobs(model: str, params: list[Param]) -> None:
    """ConfigError for an unknown knob or a value the zoo refuses, before any trial runs."""
    for p in params:
        if p.knob is None:
            continue
        values = p.choices if p.kind == "choice" else (p.low, p.high)
        for v in values:
            try:
                parse_knobs(model, {p.knob: int(v) if p.integer else v})
            except ConfigError as err:
                raise ConfigError(f"--param {p.spec!r}: {' '.join(str(err).split())}") from None


def train_flags(values: dict[str, Any]) -> list[str]:
    """Command-line flags that set these values: --lr 0.05, --no-nesterov, --model-arg k=v."""
    flags = []
    for name, value in values.items():
        if name.startswith(MODEL_PREFIX):
            flags.append(f"--model-arg {name[len(MODEL_PREFIX):]}={value}")
        elif isinstance(value, bool):
            flags.append(f"--{'' if value else 'no-'}{name.replace('_', '-')}")
        else:
            text = f"{value:.6g}" if isinstance(value, float) else str(value)
            if _field_base(_fields()[name]) is tuple:  # a size: 32x32 -> 32,32
                text = text.replace("x", ",")
            flags.append(f"--{name.replace('_', '-')} {text}")
    return flags


def train_command(base: str, values: dict[str, Any], seed: int = 0) -> str:
    """`base` (a `cnnlab train NAME ...` line) with the flags of one configuration."""
    return " ".join([base, *train_flags(values), *([f"--seed {seed}"] if seed else [])])
