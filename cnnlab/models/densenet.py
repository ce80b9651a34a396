"""DenseNet (section 8.7): dense blocks joined by channel-halving, size-halving transitions."""

from __future__ import annotations

from typing import Literal

from torch import nn

from cnnlab.layers.blocks import DenseBlock, transition_block
from cnnlab.layers.blocks import stem as stem_layers
from cnnlab.models._base import ZooModel
from cnnlab.models._knobs import STEM, Knob
from cnnlab.models._registry import register_model

__all__ = ["DENSENET_KNOBS", "DenseNet"]

DENSENET_KNOBS = (
    Knob("growth_rate", "int", 32, "channels each conv of a dense block adds", low=1),
    Knob("arch", "ints", (4, 4, 4, 4), "convs in each dense block (a transition halves channels "
         "and H, W between blocks)", low=1),
    Knob("num_channels", "int", 64, "channels of the stem", low=1),
    STEM,
)


class DenseNet(ZooModel):
    """The book's DenseNet: stem, `arch` dense blocks of `growth_rate` channels per conv, each but
    the last followed by a transition halving channels and H, W; then BN, ReLU, global pooling.

    At 96x96: 64x24x24 -> 192 -> 96x12x12 -> 224 -> 112x6x6 -> 240 -> 120x3x3 -> 248 -> classes.
    The three average pools need inputs of at least 29x29 with the book's stem; stem="small"
    (3x3/1 conv, no max-pool) takes 28x28 as 28 -> 14 -> 7 -> 3.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | tuple[int, int] | None = None,
        num_channels: int = 64,
        growth_rate: int = 32,
        arch: tuple[int, ...] = (4, 4, 4, 4),
        stem: Literal["imagenet", "small"] = "imagenet",
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(stem_layers(in_channels, num_channels, stem))
        for i, num_convs in enumerate(arch):
            blk = DenseBlock(num_convs, num_channels, growth_rate)
            self.net.add_module(f"dense_blk{i + 1}", blk)
            num_channels = blk.out_channels
            if i != len(arch) - 1:
                self.net.add_module(
                    f"tran_blk{i + 1}", transition_block(num_channels, num_channels // 2)
                )
                num_channels //= 2
        self.net.add_module("last", nn.Sequential(
            nn.BatchNorm2d(num_channels), nn.ReLU(),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.Linear(num_channels, num_classes),
        ))
        self._finish(in_channels, input_size)



@register_model(input_size=96, knobs=DENSENET_KNOBS)
def densenet(**kwargs: object) -> DenseNet:
    """DenseNet as in section 8.7 (growth 32, four blocks of 4 convs), 96x96."""
    return DenseNet(**kwargs)


@register_model(input_size=28, knobs=DENSENET_KNOBS, defaults=dict(stem="small"))
def densenet_small(**kwargs: object) -> DenseNet:
    """DenseNet with a 3x3 stride-1 stem and no max-pool, for 28x28 inputs."""
    return DenseNet(**kwargs)
