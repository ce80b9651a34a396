"""The model registry: a decorator and a dict (timm's `_registry.py` pattern), with each model's
architecture knobs (cnnlab.models._knobs) so every name can be varied without code."""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import nn

from cnnlab.errors import ConfigError, suggest
from cnnlab.models._knobs import Knob, KnobSet, format_value, split_pairs

__all__ = [
    "check_model_kwargs",
    "create_model",
    "default_input_size",
    "knob_table",
    "knob_text",
    "list_models",
    "model_knobs",
    "non_default_knobs",
    "parse_model_args",
    "register_model",
]

ModelFn = TypeVar("ModelFn", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class _Entry:
    fn: Callable[..., nn.Module]  # the one-line constructor, its knobs' defaults applied
    input_size: int  # the square side the book trains the network at
    knobs: KnobSet


_MODELS: dict[str, _Entry] = {}
# What every model takes besides its knobs (create_model's arguments, the engine's input size).
_COMMON = ("num_classes", "in_channels", "input_size")


def register_model(input_size: int, knobs: Iterable[Knob] = (),
                   defaults: Mapping[str, Any] | None = None) -> Callable[[ModelFn], ModelFn]:
    """Register a one-line constructor under its function name, with the book's input size.

    `knobs` are its family's architecture knobs; `defaults` this model's values of some of them
    (vgg16's `arch`, lenet_wide's `channels`, ...). The constructor is called with every knob's
    default filled in, so the registered network is defined here, once.
    """

    def decorator(fn: ModelFn) -> ModelFn:
        if fn.__name__ in _MODELS:
            raise ValueError(f"model {fn.__name__!r} is registered twice")
        knob_set = KnobSet(fn.__name__, knobs, defaults or {})
        base = knob_set.defaults()

        @functools.wraps(fn)
        def build(**kwargs: Any) -> nn.Module:
            common = {k: kwargs.pop(k) for k in _COMMON if k in kwargs}
            given = knob_set.check(kwargs)
            try:
                return fn(**common, **{**base, **given})
            except ValueError as err:  # a layer refusing the mix (groups that do not divide...)
                if not given:
                    raise
                text = " ".join(f"{k}={format_value(v)}" for k, v in given.items())
                raise ConfigError(f"{fn.__name__} cannot be built with {text}: {err}") from None

        _MODELS[fn.__name__] = _Entry(build, input_size, knob_set)
        return build  # type: ignore[return-value]

    return decorator


def _lookup(name: str) -> _Entry:
    """Registry entry for `name`, or a ConfigError naming the closest registered names."""
    try:
        return _MODELS[name]
    except KeyError:
        hint = suggest(name, _MODELS) or "; see list_models()"
        raise ConfigError(f"unknown model {name!r}{hint}") from None


def create_model(
    name: str, num_classes: int = 10, in_channels: int = 1, **kwargs: object
) -> nn.Module:
    """Build the registered model `name`; kwargs are its knobs (`model_knobs(name)`), checked,
    and `input_size` (H, W) for networks whose classifier is sized by a flatten."""
    entry = _lookup(name)
    counts = (num_classes, in_channels)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in counts):
        raise ConfigError(
            f"num_classes={num_classes!r} and in_channels={in_channels!r} must both be integers "
            "of at least 1"
        )
    return entry.fn(num_classes=num_classes, in_channels=in_channels, **kwargs)


def model_knobs(name: str) -> list[Knob]:
    """The architecture knobs of model `name`, with its defaults (`cnnlab models NAME`)."""
    return list(_lookup(name).knobs)


def parse_model_args(name: str, args: Mapping[str, Any] | Sequence[str]) -> dict[str, Any]:
    """Validated, typed kwargs for `create_model(name, ...)` from {"channels": "32,64", ...}
    (text or Python values) or ["channels=32,64", ...]; a ConfigError names the knob at fault."""
    entry = _lookup(name)
    if isinstance(args, str):
        args = [args]
    pairs = split_pairs(args) if not isinstance(args, Mapping) else args
    if "input_size" in pairs:
        raise ConfigError(f"{name}: the input size is not a knob; set it with --resize H,W "
                          "(the `resize` setting)")
    return entry.knobs.check(pairs)


def check_model_kwargs(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Python kwargs for `create_model(name, ...)` as a run records them: the knobs checked,
    typed and under their current names; `input_size` passed on as given."""
    common = {k: v for k, v in kwargs.items() if k == "input_size"}
    knobs = {k: v for k, v in kwargs.items() if k != "input_size"}
    return {**_lookup(name).knobs.check(knobs), **common}


def non_default_knobs(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The knobs in `kwargs` whose values differ from model `name`'s defaults (input_size left
    out): what a run header and report show."""
    knobs = _lookup(name).knobs
    known = {k: v for k, v in kwargs.items() if k != "input_size"}
    return knobs.changed(known)


def knob_text(name: str, kwargs: Mapping[str, Any]) -> str:
    """'channels=32,64,128 kernel_size=3': the knobs in `kwargs` that differ from the defaults
    of model `name`, as --model-arg would take them ('' when none do)."""
    changed = non_default_knobs(name, kwargs)
    return " ".join(f"{k}={format_value(v)}" for k, v in changed.items())


def knob_table(name: str) -> str:
    """Model `name`'s knobs as aligned text: name, default, what it takes, what it changes."""
    knobs = model_knobs(name)
    if not knobs:
        return "  (none)"
    rows = [(k.name, format_value(k.default), k.allowed(), k.help) for k in knobs]
    w = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"  {a.ljust(w[0])}  {b.ljust(w[1])}  {d}\n  {''.ljust(w[0])}  "
                     f"{''.ljust(w[1])}  takes {c}" for a, b, c, d in rows)


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by an fnmatch pattern such as 'resnet*'."""
    names = sorted(_MODELS)
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def default_input_size(name: str) -> tuple[int, int, int]:
    """(C, H, W) the book feeds `name`: 28 for LeNets, 224 for AlexNet/VGG/NiN, 96 for the rest."""
    return (1, _lookup(name).input_size, _lookup(name).input_size)
