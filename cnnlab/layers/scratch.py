"""The book's from-scratch layers and exercise constructions (Conv2D, AvgPoolConv, ...).

Each module keeps torch.nn's argument names (kernel_size, stride, padding) and stores them as
(H, W) pairs, so cnnlab.ops.receptive_field reads them like torch's own conv and pool layers.
tests/test_layers_scratch.py checks each one against the torch operation it imitates.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from cnnlab import ops
from cnnlab.errors import ShapeError
from cnnlab.shapes import IntOrPair, pair

__all__ = ["AvgPoolConv", "Conv2D", "MinPool2d", "ReLUMaxPool2d"]


def _as_planes(x: Tensor, layer: str) -> tuple[Tensor, tuple[int, ...]]:
    """(..., H, W) -> (B, 1, H, W): one single-channel conv then serves every channel and image."""
    if x.dim() < 2:
        raise ShapeError(f"{layer}: input {tuple(x.shape)} must have at least 2 dims (..., H, W)")
    return x.reshape(-1, 1, *x.shape[-2:]), tuple(x.shape[:-2])


class Conv2D(nn.Module):
    """The book's learnable single-channel conv layer (7.2.3): corr2d(x, weight) + bias.

    Input (..., H, W); stride and padding (zeros) follow section 7.3. The weight starts uniform
    in [0, 1) and the bias at zero, as in the book.
    """

    def __init__(
        self, kernel_size: IntOrPair, stride: IntOrPair = 1, padding: IntOrPair = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = pair(stride, "stride")
        self.padding = pair(padding, "padding", minimum=0)
        self.weight = nn.Parameter(torch.rand(self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(1)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        """Pad, cross-correlate with the kernel, keep every stride-th output, add the bias."""
        ph, pw = self.padding
        y = ops.corr2d(ops.pad2d(x, (ph, ph, pw, pw), fn="Conv2D"), self.weight)
        if self.stride != (1, 1):
            # Striding = computing every position and keeping every s-th (clear, not fast).
            y = y[..., :: self.stride[0], :: self.stride[1]]
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"bias={self.bias is not None}")


class _Pool(nn.Module):
    """A pooling window: kernel_size, stride (default: the kernel) and padding, as in torch."""

    def __init__(
        self, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0
    ) -> None:
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else pair(stride, "stride")
        self.padding = pair(padding, "padding", minimum=0)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPoolConv(_Pool):
    """Average pooling as a bias-free convolution with a fixed all-1/(kh*kw) kernel (ex. 7.5.1).

    Equals torch's avg_pool2d with count_include_pad=True (zero padding counts in the average).
    """

    def forward(self, x: Tensor) -> Tensor:
        """Convolve every channel separately with the averaging kernel."""
        planes, lead = _as_planes(x, "AvgPoolConv")
        kh, kw = self.kernel_size
        # Built in the input's dtype (not a float32 buffer) so 1/(kh*kw) is exact to its precision.
        weight = x.new_full((1, 1, kh, kw), 1.0 / (kh * kw))  # fixed: no parameter, no bias
        y = ops.conv2d(planes, weight, stride=self.stride, padding=self.padding)
        return y.reshape(*lead, *y.shape[-2:])


class ReLUMaxPool2d(_Pool):
    """Max pooling built only from convolutions and ReLU (ex. 7.5.3).

    A fixed conv with one one-hot kernel per window position copies each position of every
    window into its own channel; then max(a, b) = relu(a - b) + b folds the kh*kw channels
    pairwise into one. On exact ties the gradient goes to one of the tied inputs, possibly not
    the one torch picks.
    """

    def __init__(
        self, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        kh, kw = self.kernel_size
        if self.padding[0] > kh // 2 or self.padding[1] > kw // 2:
            raise ShapeError(
                f"ReLUMaxPool2d: padding {self.padding} must be at most half the kernel size "
                f"{self.kernel_size} (torch's pooling rule)"
            )
        taps = torch.eye(kh * kw).reshape(kh * kw, 1, kh, kw)  # (kh*kw, 1, kh, kw), one-hot each
        self.register_buffer("taps", taps)

    def forward(self, x: Tensor) -> Tensor:
        """Copy out every window position with a conv, then reduce them with relu-max."""
        planes, lead = _as_planes(x, "ReLUMaxPool2d")
        # The conv pads with zeros, but max pooling pads with -inf. Shifting the input so every
        # real value is >= 1 makes a zero pad lose every comparison; the shift is undone at the
        # end and is a constant for autograd.
        low = planes.detach().amin() - 1 if planes.numel() else planes.new_zeros(())
        m = ops.conv2d(planes - low, self.taps.to(x.dtype), stride=self.stride,
                       padding=self.padding)  # (B, kh*kw, Ho, Wo)
        while m.shape[1] > 1:  # a tree of pairwise maxima: log2(kh*kw) rounds
            half = m.shape[1] // 2
            a, b = m[:, :half], m[:, half : 2 * half]
            m = torch.cat([torch.relu(a - b) + b, m[:, 2 * half :]], dim=1)
        y = m[:, 0] + low  # (B, Ho, Wo)
        return y.reshape(*lead, *y.shape[-2:])


class MinPool2d(_Pool):
    """Minimum pooling (ex. 7.5.6): the smallest value of each window, padding with +inf."""

    def __init__(
        self, kernel_size: IntOrPair, stride: IntOrPair | None = None, padding: IntOrPair = 0,
        dilation: IntOrPair = 1, ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        self.dilation = pair(dilation, "dilation")
        self.ceil_mode = ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        """Min-pool x (N, C, H, W) or (C, H, W) with cnnlab.ops.pool2d."""
        return ops.pool2d(x, self.kernel_size, self.stride, self.padding, mode="min",
                          ceil_mode=self.ceil_mode, dilation=self.dilation)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, dilation={self.dilation}, ceil_mode={self.ceil_mode}"
