"""Architecture knobs: what each zoo family lets a user vary, declared once as data.

A `Knob` is one keyword argument of a registered model (name, kind, default, allowed values, one
line of help). The same declaration parses `KEY=VALUE` text (`--model-arg`, sweeps), checks
Python values (`create_model(name, **kwargs)`, a TOML `[model]` table), lists a model's knobs
(`cnnlab models NAME`) and words every error: one line naming the knob and what it allows.

Text syntax, by kind:

    int, float      kernel_size=3, dropout=0.3
    bool            batch_norm=true (true/false, yes/no, on/off, 1/0)
    choice          activation=relu
    ints            channels=32,64,128 (a comma list; "none" or "" for an empty one)
    blocks          arch=1x64,1x128,2x256 (COUNTxCHANNELS per stage: convs or residual blocks)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cnnlab.errors import ConfigError, suggest

__all__ = ["DENSE_WIDTH", "DROPOUT", "STEM", "Knob", "KnobSet", "format_value", "split_pairs"]

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_KINDS = ("int", "float", "bool", "choice", "ints", "blocks")


def format_value(value: Any) -> str:
    """A knob value as the text that parses back to it: 32,64,128 / 1x64,2x128 / true / relu."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        if not value:
            return "none"
        if isinstance(value[0], (tuple, list)):
            return ",".join("x".join(str(v) for v in block) for block in value)
        return ",".join(str(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class Knob:
    """One keyword argument of a zoo model that a user may set, with what it allows."""

    name: str  # the keyword argument of the model's constructor
    kind: str  # one of _KINDS
    default: Any  # the registered model's value (None: the model works it out, shown as "auto")
    help: str  # one line: what the knob changes, in the chapter's words
    choices: tuple[str, ...] = ()  # for kind "choice"
    low: float | None = None  # smallest allowed number (each entry, for lists)
    high: float | None = None  # largest allowed number
    min_len: int = 1  # fewest entries of a list ("ints", "blocks")
    auto: bool = False  # "auto" (None) is allowed: the model works the value out
    aliases: tuple[str, ...] = ()  # older names still accepted (recorded runs)
    below_high: bool = False  # the high bound itself is excluded (dropout < 1)

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"knob {self.name!r}: unknown kind {self.kind!r}")

    def allowed(self) -> str:
        """What the knob accepts, for listings and error messages."""
        if self.kind == "choice":
            text = ", ".join(self.choices)
        elif self.kind == "bool":
            text = "true or false"
        else:
            text = self._range_text()
        return text + (" or auto" if self.auto else "")

    def _range_text(self) -> str:
        number = "an integer" if self.kind in ("int", "ints", "blocks") else "a number"
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            bound = f"{number} in [{_num(lo)}, {_num(hi)}{')' if self.below_high else ']'}"
        elif lo is not None:
            bound = f"{number} >= {_num(lo)}"
        elif hi is not None:
            bound = f"{number} <= {_num(hi)}"
        else:
            bound = number
        if self.kind == "ints":
            return f"a comma list of {self.min_len}+ entries, each {bound}"
        if self.kind == "blocks":
            return f"{self.min_len}+ COUNTxCHANNELS blocks (e.g. 1x64,2x128), each {bound}"
        return bound

    def _bad(self, value: Any, model: str) -> ConfigError:
        return ConfigError(f"{model}: {self.name}={format_value(value)!s} is not allowed; "
                           f"{self.name} takes {self.allowed()}")

    def parse(self, text: str, model: str = "model") -> Any:
        """The typed value of `text` (KEY=VALUE's VALUE), checked."""
        s = text.strip()
        if self.auto and s.lower() == "auto":
            return None
        try:
            if self.kind == "int":
                value: Any = int(s)
            elif self.kind == "float":
                value = float(s)
            elif self.kind == "bool":
                if s.lower() not in _TRUE + _FALSE:
                    raise ValueError(s)
                value = s.lower() in _TRUE
            elif self.kind == "choice":
                value = s
            elif self.kind == "ints":
                value = tuple(int(p) for p in _items(s))
            else:  # blocks
                value = tuple(_block(p) for p in _items(s))
        except ValueError:
            raise ConfigError(f"{model}: {self.name}={text!r} is not {self.allowed()}"
                              ) from None
        return self.check(value, model)

    def check(self, value: Any, model: str = "model") -> Any:
        """`value` as the constructor takes it (lists become tuples), or a ConfigError."""
        if isinstance(value, str) and self.kind != "choice":
            return self.parse(value, model)
        if value is None:
            if self.auto:
                return None
            raise self._bad(value, model)
        if self.kind == "choice":
            if value not in self.choices:
                hint = suggest(str(value), self.choices)
                raise ConfigError(f"{model}: {self.name}={value!r} is not one of "
                                  f"{', '.join(self.choices)}{hint}")
            return value
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise self._bad(value, model)
            return value
        if self.kind in ("int", "float"):
            ok = _is_int(value) or (self.kind == "float" and isinstance(value, float))
            if not ok or not self._in_range(value):
                raise self._bad(value, model)
            return float(value) if self.kind == "float" else int(value)
        if _is_int(value) and self.kind == "ints":
            value = (value,)
        if not isinstance(value, (tuple, list)) or len(value) < self.min_len:
            raise self._bad(value, model)
        if self.kind == "ints":
            if not all(_is_int(v) and self._in_range(v) for v in value):
                raise self._bad(value, model)
            return tuple(int(v) for v in value)
        blocks = []
        for block in value:
            if (not isinstance(block, (tuple, list)) or len(block) != 2
                    or not all(_is_int(v) and self._in_range(v) for v in block)):
                raise self._bad(value, model)
            blocks.append((int(block[0]), int(block[1])))
        return tuple(blocks)

    def _in_range(self, v: float) -> bool:
        if self.low is not None and v < self.low:
            return False
        if self.high is not None and (v >= self.high if self.below_high else v > self.high):
            return False
        return True

    def describe(self) -> str:
        """'name  default  allowed  help' as one line of `cnnlab models NAME`."""
        return f"{self.name}={format_value(self.default)}: {self.help} ({self.allowed()})"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _items(s: str) -> list[str]:
    if s.lower() in ("", "none"):
        return []
    return [p.strip() for p in s.split(",")]


def _block(s: str) -> tuple[int, int]:
    count, sep, channels = s.lower().partition("x")
    if not sep:
        raise ValueError(s)
    return int(count), int(channels)


class KnobSet:
    """The knobs of one registered model: its family's declarations with its own defaults."""

    def __init__(self, model: str, knobs: Iterable[Knob], defaults: Mapping[str, Any]) -> None:
        self.model = model
        by_name = {k.name: k for k in knobs}
        unknown = set(defaults) - set(by_name)
        if unknown:
            raise ValueError(f"model {model!r}: defaults for undeclared knobs {sorted(unknown)}")
        self.knobs: dict[str, Knob] = {
            name: replace(k, default=k.check(defaults[name], model)) if name in defaults else k
            for name, k in by_name.items()
        }
        self._alias = {a: k.name for k in self.knobs.values() for a in k.aliases}

    def __iter__(self):
        return iter(self.knobs.values())

    def defaults(self) -> dict[str, Any]:
        """Every knob's default: what the registered model is built with."""
        return {name: k.default for name, k in self.knobs.items()}

    def knob(self, key: str) -> Knob:
        """The knob called `key` (or an older alias), or one line naming the closest knobs."""
        name = self._alias.get(key, key)
        if name in self.knobs:
            return self.knobs[name]
        if not self.knobs:
            raise ConfigError(f"model {self.model!r} has no architecture knobs; {key!r} cannot "
                              "be set (pick another model: `cnnlab models`)")
        hint = suggest(key, list(self.knobs)) or ""
        raise ConfigError(f"model {self.model!r} has no knob {key!r}{hint} (its knobs: "
                          f"{', '.join(self.knobs)}; `cnnlab models {self.model}` explains them)")

    def check(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Typed, validated kwargs from `values` (text or Python values; aliases renamed)."""
        out: dict[str, Any] = {}
        for key, value in values.items():
            knob = self.knob(str(key).replace("-", "_"))
            if knob.name in out:
                raise ConfigError(f"{self.model}: {knob.name!r} is given twice (as {key!r})")
            out[knob.name] = knob.check(value, self.model)
        return out

    def changed(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of validated `values` that differ from this model's defaults, in the
        order the knobs are declared."""
        given = self.check(values)
        return {k: given[k] for k, knob in self.knobs.items()
                if k in given and given[k] != knob.default}


def split_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """{"k": "v"} from ["k=v", ...]; a ConfigError for an item without '=' or a repeated key."""
    out: dict[str, str] = {}
    for item in pairs:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ConfigError(f"--model-arg {item!r} is not KEY=VALUE (e.g. kernel_size=3)")
        if key in out:
            raise ConfigError(f"--model-arg {key} is given twice ({out[key]!r} and {value!r}); "
                              "keep one")
        out[key] = value
    return out


# Knobs several families share (each model may register its own default).
STEM = Knob("stem", "choice", "imagenet", "first layers: the book's (for 96-224 px) or a 3x3/1 "
            "conv that keeps 28x28 inputs large enough", choices=("imagenet", "small"))
DROPOUT = Knob("dropout", "float", 0.5, "dropout probability in the classifier", low=0.0,
               high=1.0, below_high=True)
DENSE_WIDTH = Knob("dense", "int", 4096, "width of the two hidden dense layers of the "
                   "classifier", low=1)
