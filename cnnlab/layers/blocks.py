"""Chapter-8 network blocks (VGG, NiN, Inception, Residual, ResNeXt, Dense) with explicit channels.

Each block follows the book's code, with `in_channels` added in front because the zoo uses no Lazy
layers. Blocks that change the channel count expose `out_channels` so networks can chain them.

Residual blocks follow torchvision rather than the book in two details, so that the zoo's ResNets
have the published parameter counts (ResNet-18 11,689,512; ResNet-50 25,557,032): convolutions
before batch norm have no bias (batch norm's shift makes it redundant), and the 1x1 projection on
the shortcut is followed by batch norm. `cnnlab.d2l` keeps the book's exact classes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from cnnlab.errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "Bottleneck",
    "DenseBlock",
    "Inception",
    "ResNeXtBlock",
    "Residual",
    "activation_class",
    "check_stem",
    "dense_conv_block",
    "dropout_mlp",
    "nin_block",
    "stem",
    "transition_block",
    "vgg_block",
]


# The activations the exercises try (7.6.2: "adjust ... the activation function"), by name.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU, "gelu": nn.GELU, "silu": nn.SiLU,
}


def activation_class(name: str) -> type[nn.Module]:
    """The activation layer class called `name` (ACTIVATIONS); a ConfigError naming the choices
    otherwise."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation {name!r} is not one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def check_stem(kind: str) -> str:
    """`kind` when it names a stem ("imagenet": the book's, for 96-224 px; "small": for 28x28)."""
    if kind not in ("imagenet", "small"):
        raise ConfigError(f"stem must be 'imagenet' or 'small', got {kind!r}")
    return kind


def stem(in_channels: int, out_channels: int, kind: str = "imagenet", *, norm: bool = True,
         bias: bool = True) -> nn.Sequential:
    """The first layers of GoogLeNet, ResNet and DenseNet (the book's `b1`).

    kind="imagenet": 7x7/2 conv, [BN], ReLU, 3x3/2 max-pool (224 -> 56); kind="small": 3x3/1
    conv, [BN], ReLU, for 28x28 inputs (book ch. 13.6). ``norm`` adds the batch norm, ``bias``
    the conv's bias (ResNet has none: the batch norm's shift makes it redundant).
    """
    big = check_stem(kind) == "imagenet"
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size=7 if big else 3,
                                         stride=2 if big else 1, padding=3 if big else 1,
                                         bias=bias)]
    if norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU())
    if big:
        layers.append(nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    return nn.Sequential(*layers)


def dropout_mlp(in_features: int, num_classes: int, hidden: int = 4096,
                dropout: float = 0.5) -> list[nn.Module]:
    """AlexNet's and VGG's classifier: two `hidden`-wide ReLU layers with dropout, then the
    output layer; a list, so a network's Sequential keeps flat indices (and state-dict keys)."""
    return [nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes)]


def vgg_block(num_convs: int, in_channels: int, out_channels: int) -> nn.Sequential:
    """`num_convs` 3x3 convolutions (padding 1) with ReLU, then a 2x2 max-pool halving H and W."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def nin_block(
    in_channels: int, out_channels: int, kernel_size: int, strides: int, padding: int
) -> nn.Sequential:
    """NiN block: one spatial convolution then two 1x1 convolutions (a per-pixel MLP), all ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
    )


class Inception(nn.Module):
    """GoogLeNet's Inception block: four parallel paths concatenated on channels.

    c1: 1x1 conv; c2 = (1x1 reduce, 3x3); c3 = (1x1 reduce, 5x5); c4: 1x1 conv after a 3x3
    max-pool. Spatial size is kept; out_channels = c1 + c2[1] + c3[1] + c4.
    """

    def __init__(
        self, in_channels: int, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int
    ) -> None:
        super().__init__()
        self.b1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.b2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.b2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.b3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.b3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.b4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.b4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)
        self.out_channels = c1 + c2[1] + c3[1] + c4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Concatenation of the four paths on the channel axis."""
        b1 = F.relu(self.b1_1(x))
        b2 = F.relu(self.b2_2(F.relu(self.b2_1(x))))
        b3 = F.relu(self.b3_2(F.relu(self.b3_1(x))))
        b4 = F.relu(self.b4_2(self.b4_1(x)))
        return torch.cat((b1, b2, b3, b4), dim=1)


def _projection(in_channels: int, out_channels: int, strides: int) -> nn.Sequential:
    """Shortcut that matches shapes: 1x1 convolution with stride, then batch norm (torchvision)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=strides, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class Residual(nn.Module):
    """The ResNet basic block: 3x3 conv (with stride), BN, ReLU, 3x3 conv, BN, plus the input.

    `use_1x1conv` adds the 1x1 projection the shortcut needs when channels or size change.
    Deviations from the book (see the module docstring): bias-free convs, BN on the projection.
    """

    def __init__(
        self, in_channels: int, num_channels: int, use_1x1conv: bool = False, strides: int = 1
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, num_channels, kernel_size=3, padding=1, stride=strides, bias=False
        )
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)
        self.conv3 = _projection(in_channels, num_channels, strides) if use_1x1conv else None
        self.out_channels = num_channels

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """relu(F(X) + shortcut(X))."""
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3 is not None:
            X = self.conv3(X)
        return F.relu(Y + X)


