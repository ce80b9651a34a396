"""Chapter-8 blocks: the book's example shapes, channel bookkeeping, and the computations."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from cnnlab.errors import ConfigError
from cnnlab.layers import (
    Bottleneck,
    DenseBlock,
    Inception,
    Residual,
    ResNeXtBlock,
    blocks,
    nin_block,
    transition_block,
    vgg_block,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_all_lists_exactly_the_public_blocks() -> None:
    public = {n for n in vars(blocks) if not n.startswith("_")} - {
        "annotations", "torch", "nn", "F", "ConfigError"
    }
    assert set(blocks.__all__) == public


@pytest.mark.parametrize(("kind", "norm", "bias", "size", "types"), [
    ("imagenet", True, False, 56, ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]),  # ResNet
    ("imagenet", True, True, 56, ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]),  # DenseNet
    ("imagenet", False, True, 56, ["Conv2d", "ReLU", "MaxPool2d"]),  # GoogLeNet
    ("small", True, False, 224, ["Conv2d", "BatchNorm2d", "ReLU"]),
])
def test_stem_of_googlenet_resnet_and_densenet(kind: str, norm: bool, bias: bool, size: int,
                                                types: list[str]) -> None:
    s = blocks.stem(3, 64, kind, norm=norm, bias=bias)
    assert [type(m).__name__ for m in s] == types
    assert (s[0].bias is not None) == bias
    assert s(torch.zeros(1, 3, 224, 224)).shape == (1, 64, size, size)
    with pytest.raises(ConfigError, match="stem must be 'imagenet' or 'small'"):
        blocks.stem(3, 64, "tiny")


def test_vgg_block_halves_size_and_counts_convs() -> None:
    blk = vgg_block(3, 4, 8)
    assert sum(isinstance(m, nn.Conv2d) for m in blk) == 3
    assert blk(torch.rand(2, 4, 10, 10)).shape == (2, 8, 5, 5)


def test_nin_block_is_conv_then_two_1x1() -> None:
    blk = nin_block(3, 16, kernel_size=11, strides=4, padding=0)
    kernels = [m.kernel_size for m in blk if isinstance(m, nn.Conv2d)]
    assert kernels == [(11, 11), (1, 1), (1, 1)]
    assert blk(torch.rand(1, 3, 224, 224)).shape == (1, 16, 54, 54)


def test_inception_concatenates_four_paths() -> None:
    blk = Inception(192, 64, (96, 128), (16, 32), 32)  # the book's first b3 block
    assert blk.out_channels == 256
    X = torch.rand(2, 192, 12, 12)
    Y = blk(X)
    assert Y.shape == (2, 256, 12, 12)
    # The first 64 channels are path 1 alone: relu of the 1x1 convolution.
    torch.testing.assert_close(Y[:, :64], F.relu(blk.b1_1(X)))
    assert (Y >= 0).all()


def test_residual_book_examples() -> None:
    X = torch.rand(4, 3, 6, 6)
    assert Residual(3, 3)(X).shape == (4, 3, 6, 6)
    blk = Residual(3, 6, use_1x1conv=True, strides=2)
    assert blk(X).shape == (4, 6, 3, 3)


def test_residual_matches_hand_computation_in_float64() -> None:
    torch.manual_seed(0)
    blk = Residual(3, 5, use_1x1conv=True, strides=2).double()
    for bn in (blk.bn1, blk.bn2, blk.conv3[1]):  # non-trivial running statistics
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        nn.init.uniform_(bn.weight, 0.5, 1.5)
        nn.init.uniform_(bn.bias, -0.2, 0.2)
    blk.eval()
    X = torch.rand(2, 3, 7, 7, dtype=torch.float64, requires_grad=True)

    def bn(m: nn.BatchNorm2d, t: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(t, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)

    Y = F.relu(bn(blk.bn1, F.conv2d(X, blk.conv1.weight, stride=2, padding=1)))
    Y = bn(blk.bn2, F.conv2d(Y, blk.conv2.weight, padding=1))
    expected = F.relu(Y + bn(blk.conv3[1], F.conv2d(X, blk.conv3[0].weight, stride=2)))
    got = blk(X)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    (g1,) = torch.autograd.grad(got.sum(), X)
    (g2,) = torch.autograd.grad(expected.sum(), X)
    torch.testing.assert_close(g1, g2, rtol=1e-12, atol=1e-12)


def test_residual_with_zeroed_branch_is_relu_of_input() -> None:
    blk = Residual(4, 4)
    nn.init.zeros_(blk.bn2.weight)  # F(X) = 0: only the shortcut remains
    X = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(blk(X), F.relu(X))


def test_residual_convs_have_no_bias_and_projection_has_batch_norm() -> None:
    blk = Residual(3, 6, use_1x1conv=True, strides=2)
    assert blk.conv1.bias is None and blk.conv2.bias is None
    assert isinstance(blk.conv3[1], nn.BatchNorm2d)
    assert Residual(3, 3).conv3 is None


def test_bottleneck_widths_and_groups() -> None:
    blk = Bottleneck(64, 256, bot_mul=0.25, use_1x1conv=True)  # ResNet-50's first block
    assert blk.conv2.in_channels == 64 and blk.conv2.groups == 1
    assert blk(torch.rand(2, 64, 8, 8)).shape == (2, 256, 8, 8)
    x32 = Bottleneck(64, 256, bot_mul=0.5, groups=32, use_1x1conv=True, strides=2)  # ResNeXt 32x4d
    assert x32.conv2.weight.shape == (128, 4, 3, 3)  # 32 groups of 4 channels
    assert x32.conv2.stride == (2, 2) and x32.conv1.stride == (1, 1)  # stride on the 3x3
    assert x32(torch.rand(2, 64, 8, 8)).shape == (2, 256, 4, 4)


def test_resnext_block_group_width_is_the_books_groups() -> None:
    # The book: ResNeXtBlock(32, 16, 1) on (4, 32, 96, 96) -> same shape, with 32 // 16 = 2 groups.
    blk = ResNeXtBlock(32, 32, group_width=16, bot_mul=1)
    assert blk.conv2.groups == 2 and blk.group_width == 16
    assert blk(torch.rand(4, 32, 12, 12)).shape == (4, 32, 12, 12)
    # Same computation as a Bottleneck with that many groups: same parameters, same output.
    ref = Bottleneck(32, 32, bot_mul=1, groups=2)
    ref.load_state_dict(blk.state_dict())
    X = torch.rand(2, 32, 6, 6)
    torch.testing.assert_close(blk(X), ref(X))


def test_resnext_block_rejects_uneven_groups() -> None:
    with pytest.raises(ConfigError, match="group_width=7"):
        ResNeXtBlock(32, 32, group_width=7, bot_mul=1)
    with pytest.raises(ConfigError, match="groups"):
        Bottleneck(32, 32, bot_mul=1, groups=5)


def test_dense_block_book_example_and_concatenation() -> None:
    blk = DenseBlock(2, 3, 10)  # the book: DenseBlock(2, 10) on (4, 3, 8, 8) -> 23 channels
    X = torch.rand(4, 3, 8, 8)
    Y = blk(X)
    assert blk.out_channels == 23 and Y.shape == (4, 23, 8, 8)
    torch.testing.assert_close(Y[:, :3], X)  # the input passes through unchanged
    blk.eval()
    torch.testing.assert_close(blk(X)[:, 3:13], blk.net[0](X))


def test_transition_block_book_example() -> None:
    blk = transition_block(23, 10)
    assert blk(torch.rand(4, 23, 8, 8)).shape == (4, 10, 4, 4)
