"""What a sweep searches: `--param SPEC` parsed, checked, and turned into Optuna suggestions;
the whole sweep's spec (SweepSpec: model, space, base config, sampler, pruner, metric, seeds).

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
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import ConfigError, suggest
from cnnlab.train_config import MONITORS, TrainConfig, parse_hw

__all__ = ["DEFAULT_VAL", "OPTIONS", "PRUNERS", "SAMPLERS", "Param", "SweepSpec", "apply_params",
           "base_command",
           "check_knobs", "check_values", "grid_size", "grid_space", "parse_budget",
           "parse_param", "plan_spec", "python_spec", "suggest_params", "sweep_options",
           "train_command", "train_flags"]

# Fields a sweep must not vary: what the run is (model, dataset), where files go, or how the
# sweep itself works (seeds come from --seeds, validation from the sweep's val_size).
FIXED = ("model", "dataset", "data_root", "seed", "val_size", "score_test", "monitor",
         "progress", "dry_run", "image_size")
MODEL_PREFIX = "model."
DEFAULT_VAL = 0.1  # the validation share of the training split when the config sets none
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
            text = (f"{value:.6g}" if isinstance(value, float) else
                    ",".join(map(str, value)) if isinstance(value, tuple) else str(value))
            if _field_base(_fields()[name]) is tuple:  # a size: 32x32 -> 32,32
                text = text.replace("x", ",")
            flags.append(f"--{name.replace('_', '-')} {text}")
    return flags


def train_command(base: str, values: dict[str, Any], seed: int = 0) -> str:
    """`base` (a `cnnlab train NAME ...` line) with the flags of one configuration."""
    return " ".join([base, *train_flags(values), *([f"--seed {seed}"] if seed else [])])


# --- a whole sweep's spec ---------------------------------------------------------------

@dataclass
class SweepSpec:
    """What a sweep searches: the model, the space, the base config and how it selects."""

    model: str  # a zoo name
    params: list[Param]
    config: TrainConfig  # every trial's settings before its parameters are applied
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    sampler: str = "tpe"
    prune: str = "median"
    metric: str = "val_acc"  # ranks trials (the final epoch's value, mean over seeds)
    seeds: tuple[int, ...] = (0,)
    command: str = ""  # `cnnlab train ...` that trains one configuration (params appended)

    def __post_init__(self) -> None:
        self.seeds = tuple(self.seeds)
        updates: dict[str, Any] = {"monitor": self.metric, "score_test": False,
                                   "progress": "none", "seed": self.seeds[0] if self.seeds else 0}
        if not self.config.val_size:
            updates["val_size"] = DEFAULT_VAL
        self.config = self.config.replace(**updates)
        self.command = self.command or f"cnnlab train {self.model}"

    def check(self) -> None:
        """ConfigError for a spec no trial could run; nothing is written before this passes."""
        for name, value, allowed in (("sampler", self.sampler, SAMPLERS),
                                     ("prune", self.prune, PRUNERS),
                                     ("metric", self.metric, MONITORS)):
            if value not in allowed:
                raise ConfigError(f"--{name} {value!r} is not one of {', '.join(allowed)}")
        if not self.params:
            raise ConfigError("a sweep needs at least one --param NAME=VALUES (e.g. "
                              "--param lr=log:1e-3..0.3)")
        names = [p.name for p in self.params]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"--param names {', '.join(twice)} twice; give each parameter once")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"--seeds {','.join(map(str, self.seeds))}: give distinct seeds")
        if not self.config.eval_every or self.config.eval_every > 1:
            raise ConfigError(f"eval_every={self.config.eval_every}: a sweep validates after "
                              "every epoch (it ranks and prunes on validation); use 1")
        check_values(self.config, self.params)
        check_knobs(self.model, self.params)
        if self.sampler == "grid":
            grid_space(self.params)  # refuses float ranges

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "params": [p.spec for p in self.params],
                "config": self.config.to_dict(), "model_kwargs": self.model_kwargs,
                "sampler": self.sampler, "prune": self.prune, "metric": self.metric,
                "seeds": list(self.seeds), "command": self.command}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepSpec:
        return cls(d["model"], [parse_param(s) for s in d["params"]],
                   TrainConfig.from_dict(d["config"]), dict(d.get("model_kwargs") or {}),
                   d["sampler"], d["prune"], d["metric"], tuple(d["seeds"]), d["command"])


def parse_budget(text: str | float | None) -> float | None:
    """Seconds from '30m', '2h', '90s' or a number of minutes; None for none."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        seconds = float(text) * 60
    else:
        units = {"s": 1, "m": 60, "h": 3600}
        t = text.strip().lower()
        scale = units.get(t[-1:], None)
        try:
            seconds = float(t[:-1] if scale else t) * (scale or 60)
        except ValueError:
            raise ConfigError(f"--budget {text!r} is not a time; write 30m, 2h or 90s") from None
    if not seconds > 0:
        raise ConfigError(f"--budget {text!r} must be positive")
    return seconds


