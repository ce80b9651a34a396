"""Network in Network (section 8.3): NiN blocks and global average pooling, no dense layers."""

from __future__ import annotations

from typing import Literal

from torch import nn

from cnnlab.layers.blocks import check_stem, nin_block
from cnnlab.models._base import ZooModel
from cnnlab.models._knobs import DROPOUT, STEM
from cnnlab.models._registry import register_model

__all__ = ["NiN"]


class NiN(ZooModel):
    """The book's NiN: three NiN blocks with max-pools, dropout, a NiN block with one channel per
    class, then global average pooling; 224 -> 54 -> 26 -> 12 -> 5 -> 1. Needs inputs >= 67.
    stem="small" gives the first NiN block a 3x3/1 convolution instead of 11x11/4 (the max-pool
    after it stays), so 28x28 inputs run as 28 -> 13 -> 6 -> 2 -> 1.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | tuple[int, int] | None = None,
        dropout: float = 0.5,
        stem: Literal["imagenet", "small"] = "imagenet",
    ) -> None:
        super().__init__()
        first = (dict(kernel_size=11, strides=4, padding=0) if check_stem(stem) == "imagenet"
                 else dict(kernel_size=3, strides=1, padding=1))
        self.net = nn.Sequential(
            nin_block(in_channels, 96, **first),
            nn.MaxPool2d(3, stride=2),
            nin_block(96, 256, kernel_size=5, strides=1, padding=2),
            nn.MaxPool2d(3, stride=2),
            nin_block(256, 384, kernel_size=3, strides=1, padding=1),
            nn.MaxPool2d(3, stride=2),
            nn.Dropout(dropout),
            nin_block(384, num_classes, kernel_size=3, strides=1, padding=1),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten(),
        )
        self._finish(in_channels, input_size)


@register_model(input_size=224, knobs=(DROPOUT, STEM))
def nin(**kwargs: object) -> NiN:
    """Network in Network as in section 8.3, 224x224."""
    return NiN(**kwargs)


@register_model(input_size=28, knobs=(DROPOUT, STEM), defaults=dict(stem="small"))
def nin_small(**kwargs: object) -> NiN:
    """NiN whose first block has a 3x3 stride-1 convolution, for 28x28 inputs."""
    return NiN(**kwargs)
