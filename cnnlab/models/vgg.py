"""VGG (section 8.2): networks as a tuple of (num_convs, out_channels) blocks."""

from __future__ import annotations

from typing import Literal

from cnnlab.layers.blocks import check_stem, dropout_mlp, vgg_block
from cnnlab.models._base import ZooModel
from cnnlab.models._knobs import DENSE_WIDTH, DROPOUT, STEM, Knob
from cnnlab.models._registry import register_model

__all__ = ["VGG", "VGG_ARCHS", "VGG_KNOBS"]

# Exercise 8.2.3 / Simonyan & Zisserman table 1 (configurations A, B, D, E).
VGG_ARCHS: dict[str, tuple[tuple[int, int], ...]] = {
    "vgg11": ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512)),
    "vgg13": ((2, 64), (2, 128), (2, 256), (2, 512), (2, 512)),
    "vgg16": ((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)),
    "vgg19": ((2, 64), (2, 128), (4, 256), (4, 512), (4, 512)),
    # The book's VGG-11 with channels divided by 4, the one it trains on Fashion-MNIST.
    "vgg11_small": ((1, 16), (1, 32), (2, 64), (2, 128), (2, 128)),
}


class VGG(ZooModel):
    """The book's VGG: vgg_blocks from `arch`, then 4096-4096 dense with dropout.

    Each block halves H and W, so five blocks need inputs of at least 32x32; at 224 the features
    end at 7x7, as in the paper (VGG-16 then has 138,357,544 parameters with 3 channels and 1000
    classes). stem="small" drops the first block's max-pool, so four halvings take 28x28 inputs
    to 1x1 (28 -> 28 -> 14 -> 7 -> 3 -> 1); every convolution stays the book's.
    """

    def __init__(
        self,
        arch: tuple[tuple[int, int], ...] = VGG_ARCHS["vgg11"],
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | tuple[int, int] = 224,
        dropout: float = 0.5,
        stem: Literal["imagenet", "small"] = "imagenet",
        dense: int = 4096,
    ) -> None:
        super().__init__()
        small = check_stem(stem) == "small"
        self.arch = tuple((int(n), int(c)) for n, c in arch)
        conv_blks = []
        c_in = in_channels
        for num_convs, out_channels in self.arch:
            blk = vgg_block(num_convs, c_in, out_channels)
            if small and not conv_blks:
                blk = blk[:-1]  # the first block keeps the resolution: no max-pool
            conv_blks.append(blk)
            c_in = out_channels
        self._build_flat(conv_blks,
                         lambda n: dropout_mlp(n, num_classes, hidden=dense, dropout=dropout),
                         in_channels, input_size)


VGG_KNOBS = (
    Knob("arch", "blocks", VGG_ARCHS["vgg11"], "the conv blocks: NUM_CONVSxCHANNELS each, every "
         "block halving H and W (vgg16: 2x64,2x128,3x256,3x512,3x512)", low=1),
    DENSE_WIDTH, DROPOUT, STEM,
)


@register_model(input_size=224, knobs=VGG_KNOBS)
def vgg(**kwargs: object) -> VGG:
    """VGG with any `arch` of (num_convs, out_channels) blocks (default VGG-11), 224x224."""
    return VGG(**kwargs)


@register_model(input_size=224, knobs=VGG_KNOBS, defaults=dict(arch=VGG_ARCHS["vgg11"]))
def vgg11(**kwargs: object) -> VGG:
    """VGG-11 (configuration A), 224x224."""
    return VGG(**kwargs)


@register_model(input_size=224, knobs=VGG_KNOBS, defaults=dict(arch=VGG_ARCHS["vgg13"]))
def vgg13(**kwargs: object) -> VGG:
    """VGG-13 (configuration B), 224x224."""
    return VGG(**kwargs)


@register_model(input_size=224, knobs=VGG_KNOBS, defaults=dict(arch=VGG_ARCHS["vgg16"]))
def vgg16(**kwargs: object) -> VGG:
    """VGG-16 (configuration D), 224x224."""
    return VGG(**kwargs)


@register_model(input_size=224, knobs=VGG_KNOBS, defaults=dict(arch=VGG_ARCHS["vgg19"]))
def vgg19(**kwargs: object) -> VGG:
    """VGG-19 (configuration E), 224x224."""
    return VGG(**kwargs)


@register_model(input_size=224, knobs=VGG_KNOBS, defaults=dict(arch=VGG_ARCHS["vgg11_small"]))
def vgg11_small(**kwargs: object) -> VGG:
    """The book's narrow VGG-11 (channels / 4) it trains on Fashion-MNIST, 224x224."""
    return VGG(**kwargs)


@register_model(input_size=28, knobs=VGG_KNOBS,
                defaults=dict(arch=VGG_ARCHS["vgg11_small"], stem="small"))
def vgg11_small28(**kwargs: object) -> VGG:
    """The book's narrow VGG-11 (channels / 4) for 28x28: no max-pool in the first block."""
    kwargs.setdefault("input_size", 28)
    return VGG(**kwargs)
