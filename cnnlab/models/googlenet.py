"""GoogLeNet (section 8.4): five stages b1..b5, the last three built from Inception blocks."""

from __future__ import annotations

from typing import Literal

from torch import nn

from cnnlab.layers.blocks import Inception
from cnnlab.layers.blocks import stem as stem_layers
from cnnlab.models._base import ZooModel
from cnnlab.models._knobs import STEM
from cnnlab.models._registry import register_model

__all__ = ["GoogLeNet"]


class GoogLeNet(ZooModel):
    """The book's GoogLeNet: 96x96 -> b1 64x24x24 -> b2 192x12x12 -> b3 480x6x6 -> b4 832x3x3
    -> b5 1024 -> classes. stem="small" replaces b1's 7x7/2 conv and max-pool by a 3x3/1 conv so
    28x28 inputs keep enough resolution (28 -> 14 -> 7 -> 4).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | tuple[int, int] | None = None,
        stem: Literal["imagenet", "small"] = "imagenet",
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(
            stem_layers(in_channels, 64, stem, norm=False),  # the book's b1
            self.b2(), self.b3(), self.b4(), self.b5(), nn.Linear(1024, num_classes),
        )
        self._finish(in_channels, input_size)

    @staticmethod
    def b2() -> nn.Sequential:
        """1x1 then 3x3 convolution (192 channels) and a 3x3/2 max-pool."""
        return nn.Sequential(
            nn.Conv2d(64, 64, kernel_size=1), nn.ReLU(),
            nn.Conv2d(64, 192, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )

    @staticmethod
    def b3() -> nn.Sequential:
        """Two Inception blocks (256, 480 channels) and a max-pool."""
        return nn.Sequential(
            Inception(192, 64, (96, 128), (16, 32), 32),
            Inception(256, 128, (128, 192), (32, 96), 64),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )

    @staticmethod
    def b4() -> nn.Sequential:
        """Five Inception blocks (512, 512, 512, 528, 832 channels) and a max-pool."""
        return nn.Sequential(
            Inception(480, 192, (96, 208), (16, 48), 64),
            Inception(512, 160, (112, 224), (24, 64), 64),
            Inception(512, 128, (128, 256), (24, 64), 64),
            Inception(512, 112, (144, 288), (32, 64), 64),
            Inception(528, 256, (160, 320), (32, 128), 128),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )

    @staticmethod
    def b5() -> nn.Sequential:
        """Two Inception blocks (832, 1024 channels), global average pooling, flatten."""
        return nn.Sequential(
            Inception(832, 256, (160, 320), (32, 128), 128),
            Inception(832, 384, (192, 384), (48, 128), 128),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
        )


@register_model(input_size=96, knobs=(STEM,))
def googlenet(**kwargs: object) -> GoogLeNet:
    """GoogLeNet as in section 8.4, 96x96."""
    return GoogLeNet(**kwargs)


@register_model(input_size=28, knobs=(STEM,), defaults=dict(stem="small"))
def googlenet_small(**kwargs: object) -> GoogLeNet:
    """GoogLeNet with a 3x3 stride-1 stem and no first max-pool, for 28x28 inputs."""
    return GoogLeNet(**kwargs)
