"""LeNet-5 (section 7.6), its modernized exercise variants, and batch-normalized LeNet (8.5)."""

from __future__ import annotations

from torch import nn

from cnnlab.models._base import ZooModel, flat_features
from cnnlab.models._registry import register_model

__all__ = ["BNLeNet", "LeNet", "ModernLeNet", "WideLeNet"]


class LeNet(ZooModel):
    """The book's LeNet-5: sigmoid and average pooling; 28x28 -> 6x28x28 -> 16x5x5 -> 120-84-10."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, input_size: int | tuple[int, int] = 28
    ) -> None:
        super().__init__()
        features = [
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
        ]
        flat = flat_features("LeNet", nn.Sequential(*features), in_channels, input_size)
        self.net = nn.Sequential(
            *features, nn.Flatten(),
            nn.Linear(flat, 120), nn.Sigmoid(),
            nn.Linear(120, 84), nn.Sigmoid(),
            nn.Linear(84, num_classes),
        )
        self._finish(in_channels, input_size, nn.Sequential(*features))


class ModernLeNet(ZooModel):
    """Exercise 7.6.1: LeNet with ReLU instead of sigmoid and max- instead of average pooling."""

    def __init__(
        self, num_classes: int = 10, in_channels: int = 1, input_size: int | tuple[int, int] = 28
    ) -> None:
        super().__init__()
        features = [
            nn.Conv2d(in_channels, 6, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(6, 16, kernel_size=5), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        ]
        flat = flat_features("ModernLeNet", nn.Sequential(*features), in_channels, input_size)
        self.net = nn.Sequential(
            *features, nn.Flatten(),
            nn.Linear(flat, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes),
        )
        self._finish(in_channels, input_size, nn.Sequential(*features))


class WideLeNet(ZooModel):
    """Exercise 7.6.2: deeper and wider, 3x3 convs with 32-64-128 channels, then 256-128 dense.

    Each stage is conv 3x3 (padding 1), ReLU, 2x2 max-pool: 28 -> 14 -> 7 -> 3 at 28x28.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | tuple[int, int] = 28,
        channels: tuple[int, ...] = (32, 64, 128),
        hidden: tuple[int, ...] = (256, 128),
    ) -> None:
        super().__init__()
        features: list[nn.Module] = []
        for c_in, c_out in zip((in_channels, *channels[:-1]), channels, strict=True):
            features += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(kernel_size=2, stride=2)]
        flat = flat_features("WideLeNet", nn.Sequential(*features), in_channels, input_size)
        head: list[nn.Module] = []
        for h_in, h_out in zip((flat, *hidden[:-1]), hidden, strict=True):
            head += [nn.Linear(h_in, h_out), nn.ReLU()]
        self.net = nn.Sequential(
            *features, nn.Flatten(), *head, nn.Linear(hidden[-1] if hidden else flat, num_classes)
        )
        self._finish(in_channels, input_size, nn.Sequential(*features))


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
        flat = flat_features("BNLeNet", nn.Sequential(*features), in_channels, input_size)
        self.net = nn.Sequential(
            *features, nn.Flatten(),
            nn.Linear(flat, 120), nn.BatchNorm1d(120), nn.Sigmoid(),
            nn.Linear(120, 84), nn.BatchNorm1d(84), nn.Sigmoid(),
            nn.Linear(84, num_classes),
        )
        self._finish(in_channels, input_size, nn.Sequential(*features))


@register_model(input_size=28)
def lenet(**kwargs: object) -> LeNet:
    """The book's LeNet-5 (sigmoid, average pooling), 28x28."""
    return LeNet(**kwargs)


@register_model(input_size=28)
def lenet_modern(**kwargs: object) -> ModernLeNet:
    """LeNet with ReLU and max-pooling (exercise 7.6.1), 28x28."""
    return ModernLeNet(**kwargs)


@register_model(input_size=28)
def lenet_wide(**kwargs: object) -> WideLeNet:
    """Deeper, wider LeNet: 32-64-128 3x3 convs, 256-128 dense (exercise 7.6.2), 28x28."""
    return WideLeNet(**kwargs)


@register_model(input_size=28)
def bn_lenet(**kwargs: object) -> BNLeNet:
    """LeNet with batch normalization (section 8.5), 28x28."""
    return BNLeNet(**kwargs)