# The options of `cnnlab sweep` (flags, or keys of a TOML file's [sweep] table).
OPTIONS = ("param", "trials", "budget", "sampler", "prune", "metric", "seeds", "storage", "out",
           "retrain_best")


def sweep_options(config_file: Any, flags: dict[str, Any]) -> dict[str, Any]:
    """The sweep's options: the TOML file's [sweep] table, then the flags given (not None)."""
    from cnnlab.train_config import read_toml

    table = read_toml(config_file).get("sweep", {}) if config_file else {}
    if not isinstance(table, dict):
        raise ConfigError(f"{config_file}: 'sweep' must be a [sweep] table")
    opts: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        name = "param" if name == "params" else name
        if name not in OPTIONS:
            raise ConfigError(f"{config_file}: unknown setting {key!r} in [sweep]"
                              f"{suggest(name, list(OPTIONS))}")
        opts[name] = [value] if name == "param" and isinstance(value, str) else value
    opts.update({k: v for k, v in flags.items() if v not in (None, False)})
    if isinstance(opts.get("seeds"), str):
        try:
            opts["seeds"] = [int(s) for s in opts["seeds"].split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"seeds={opts['seeds']!r} is not seeds such as 0,1,2") from None
    return opts


def plan_spec(recipe: Any, config: TrainConfig, model_kwargs: dict[str, Any],
              opts: dict[str, Any], flags: dict[str, Any], config_file: Any = None) -> SweepSpec:
    """The SweepSpec of `cnnlab sweep RECIPE ...`: the recipe's config and knobs, the options,
    and the `cnnlab train` line (the file's and the flags' settings) that trains one trial."""
    from cnnlab.train_config import load_toml

    given = {**(load_toml(config_file) if config_file else {}), **flags}
    command = base_command(recipe.name, recipe.model, given, model_kwargs)
    return SweepSpec(recipe.model, [parse_param(p) for p in opts.get("param") or []], config,
                     model_kwargs, sampler=opts.get("sampler", "tpe"),
                     prune=opts.get("prune", "median"), metric=opts.get("metric", "val_acc"),
                     seeds=tuple(opts.get("seeds") or (config.seed,)), command=command)


def base_command(name: str, model: str, given: dict[str, Any],
                 model_kwargs: dict[str, Any]) -> str:
    """The `cnnlab train NAME ...` line of the settings given (TrainConfig fields, except those
    a sweep sets itself) and the model's knobs: a trial's line, once its parameters are added."""
    from cnnlab.models import knob_text

    given = {k: v for k, v in given.items()
             if k not in ("model", "recipe", "val_size", "seed", "progress", "model_args")}
    return " ".join(["cnnlab train", name, *train_flags(given),
                     *(f"--model-arg {kv}" for kv in knob_text(model, model_kwargs).split())])


def python_spec(model: str, params: str | list[str] | tuple[str, ...], config: dict[str, Any],
                model_kwargs: dict[str, Any] | None = None, **how: Any) -> SweepSpec:
    """The SweepSpec of `cnnlab.sweep.sweep(...)`: the --param specs (one string or several),
    TrainConfig fields as keywords, the knobs, and sampler/prune/metric/seeds in `how`."""
    cfg = TrainConfig.from_dict({"model": model, **config})
    kwargs = dict(model_kwargs or {})  # typed, as create_model takes them
    specs = [params] if isinstance(params, str) else list(params)
    return SweepSpec(model, [parse_param(p) for p in specs], cfg, kwargs,
                     command=base_command(model, model, config, kwargs),
                     **{**how, "seeds": tuple(how.get("seeds") or (cfg.seed,))})
