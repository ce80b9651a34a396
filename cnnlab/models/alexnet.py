"""AlexNet (section 8.1), single-tower, for 224x224 inputs as the book trains it, and for 28x28."""

from __future__ import annotations

from typing import Literal

from torch import nn

from cnnlab.layers.blocks import check_stem, dropout_mlp
from cnnlab.models._base import ZooModel
from cnnlab.models._knobs import DENSE_WIDTH, DROPOUT, STEM
from cnnlab.models._registry import register_model

__all__ = ["AlexNet"]


class AlexNet(ZooModel):
    """The book's AlexNet: 5 convs (11x11/4, 5x5, 3x3 x3), 3 max-pools, 4096-4096 dense + dropout.

    At 224x224 the features end at 256x5x5 = 6400; smaller inputs need `input_size` (at least 65).
    stem="small" replaces the 11x11/4 convolution by a 3x3/1 one (same 96 channels, same 3x3/2
    max-pool after it), so 28x28 inputs run as 28 -> 13 -> 6 -> 2 and the rest is the book's.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | tuple[int, int] = 224,
        dropout: float = 0.5,
        stem: Literal["imagenet", "small"] = "imagenet",
        dense: int = 4096,
    ) -> None:
        super().__init__()
        conv1 = (nn.Conv2d(in_channels, 96, kernel_size=11, stride=4, padding=1)
                 if check_stem(stem) == "imagenet"
                 else nn.Conv2d(in_channels, 96, kernel_size=3, stride=1, padding=1))
        features = [
            conv1, nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(96, 256, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(256, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        ]
        self._build_flat(features,
                         lambda n: dropout_mlp(n, num_classes, hidden=dense, dropout=dropout),
                         in_channels, input_size)


_KNOBS = (DENSE_WIDTH, DROPOUT, STEM)


@register_model(input_size=224, knobs=_KNOBS)
def alexnet(**kwargs: object) -> AlexNet:
    """AlexNet as in section 8.1, 224x224."""
    return AlexNet(**kwargs)


@register_model(input_size=28, knobs=_KNOBS, defaults=dict(stem="small"))
def alexnet_small(**kwargs: object) -> AlexNet:
    """AlexNet with a 3x3 stride-1 first convolution, for 28x28 inputs."""
    kwargs.setdefault("input_size", 28)
    return AlexNet(**kwargs)
