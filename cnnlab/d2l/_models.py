"""The book's chapter 7-8 models, exactly as the book defines them (Lazy layers, book quirks kept).

These are not cnnlab's zoo models (cnnlab.models: explicit in_channels, torchvision-style
ResNet): they reproduce the book's code so its numbers and printouts can be compared. The book's
quirks are kept on purpose: Residual's convolutions have biases and its 1x1 shortcut is not
normalized; ResNeXtBlock passes `bot_channels // groups` as the conv's `groups` (so `groups` acts
as the group width); AlexNet/VGG/NiN/GoogleNet/ResNet/DenseNet call `net.apply(init_cnn)` in
__init__, before their Lazy layers have weights, so (as in d2l 1.0.3) those layers keep PyTorch's
default init.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.d2l._train import Classifier, init_cnn

__all__ = [
    "LeNet", "AlexNet", "vgg_block", "VGG", "nin_block", "NiN", "Inception", "GoogleNet",
    "BNLeNet", "Residual", "ResNet", "ResNet18", "ResNeXtBlock", "conv_block", "DenseBlock",
    "transition_block", "DenseNet",
]


class LeNet(Classifier):
    """LeNet-5 (7.6): sigmoid activations and average pooling."""

    def __init__(self, lr: float = 0.1, num_classes: int = 10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5, padding=2), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), nn.Sigmoid(),
            nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(),
            nn.LazyLinear(120), nn.Sigmoid(),
            nn.LazyLinear(84), nn.Sigmoid(),
            nn.LazyLinear(num_classes))


class AlexNet(Classifier):
    """AlexNet (8.1), for 224x224 single-channel inputs."""

    def __init__(self, lr: float = 0.1, num_classes: int = 10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.LazyConv2d(96, kernel_size=11, stride=4, padding=1),
            nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2),
            nn.LazyConv2d(256, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.LazyConv2d(384, kernel_size=3, padding=1), nn.ReLU(),
            nn.LazyConv2d(384, kernel_size=3, padding=1), nn.ReLU(),
            nn.LazyConv2d(256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2), nn.Flatten(),
            nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(p=0.5),
            nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(p=0.5),
            nn.LazyLinear(num_classes))
        self.net.apply(init_cnn)


def vgg_block(num_convs: int, out_channels: int) -> nn.Sequential:
    """`num_convs` 3x3 convolutions with ReLU, then 2x2 max pooling (8.2)."""
    layers: list[nn.Module] = []
    for _ in range(num_convs):
        layers.append(nn.LazyConv2d(out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


class VGG(Classifier):
    """VGG (8.2): `arch` is ((num_convs, out_channels), ...)."""

    def __init__(self, arch: Sequence[tuple[int, int]], lr: float = 0.1, num_classes: int = 10):
        super().__init__()
        self.save_hyperparameters()
        conv_blks = [vgg_block(num_convs, out_channels) for num_convs, out_channels in arch]
        self.net = nn.Sequential(
            *conv_blks, nn.Flatten(),
            nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(0.5),
            nn.LazyLinear(4096), nn.ReLU(), nn.Dropout(0.5),
            nn.LazyLinear(num_classes))
        self.net.apply(init_cnn)


def nin_block(out_channels: int, kernel_size: int, strides: int, padding: int) -> nn.Sequential:
    """A convolution followed by two 1x1 convolutions, each with ReLU (8.3)."""
    return nn.Sequential(
        nn.LazyConv2d(out_channels, kernel_size, strides, padding), nn.ReLU(),
        nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU(),
        nn.LazyConv2d(out_channels, kernel_size=1), nn.ReLU())


class NiN(Classifier):
    """Network in Network (8.3): no fully connected layers, global average pooling at the end."""

    def __init__(self, lr: float = 0.1, num_classes: int = 10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nin_block(96, kernel_size=11, strides=4, padding=0),
            nn.MaxPool2d(3, stride=2),
            nin_block(256, kernel_size=5, strides=1, padding=2),
            nn.MaxPool2d(3, stride=2),
            nin_block(384, kernel_size=3, strides=1, padding=1),
            nn.MaxPool2d(3, stride=2),
            nn.Dropout(0.5),
            nin_block(num_classes, kernel_size=3, strides=1, padding=1),
            nn.AdaptiveAvgPool2d((1, 1)),
            nn.Flatten())
        self.net.apply(init_cnn)


class Inception(nn.Module):
    """The Inception block (8.4): c1--c4 are the output channels of the four branches."""

    def __init__(self, c1: int, c2: tuple[int, int], c3: tuple[int, int], c4: int, **kwargs):
        super().__init__(**kwargs)
        self.b1_1 = nn.LazyConv2d(c1, kernel_size=1)
        self.b2_1 = nn.LazyConv2d(c2[0], kernel_size=1)
        self.b2_2 = nn.LazyConv2d(c2[1], kernel_size=3, padding=1)
        self.b3_1 = nn.LazyConv2d(c3[0], kernel_size=1)
        self.b3_2 = nn.LazyConv2d(c3[1], kernel_size=5, padding=2)
        self.b4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.b4_2 = nn.LazyConv2d(c4, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = F.relu(self.b1_1(x))
        b2 = F.relu(self.b2_2(F.relu(self.b2_1(x))))
        b3 = F.relu(self.b3_2(F.relu(self.b3_1(x))))
        b4 = F.relu(self.b4_2(self.b4_1(x)))
        return torch.cat((b1, b2, b3, b4), dim=1)


class GoogleNet(Classifier):
    """GoogLeNet (8.4), at the book's 96x96 inputs; stages b1..b5 as methods, as the book."""

    def __init__(self, lr: float = 0.1, num_classes: int = 10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(self.b1(), self.b2(), self.b3(), self.b4(),
                                 self.b5(), nn.LazyLinear(num_classes))
        self.net.apply(init_cnn)

    def b1(self) -> nn.Sequential:
        return nn.Sequential(
            nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3),
            nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def b2(self) -> nn.Sequential:
        return nn.Sequential(
            nn.LazyConv2d(64, kernel_size=1), nn.ReLU(),
            nn.LazyConv2d(192, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def b3(self) -> nn.Sequential:
        return nn.Sequential(Inception(64, (96, 128), (16, 32), 32),
                             Inception(128, (128, 192), (32, 96), 64),
                             nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def b4(self) -> nn.Sequential:
        return nn.Sequential(Inception(192, (96, 208), (16, 48), 64),
                             Inception(160, (112, 224), (24, 64), 64),
                             Inception(128, (128, 256), (24, 64), 64),
                             Inception(112, (144, 288), (32, 64), 64),
                             Inception(256, (160, 320), (32, 128), 128),
                             nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def b5(self) -> nn.Sequential:
        return nn.Sequential(Inception(256, (160, 320), (32, 128), 128),
                             Inception(384, (192, 384), (48, 128), 128),
                             nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())


class BNLeNet(Classifier):
    """LeNet with batch normalization after every convolution and linear layer (8.5)."""

    def __init__(self, lr: float = 0.1, num_classes: int = 10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.LazyConv2d(6, kernel_size=5), nn.LazyBatchNorm2d(),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.LazyConv2d(16, kernel_size=5), nn.LazyBatchNorm2d(),
            nn.Sigmoid(), nn.AvgPool2d(kernel_size=2, stride=2),
            nn.Flatten(), nn.LazyLinear(120), nn.LazyBatchNorm1d(),
            nn.Sigmoid(), nn.LazyLinear(84), nn.LazyBatchNorm1d(),
            nn.Sigmoid(), nn.LazyLinear(num_classes))


class Residual(nn.Module):
    """The book's residual block (8.6): biased 3x3 convs, optional unnormalized 1x1 shortcut."""

    def __init__(self, num_channels: int, use_1x1conv: bool = False, strides: int = 1):
        super().__init__()
        self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()

    def forward(self, X: torch.Tensor) -> torch.Tensor:  # noqa: N803
        Y = F.relu(self.bn1(self.conv1(X)))  # noqa: N806
        Y = self.bn2(self.conv2(Y))  # noqa: N806
        if self.conv3:
            X = self.conv3(X)  # noqa: N806
        Y += X  # noqa: N806
        return F.relu(Y)


class ResNet(Classifier):
    """ResNet (8.6): `arch` is ((num_residuals, num_channels), ...) after the 7x7 stem."""

    def __init__(self, arch: Sequence[tuple[int, int]], lr: float = 0.1,
                 num_classes: int = 10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(self.b1())
        for i, b in enumerate(arch):
            self.net.add_module(f"b{i + 2}", self.block(*b, first_block=(i == 0)))
        self.net.add_module("last", nn.Sequential(
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.LazyLinear(num_classes)))
        self.net.apply(init_cnn)

    def b1(self) -> nn.Sequential:
        return nn.Sequential(
            nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3),
            nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

    def block(self, num_residuals: int, num_channels: int,
              first_block: bool = False) -> nn.Sequential:
        blk = []
        for i in range(num_residuals):
            if i == 0 and not first_block:
                blk.append(Residual(num_channels, use_1x1conv=True, strides=2))
            else:
                blk.append(Residual(num_channels))
        return nn.Sequential(*blk)


class ResNet18(ResNet):
    """ResNet-18 as the book builds it: four stages of two residual blocks."""

    def __init__(self, lr: float = 0.1, num_classes: int = 10):
        super().__init__(((2, 64), (2, 128), (2, 256), (2, 512)), lr, num_classes)


class ResNeXtBlock(nn.Module):
    """The book's ResNeXt block (8.6.5); note conv2's groups is bot_channels // groups."""

    def __init__(self, num_channels: int, groups: int, bot_mul: float,
                 use_1x1conv: bool = False, strides: int = 1):
        super().__init__()
        bot_channels = int(round(num_channels * bot_mul))
        self.conv1 = nn.LazyConv2d(bot_channels, kernel_size=1, stride=1)
        self.conv2 = nn.LazyConv2d(bot_channels, kernel_size=3, stride=strides, padding=1,
                                   groups=bot_channels // groups)
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=1)
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()
        self.bn3 = nn.LazyBatchNorm2d()
        if use_1x1conv:
            self.conv4 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides)
            self.bn4 = nn.LazyBatchNorm2d()
        else:
            self.conv4 = None

    def forward(self, X: torch.Tensor) -> torch.Tensor:  # noqa: N803
        Y = F.relu(self.bn1(self.conv1(X)))  # noqa: N806
        Y = F.relu(self.bn2(self.conv2(Y)))  # noqa: N806
        Y = self.bn3(self.conv3(Y))  # noqa: N806
        if self.conv4:
            X = self.bn4(self.conv4(X))  # noqa: N806
        return F.relu(Y + X)


def conv_block(num_channels: int) -> nn.Sequential:
    """DenseNet's BN-ReLU-conv unit (8.7)."""
    return nn.Sequential(
        nn.LazyBatchNorm2d(), nn.ReLU(),
        nn.LazyConv2d(num_channels, kernel_size=3, padding=1))


class DenseBlock(nn.Module):
    """`num_convs` conv_blocks, each one's output concatenated to its input (8.7)."""

    def __init__(self, num_convs: int, num_channels: int):
        super().__init__()
        self.net = nn.Sequential(*[conv_block(num_channels) for _ in range(num_convs)])

    def forward(self, X: torch.Tensor) -> torch.Tensor:  # noqa: N803
        for blk in self.net:
            Y = blk(X)  # noqa: N806
            X = torch.cat((X, Y), dim=1)  # noqa: N806
        return X


def transition_block(num_channels: int) -> nn.Sequential:
    """BN-ReLU, a 1x1 conv to `num_channels`, then 2x2 average pooling (8.7)."""
    return nn.Sequential(
        nn.LazyBatchNorm2d(), nn.ReLU(),
        nn.LazyConv2d(num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2))


class DenseNet(Classifier):
    """DenseNet (8.7): dense blocks of `arch` convs each, transitions halving the channels."""

    def __init__(self, num_channels: int = 64, growth_rate: int = 32,
                 arch: Sequence[int] = (4, 4, 4, 4), lr: float = 0.1, num_classes: int = 10):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(self.b1())
        for i, num_convs in enumerate(arch):
            self.net.add_module(f"dense_blk{i + 1}", DenseBlock(num_convs, growth_rate))
            num_channels += num_convs * growth_rate  # channels out of this dense block
            if i != len(arch) - 1:  # a transition halving the channels between dense blocks
                num_channels //= 2
                self.net.add_module(f"tran_blk{i + 1}", transition_block(num_channels))
        self.net.add_module("last", nn.Sequential(
            nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(),
            nn.LazyLinear(num_classes)))
        self.net.apply(init_cnn)

    def b1(self) -> nn.Sequential:
        return nn.Sequential(
            nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3),
            nn.LazyBatchNorm2d(), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
