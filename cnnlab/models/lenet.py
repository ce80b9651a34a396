"""LeNet-5 (section 7.6), its exercise variants (7.6.1, 7.6.2), and batch-normalized LeNet (8.5).

One class with the knobs exercise 7.6.2 names: the convolution window (`kernel_size`), the
number of output channels (`channels`, one conv stage per entry), the activation, the pooling,
the fully connected layers (`dense`) and batch norm. `cnnlab train lenet --model-arg
channels=32,64,128 --model-arg kernel_size=3 --model-arg activation=relu --model-arg pool=max
--model-arg dense=256,128` is lenet_wide's network.
"""

from __future__ import annotations

from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.layers.blocks import ACTIVATIONS, activation_class
from cnnlab.models._base import ZooModel
from cnnlab.models._knobs import Knob
from cnnlab.models._registry import register_model

__all__ = ["LENET_KNOBS", "BNLeNet", "LeNet"]

_POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}

LENET_KNOBS = (
    Knob("channels", "ints", (6, 16), "output channels, one entry per conv stage",
         low=1),
    Knob("kernel_size", "int", 5, "convolution window of every conv", low=1, high=15),
    Knob("padding", "ints", None, "padding of each conv (one value: all); auto: 2,0 for the "
         "book's two 5x5 convs, else kernel_size // 2", low=0, auto=True),
    Knob("activation", "choice", "sigmoid", "activation after every conv and hidden dense layer",
         choices=tuple(ACTIVATIONS)),
    Knob("pool", "choice", "avg", "the 2x2 stride-2 pooling after every conv",
         choices=tuple(_POOLS)),
    Knob("dense", "ints", (120, 84), "widths of the hidden dense layers (none: one linear "
         "layer)", low=1, min_len=0, aliases=("hidden",)),
    Knob("batch_norm", "bool", False, "batch norm after every conv and hidden dense layer "
         "(section 8.5)"),
)


def _paddings(padding: int | tuple[int, ...] | None, kernel_size: int,
              channels: tuple[int, ...]) -> tuple[int, ...]:
    """One padding per conv: given (one value broadcast), or `auto` (see LENET_KNOBS)."""
    if padding is None:
        if kernel_size == 5 and len(channels) == 2:
            return (2, 0)
        return (kernel_size // 2,) * len(channels)
    pads = (padding,) if isinstance(padding, int) else tuple(padding)
    if len(pads) == 1:
        return pads * len(channels)
    if len(pads) != len(channels):
        raise ConfigError(f"padding={','.join(map(str, pads))} has {len(pads)} entries for "
                          f"{len(channels)} conv stages (channels); give one value or one per "
                          "stage")
    return pads


class LeNet(ZooModel):
    """LeNet-5 (section 7.6) and its exercise variants: conv stages, then dense layers.

    Each stage is a conv, [batch norm,] the activation and a 2x2/2 pool; the defaults are the
    book's network (two 5x5 convs of 6 and 16 channels, the first padded by 2, sigmoid, average
    pooling, 120-84 dense: 28x28 -> 6x28x28 -> 16x5x5 -> 120-84-10). ``padding`` is one int for
    every stage or one per stage (None: see LENET_KNOBS). ``hidden`` is the old name of ``dense``.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | tuple[int, int] = 28,
        channels: tuple[int, ...] = (6, 16),
        kernel_size: int = 5,
        padding: int | tuple[int, ...] | None = None,
        dense: tuple[int, ...] = (120, 84),
        activation: str = "sigmoid",
        pool: str = "avg",
        batch_norm: bool = False,
        hidden: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        dense = tuple(dense if hidden is None else hidden)
        if pool not in _POOLS:
            raise ConfigError(f"pool {pool!r} is not one of {', '.join(_POOLS)}")
        act = activation_class(activation)
        pads = _paddings(padding, kernel_size, tuple(channels))
        features: list[nn.Module] = []
        for c_in, c_out, pad in zip((in_channels, *channels[:-1]), channels, pads, strict=True):
            features += [nn.Conv2d(c_in, c_out, kernel_size=kernel_size, padding=pad),
                         *([nn.BatchNorm2d(c_out)] if batch_norm else []), act(),
                         _POOLS[pool](kernel_size=2, stride=2)]

        def head(flat: int) -> list[nn.Module]:
            layers: list[nn.Module] = []
            for h_in, h_out in zip((flat, *dense), dense, strict=False):  # one more in
                layers += [nn.Linear(h_in, h_out),
                           *([nn.BatchNorm1d(h_out)] if batch_norm else []), act()]
            return [*layers, nn.Linear(dense[-1] if dense else flat, num_classes)]

        self._build_flat(features, head, in_channels, input_size)


class BNLeNet(LeNet):
    """Section 8.5: LeNet with batch norm after every conv and hidden linear layer (no padding)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**{"padding": 0, "batch_norm": True, **kwargs})  # type: ignore[arg-type]


# Exercise 7.6.2: deeper and wider, 3x3 convs of 32-64-128 channels (28 -> 14 -> 7 -> 3), then
# 256-128 dense.
_WIDE = dict(channels=(32, 64, 128), kernel_size=3, padding=1, dense=(256, 128),
             activation="relu", pool="max")


@register_model(input_size=28, knobs=LENET_KNOBS)
def lenet(**kwargs: object) -> LeNet:
    """The book's LeNet-5 (sigmoid, average pooling), 28x28."""
    return LeNet(**kwargs)


@register_model(input_size=28, knobs=LENET_KNOBS, defaults=dict(activation="relu", pool="max"))
def lenet_modern(**kwargs: object) -> LeNet:
    """LeNet with ReLU and max-pooling (exercise 7.6.1), 28x28."""
    return LeNet(**kwargs)


@register_model(input_size=28, knobs=LENET_KNOBS, defaults=_WIDE)
def lenet_wide(**kwargs: object) -> LeNet:
    """Deeper, wider LeNet: 32-64-128 3x3 convs, 256-128 dense (exercise 7.6.2), 28x28."""
    return LeNet(**kwargs)


@register_model(input_size=28, knobs=LENET_KNOBS, defaults=dict(padding=0, batch_norm=True))
def bn_lenet(**kwargs: object) -> BNLeNet:
    """LeNet with batch normalization (section 8.5), 28x28."""
    return BNLeNet(**kwargs)
