"""The model registry: a decorator and a dict, nothing more (timm's `_registry.py` pattern)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import TypeVar

from torch import nn

from cnnlab.errors import ConfigError, suggest

__all__ = ["create_model", "default_input_size", "list_models", "register_model"]

ModelFn = TypeVar("ModelFn", bound=Callable[..., nn.Module])

# name -> (constructor, the square input size the book trains that network at)
_MODELS: dict[str, tuple[Callable[..., nn.Module], int]] = {}


def register_model(input_size: int) -> Callable[[ModelFn], ModelFn]:
    """Register a one-line constructor under its function name, with the book's input size."""

    def decorator(fn: ModelFn) -> ModelFn:
        if fn.__name__ in _MODELS:
            raise ValueError(f"model {fn.__name__!r} is registered twice")
        _MODELS[fn.__name__] = (fn, input_size)
        return fn

    return decorator


def _lookup(name: str) -> tuple[Callable[..., nn.Module], int]:
    """Registry entry for `name`, or a ConfigError naming the closest registered names."""
    try:
        return _MODELS[name]
    except KeyError:
        hint = suggest(name, _MODELS) or "; see list_models()"
        raise ConfigError(f"unknown model {name!r}{hint}") from None


def create_model(
    name: str, num_classes: int = 10, in_channels: int = 1, **kwargs: object
) -> nn.Module:
    """Build the registered model `name` (extra kwargs go to its class, e.g. input_size=...)."""
    fn, _ = _lookup(name)
    if num_classes < 1 or in_channels < 1:
        raise ConfigError(
            f"num_classes={num_classes} and in_channels={in_channels} must both be at least 1"
        )
    return fn(num_classes=num_classes, in_channels=in_channels, **kwargs)


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by an fnmatch pattern such as 'resnet*'."""
    names = sorted(_MODELS)
    return names if pattern is None else [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def default_input_size(name: str) -> tuple[int, int, int]:
    """(C, H, W) the book feeds `name`: 28 for LeNets, 224 for AlexNet/VGG/NiN, 96 for the rest."""
    _, size = _lookup(name)
    return (1, size, size)
