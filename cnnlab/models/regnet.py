"""AnyNet and the book's RegNetX-32 (section 8.8): a stem, stages of ResNeXt blocks, a head."""

from __future__ import annotations

from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.layers.blocks import ResNeXtBlock
from cnnlab.models._base import ZooModel
from cnnlab.models._knobs import Knob
from cnnlab.models._registry import register_model

__all__ = ["REGNET_KNOBS", "AnyNet"]

REGNET_KNOBS = (
    Knob("depths", "ints", (4, 6), "ResNeXt blocks in each stage (the book's d_i)", low=1),
    Knob("widths", "ints", (32, 80), "channels of each stage (the book's c_i)", low=1),
    Knob("group_width", "int", 16, "channels per group of the 3x3 convolutions (g)", low=1),
    Knob("bot_mul", "float", 1.0, "bottleneck ratio: 3x3 width / block width (b)", low=0.01,
         high=4.0),
    Knob("stem_channels", "int", 32, "channels of the 3x3/2 stem", low=1),
)


class AnyNet(ZooModel):
    """The book's AnyNet design space.

    arch = ((depth, num_channels, group_width, bot_mul), ...) per stage. `group_width` is the
    book's `groups` argument: channels per group of the 3x3 convolution (see ResNeXtBlock). The
    stem is a 3x3/2 conv with BN and ReLU; every stage starts with a stride-2 block.
    """

    def __init__(
        self,
        arch: tuple[tuple[int, int, int, float], ...],
        stem_channels: int = 32,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(self.stem(in_channels, stem_channels))
        c_in = stem_channels
        for i, s in enumerate(arch):
            self.net.add_module(f"stage{i + 1}", self.stage(c_in, *s))
            c_in = s[1]
        self.net.add_module("head", nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(c_in, num_classes)
        ))
        self._finish(in_channels, input_size)

    @staticmethod
    def stem(in_channels: int, num_channels: int) -> nn.Sequential:
        """3x3 stride-2 convolution, batch norm, ReLU."""
        return nn.Sequential(
            nn.Conv2d(in_channels, num_channels, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(num_channels), nn.ReLU(),
        )

    @staticmethod
    def stage(
        in_channels: int, depth: int, num_channels: int, group_width: int, bot_mul: float
    ) -> nn.Sequential:
        """`depth` ResNeXt blocks; the first halves H and W and projects the shortcut."""
        blk = [ResNeXtBlock(in_channels, num_channels, group_width, bot_mul,
                            use_1x1conv=True, strides=2)]
        blk += [ResNeXtBlock(num_channels, num_channels, group_width, bot_mul)
                for _ in range(depth - 1)]
        return nn.Sequential(*blk)


@register_model(input_size=96, knobs=REGNET_KNOBS)
def regnetx32(*, depths: tuple[int, ...], widths: tuple[int, ...], group_width: int,
              bot_mul: float, **kwargs: object) -> AnyNet:
    """The book's RegNetX-32: stem 32, depths (4, 6), widths (32, 80), group width 16, 96x96."""
    if len(depths) != len(widths):
        raise ConfigError(f"regnetx32: depths has {len(depths)} stages and widths "
                          f"{len(widths)}; give one depth per width")
    arch = tuple((d, c, group_width, bot_mul) for d, c in zip(depths, widths, strict=True))
    return AnyNet(arch=arch, **kwargs)