class Bottleneck(nn.Module):
    """The bottleneck block of ResNet-50 and ResNeXt: 1x1 reduce, 3x3 (grouped), 1x1 expand.

    bot_channels = round(num_channels * bot_mul) channels run through the 3x3 convolution, which
    carries the stride (ResNet v1.5, as torchvision) and is split into `groups` groups (the
    cardinality, torch's meaning of `groups`). ResNet-50 is bot_mul=0.25, groups=1; ResNeXt-50
    32x4d is bot_mul=0.5, groups=32.
    """

    def __init__(
        self,
        in_channels: int,
        num_channels: int,
        bot_mul: float = 0.25,
        groups: int = 1,
        use_1x1conv: bool = False,
        strides: int = 1,
    ) -> None:
        super().__init__()
        bot_channels = int(round(num_channels * bot_mul))
        if bot_channels % groups:
            raise ConfigError(
                f"{bot_channels} bottleneck channels do not split into {groups} groups"
            )
        self.conv1 = nn.Conv2d(in_channels, bot_channels, kernel_size=1, bias=False)
        self.conv2 = nn.Conv2d(
            bot_channels, bot_channels, kernel_size=3, stride=strides, padding=1,
            groups=groups, bias=False,
        )
        self.conv3 = nn.Conv2d(bot_channels, num_channels, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(bot_channels)
        self.bn2 = nn.BatchNorm2d(bot_channels)
        self.bn3 = nn.BatchNorm2d(num_channels)
        self.conv4 = _projection(in_channels, num_channels, strides) if use_1x1conv else None
        self.out_channels = num_channels

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """relu(F(X) + shortcut(X)), as the book's ResNeXtBlock."""
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = F.relu(self.bn2(self.conv2(Y)))
        Y = self.bn3(self.conv3(Y))
        if self.conv4 is not None:
            X = self.conv4(X)
        return F.relu(Y + X)


class ResNeXtBlock(Bottleneck):
    """The book's ResNeXtBlock (section 8.6), with its `groups` renamed `group_width`.

    In the book, `ResNeXtBlock(num_channels, groups, bot_mul)` passes
    `groups=bot_channels // groups` to the 3x3 convolution: the book's `groups` is the number of
    channels *per group*, not the number of groups. Here that argument is called `group_width`;
    the block has bot_channels // group_width groups. Same computation as Bottleneck.
    """

    def __init__(
        self,
        in_channels: int,
        num_channels: int,
        group_width: int,
        bot_mul: float,
        use_1x1conv: bool = False,
        strides: int = 1,
    ) -> None:
        bot_channels = int(round(num_channels * bot_mul))
        if bot_channels % group_width:
            raise ConfigError(f"{bot_channels} bottleneck channels are not a multiple of "
                             f"group_width={group_width}")
        super().__init__(
            in_channels, num_channels, bot_mul, bot_channels // group_width, use_1x1conv, strides
        )
        self.group_width = group_width


def dense_conv_block(in_channels: int, num_channels: int) -> nn.Sequential:
    """DenseNet's conv_block: BN, ReLU, 3x3 convolution (pre-activation order, as the book)."""
    return nn.Sequential(
        nn.BatchNorm2d(in_channels), nn.ReLU(),
        nn.Conv2d(in_channels, num_channels, kernel_size=3, padding=1),
    )


class DenseBlock(nn.Module):
    """`num_convs` conv blocks, each fed the concatenation of the input and all earlier outputs.

    `num_channels` is the growth rate: out_channels = in_channels + num_convs * num_channels.
    """

    def __init__(self, num_convs: int, in_channels: int, num_channels: int) -> None:
        super().__init__()
        self.net = nn.Sequential(*(
            dense_conv_block(in_channels + i * num_channels, num_channels)
            for i in range(num_convs)
        ))
        self.out_channels = in_channels + num_convs * num_channels

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Input and every block's output, concatenated on channels."""
        for blk in self.net:
            Y = blk(X)
            X = torch.cat((X, Y), dim=1)
        return X


def transition_block(in_channels: int, num_channels: int) -> nn.Sequential:
    """DenseNet transition: BN, ReLU, 1x1 conv to `num_channels`, 2x2 average pool (halves H, W)."""
    return nn.Sequential(
        nn.BatchNorm2d(in_channels), nn.ReLU(),
        nn.Conv2d(in_channels, num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2),
    )
