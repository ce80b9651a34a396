"""ResNet (section 8.6) and ResNeXt: one class, with basic or (grouped) bottleneck blocks.

The network is the book's: a stem (`b1`), one stage per `arch` entry (num_residuals,
num_channels), the first block of each later stage halving H and W, then global average pooling
and a linear head. Blocks follow torchvision conventions (bias-free convolutions, batch norm on
the projection shortcut, stride on the 3x3 of a bottleneck) so the ImageNet configurations have
the published parameter counts: ResNet-18 11,689,512, ResNet-50 25,557,032, ResNeXt-50 32x4d
25,028,904. The book's convolutions carry a bias and its projection has no batch norm; the exact
book classes live in `cnnlab.d2l`.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.layers.blocks import Bottleneck, Residual
from cnnlab.layers.blocks import stem as stem_layers
from cnnlab.models._base import ZooModel
from cnnlab.models._knobs import STEM, Knob
from cnnlab.models._registry import register_model

__all__ = ["RESNET_KNOBS", "ResNet"]

_BASIC18 = ((2, 64), (2, 128), (2, 256), (2, 512))

RESNET_KNOBS = (
    Knob("arch", "blocks", _BASIC18, "the stages: NUM_BLOCKSxCHANNELS each, every stage after "
         "the first halving H and W (resnet34: 3x64,4x128,6x256,3x512)", low=1),
    Knob("block", "choice", "basic", "residual block: two 3x3 convs, or 1x1-3x3-1x1 "
         "(ResNet-50, ResNeXt)", choices=("basic", "bottleneck")),
    Knob("groups", "int", 1, "groups of the bottleneck's 3x3 conv (ResNeXt's cardinality)",
         low=1),
    Knob("bot_mul", "float", 0.25, "bottleneck's 3x3 width / block width", low=0.01, high=4.0),
    STEM,
    Knob("stem_channels", "int", 64, "channels of the stem", low=1),
)


class ResNet(ZooModel):
    """ResNet/ResNeXt from `arch` = ((num_residuals, num_channels), ...) per stage.

    block: "basic" (two 3x3 convs, ResNet-18/34) or "bottleneck" (1x1-3x3-1x1; num_channels is
    the block's output width, 4x its 3x3 width at bot_mul=0.25 as in ResNet-50). ResNeXt is the
    bottleneck with `groups` > 1 (cardinality, the number of groups of the 3x3 convolution) and a
    wider bot_mul: ResNeXt-50 32x4d has groups=32, bot_mul=0.5, i.e. 4 channels per group in the
    first stage. stem: "imagenet" (the book's b1: 7x7/2 conv, BN, ReLU, 3x3/2 max-pool; 96x96 ->
    24x24) or "small" (3x3/1 conv, BN, ReLU, no pooling, as the book's multi-GPU chapter uses for
    28x28 Fashion-MNIST).
    """

    def __init__(
        self,
        arch: tuple[tuple[int, int], ...] = _BASIC18,
        block: Literal["basic", "bottleneck"] = "basic",
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | tuple[int, int] | None = None,
        stem: Literal["imagenet", "small"] = "imagenet",
        stem_channels: int = 64,
        bot_mul: float = 0.25,
        groups: int = 1,
    ) -> None:
        super().__init__()
        if block not in ("basic", "bottleneck"):
            raise ConfigError(f"block must be 'basic' or 'bottleneck', got {block!r}")
        self.block_type, self.bot_mul, self.groups = block, bot_mul, groups
        self.net = nn.Sequential(stem_layers(in_channels, stem_channels, stem, bias=False))
        c_in = stem_channels
        for i, (num_residuals, num_channels) in enumerate(arch):
            self.net.add_module(
                f"b{i + 2}", self.block(num_residuals, c_in, num_channels, first_block=(i == 0))
            )
            c_in = num_channels
        self.net.add_module("last", nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(c_in, num_classes)
        ))
        self._finish(in_channels, input_size)


    def block(
        self, num_residuals: int, in_channels: int, num_channels: int, first_block: bool = False
    ) -> nn.Sequential:
        """One stage; its first block halves H and W unless it follows the stem."""
        blk: list[nn.Module] = []
        for i in range(num_residuals):
            strides = 2 if i == 0 and not first_block else 1
            # A projection whenever the shortcut's shape changes (stride or channels).
            use_1x1conv = i == 0 and (strides != 1 or in_channels != num_channels)
            c_in = in_channels if i == 0 else num_channels
            if self.block_type == "basic":
                blk.append(Residual(c_in, num_channels, use_1x1conv, strides))
            else:
                blk.append(Bottleneck(c_in, num_channels, self.bot_mul, self.groups,
                                      use_1x1conv, strides))
        return nn.Sequential(*blk)


_BOTTLENECK = {  # the number of bottleneck blocks per stage; widths are always 256..2048
    50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3),
}


def _bottleneck_arch(depth: int) -> tuple[tuple[int, int], ...]:
    return tuple(zip(_BOTTLENECK[depth], (256, 512, 1024, 2048), strict=True))


@register_model(input_size=96, knobs=RESNET_KNOBS)
def resnet18(**kwargs: object) -> ResNet:
    """ResNet-18 (the book's ResNet18), 96x96."""
    return ResNet(**kwargs)


@register_model(input_size=28, knobs=RESNET_KNOBS, defaults=dict(stem="small"))
def resnet18_small(**kwargs: object) -> ResNet:
    """ResNet-18 for small inputs: 3x3 stride-1 stem, no max-pool (book ch. 13.6), 28x28."""
    return ResNet(**kwargs)


@register_model(input_size=28, knobs=RESNET_KNOBS,
                defaults=dict(block="bottleneck", bot_mul=1.0, groups=32, stem="small"))
def resnext_small(**kwargs: object) -> ResNet:
    """ResNeXt for 28x28: ResNet-18 layout, bottleneck blocks with 32-group 3x3 convs."""
    return ResNet(**kwargs)


@register_model(input_size=96, knobs=RESNET_KNOBS,
                defaults=dict(arch=((3, 64), (4, 128), (6, 256), (3, 512))))
def resnet34(**kwargs: object) -> ResNet:
    """ResNet-34, 96x96."""
    return ResNet(**kwargs)


@register_model(input_size=96, knobs=RESNET_KNOBS,
                defaults=dict(arch=_bottleneck_arch(50), block="bottleneck"))
def resnet50(**kwargs: object) -> ResNet:
    """ResNet-50 (bottleneck blocks, v1.5: stride on the 3x3), 96x96."""
    return ResNet(**kwargs)


@register_model(input_size=96, knobs=RESNET_KNOBS,
                defaults=dict(arch=_bottleneck_arch(101), block="bottleneck"))
def resnet101(**kwargs: object) -> ResNet:
    """ResNet-101, 96x96."""
    return ResNet(**kwargs)


@register_model(input_size=96, knobs=RESNET_KNOBS,
                defaults=dict(arch=_bottleneck_arch(152), block="bottleneck"))
def resnet152(**kwargs: object) -> ResNet:
    """ResNet-152, 96x96."""
    return ResNet(**kwargs)


@register_model(input_size=96, knobs=RESNET_KNOBS,
                defaults=dict(arch=_bottleneck_arch(50), block="bottleneck", bot_mul=0.5,
                              groups=32))
def resnext50_32x4d(**kwargs: object) -> ResNet:
    """ResNeXt-50 32x4d: 32 groups, 4 channels per group in the first stage, 96x96."""
    return ResNet(**kwargs)


@register_model(input_size=96, knobs=RESNET_KNOBS,
                defaults=dict(arch=_bottleneck_arch(101), block="bottleneck", bot_mul=1.0,
                              groups=32))
def resnext101_32x8d(**kwargs: object) -> ResNet:
    """ResNeXt-101 32x8d: 32 groups, 8 channels per group in the first stage, 96x96."""
    return ResNet(**kwargs)
