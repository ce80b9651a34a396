"""LeNet-5 (section 7.6), its modernized exercise variants, and batch-normalized LeNet (8.5)."""

from __future__ import annotations

from torch import nn

from cnnlab.models._base import ZooModel
from cnnlab.models._registry import register_model

__all__ = ["BNLeNet", "LeNet"]


class LeNet(ZooModel):
    """LeNet-5 (section 7.6) and its exercise variants: conv stages, then dense layers.

    Each stage is a conv, the activation and a 2x2/2 pool; the defaults are the book's network
    (two 5x5 convs of 6 and 16 channels, the first padded by 2, sigmoid, average pooling, 120-84
    dense: 28x28 -> 6x28x28 -> 16x5x5 -> 120-84-10). ``padding`` is one int for every stage or
    one per stage.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | tuple[int, int] = 28,
        channels: tuple[int, ...] = (6, 16),
        kernel_size: int = 5,
        padding: int | tuple[int, ...] = (2, 0),
        hidden: tuple[int, ...] = (120, 84),
        activation: str = "sigmoid",
        pool: str = "avg",
    ) -> None:
        super().__init__()
        act = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}[activation]
        pool_cls = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}[pool]
        pads = (padding,) * len(channels) if isinstance(padding, int) else tuple(padding)
        features: list[nn.Module] = []
        for c_in, c_out, pad in zip((in_channels, *channels[:-1]), channels, pads, strict=True):
            features += [nn.Conv2d(c_in, c_out, kernel_size=kernel_size, padding=pad), act(),
                         pool_cls(kernel_size=2, stride=2)]

        def head(flat: int) -> list[nn.Module]:
            layers: list[nn.Module] = []
            for h_in, h_out in zip((flat, *hidden[:-1]), hidden, strict=True):
                layers += [nn.Linear(h_in, h_out), act()]
            return [*layers, nn.Linear(hidden[-1] if hidden else flat, num_classes)]

        self._build_flat(features, head, in_channels, input_size)


class BNLeNet(ZooModel):
    """Section 8.5: LeNet with batch norm after every conv and hidden linear layer (no padding)."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, input_size: int | tuple[int, int] = 28
    ) -> None:
        super().__init__()
        features = [
            nn.Conv2d(in_channels, 6, kernel_size=5), nn.BatchNorm2d(6), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), nn.BatchNorm2d(16), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
        ]
        self._build_flat(features, lambda flat: [
            nn.Linear(flat, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
            nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(),
            nn.Linear(84, num_classes),
        ], in_channels, input_size)


# Exercise 7.6.2: deeper and wider, 3x3 convs of 32-64-128 channels (28 -> 14 -> 7 -> 3), then
# 256-128 dense.
_WIDE = dict(channels=(32, 64, 128), kernel_size=3, padding=1, hidden=(256, 128),
             activation="relu", pool="max")


@register_model(input_size=28)
def lenet(**kwargs: object) -> LeNet:
    """The book's LeNet-5 (sigmoid, average pooling), 28x28."""
    return LeNet(**kwargs)


@register_model(input_size=28)
def lenet_modern(**kwargs: object) -> LeNet:
    """LeNet with ReLU and max-pooling (exercise 7.6.1), 28x28."""
    return LeNet(**{"activation": "relu", "pool": "max", **kwargs})


@register_model(input_size=28)
def lenet_wide(**kwargs: object) -> LeNet:
    """Deeper, wider LeNet: 32-64-128 3x3 convs, 256-128 dense (exercise 7.6.2), 28x28."""
    return LeNet(**{**_WIDE, **kwargs})


@register_model(input_size=28)
def bn_lenet(**kwargs: object) -> BNLeNet:
    """LeNet with batch normalization (section 8.5), 28x28."""
    return BNLeNet(**kwargs)
