"""What every zoo model shares: the book's `self.net`, its `init_cnn`, and input checks.

A zoo model knows its input before any forward pass: `in_channels` is explicit (no Lazy layers) and
classifiers sized by a flatten (LeNet, AlexNet, VGG) are built for one `input_size`. Shapes are
worked out on the meta device, which costs neither memory nor compute, so an input the
architecture cannot take is reported as a ShapeError naming the size to use, not as a matmul
error deep inside.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain

import torch
from torch import nn
from torch.func import functional_call

from cnnlab.errors import ShapeError
from cnnlab.shapes import chain_output_shape, pair

__all__ = [
    "ZooModel",
    "flat_features",
    "init_cnn",
    "meta_output_shape",
    "min_input_size",
    "probe_output_shape",
]

_MAX_PROBE = 4096  # an input this large fits every architecture; failing here is not about size


def init_cnn(module: nn.Module) -> None:
    """The book's `d2l.init_cnn`: Xavier-uniform Conv2d and Linear weights (biases untouched)."""
    if type(module) in (nn.Linear, nn.Conv2d):
        nn.init.xavier_uniform_(module.weight)


def meta_output_shape(module: nn.Module, input_shape: tuple[int, ...]) -> torch.Size:
    """Output shape of `module` for `input_shape`, on the meta device; errors propagate.

    A plain chain of torch layers is worked out by the shape rules instead (cnnlab.shapes), with
    the same answer: the meta device costs seconds in a fresh process (torch imports its
    compiler stack for some meta kernels), the rules microseconds.
    """
    rules = chain_output_shape(module, input_shape[1:])
    if rules is not None:
        return torch.Size((input_shape[0], *rules))
    # Stand-in meta tensors replace the real parameters and buffers, so nothing is copied or run.
    state = {
        name: torch.empty_like(t, device="meta")
        for name, t in chain(module.named_parameters(), module.named_buffers())
    }
    with torch.no_grad():
        return functional_call(module, state, (torch.empty(input_shape, device="meta"),)).shape


def probe_output_shape(module: nn.Module, input_shape: tuple[int, ...]) -> torch.Size | None:
    """Output shape of `module` for `input_shape` on the meta device; None if it is too small."""
    try:
        return meta_output_shape(module, input_shape)
    except (RuntimeError, ShapeError):
        return None


# (repr of the module, in_channels) -> minimum side. A module's repr spells out every layer and
# hyperparameter, so equal reprs mean equal architectures; rebuilding a model skips the search.
_MIN_SIZE_CACHE: dict[tuple[str, int], int] = {}


def min_input_size(module: nn.Module, in_channels: int) -> int:
    """Smallest square side the module accepts (binary search over meta-device probes)."""
    key = (repr(module), in_channels)
    if key not in _MIN_SIZE_CACHE:
        _MIN_SIZE_CACHE[key] = _search_min_size(module, in_channels)
    return _MIN_SIZE_CACHE[key]


def _search_min_size(module: nn.Module, in_channels: int) -> int:
    # Batch 2: batch norm in training mode refuses a single value per channel.
    def fits(side: int) -> bool:
        return probe_output_shape(module, (2, in_channels, side, side)) is not None

    if fits(1):
        return 1
    if not fits(_MAX_PROBE):  # not a size problem: let the real error surface
        meta_output_shape(module, (2, in_channels, _MAX_PROBE, _MAX_PROBE))
        raise RuntimeError("module rejects every probed input size")
    lo, hi = 1, _MAX_PROBE  # fits(lo) is False, fits(hi) is True
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi


def _require_size(name: str, input_size: int | tuple[int, int], min_size: int) -> None:
    """ShapeError naming the minimum size when `input_size` is below it."""
    h, w = pair(input_size, "input_size")
    if min(h, w) < min_size:
        err = ShapeError(
            f"{name} needs inputs of at least {min_size}x{min_size}, got {h}x{w}: resize the "
            f"images to {min_size} or more (Loader(resize=...); default_input_size(name) gives "
            "the size the book uses)"
        )
        err.min_size = min_size  # type: ignore[attr-defined]  # the engine words it as flags
        raise err


def flat_features(name: str, features: nn.Module, in_channels: int,
                  input_size: int | tuple[int, int]) -> int:
    """Length of the flattened output of `features` at `input_size` (sizes the first Linear)."""
    h, w = pair(input_size, "input_size")
    shape = probe_output_shape(features, (2, in_channels, h, w))
    if shape is None:
        _require_size(name, (h, w), min_input_size(features, in_channels))
        raise ShapeError(f"{name} cannot take {h}x{w} inputs")  # a non-square quirk
    return int(torch.Size(shape[1:]).numel())


class ZooModel(nn.Module):
    """Base of the zoo: `forward` is the book's `self.net(X)`, after a cheap check of X's shape."""

    net: nn.Sequential
    in_channels: int
    # Models whose classifier follows a flatten are built for exactly this (H, W); others: None.
    input_size: tuple[int, int] | None = None
    _min_size: int | None = None  # smallest side the architecture takes (None: not searched yet)

    @property
    def min_size(self) -> int:
        """Smallest side the architecture takes; searched on first use for global-pool models."""
        if self._min_size is None:
            self._min_size = min_input_size(self.net, self.in_channels)
        return self._min_size

    @min_size.setter
    def min_size(self, value: int) -> None:
        self._min_size = value

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Class scores (N, num_classes) for images X (N, C, H, W)."""
        self.check_input(X)
        if self._min_size is not None:
            return self.net(X)
        # The minimum side is not known yet: searching it here would run probe forwards inside
        # this one (cnnlab.cost would count them). Run, and search only to explain a failure.
        try:
            return self.net(X)
        except RuntimeError:
            self._check_min_size(X.shape[-2], X.shape[-1])
            raise

    def check_input(self, X: torch.Tensor) -> None:
        """Raise ShapeError, saying what to do, if X is not an input this model can take."""
        name = type(self).__name__
        if X.dim() != 4:
            raise ShapeError(
                f"{name} expects a batch of images (N, {self.in_channels}, H, W), got shape "
                f"{tuple(X.shape)}: add the missing batch or channel axis (X[None] / X[:, None])"
            )
        if X.shape[1] != self.in_channels:
            raise ShapeError(
                f"{name} was built for {self.in_channels}-channel images, got {X.shape[1]} "
                f"channels: create the model with in_channels={X.shape[1]}"
            )
        h, w = X.shape[-2], X.shape[-1]
        if self.input_size is not None and (h, w) != self.input_size:
            H, W = self.input_size
            raise ShapeError(
                f"{name} was built for {H}x{W} inputs (its classifier is sized for them), got "
                f"{h}x{w}: resize the images to {H}x{W} (Loader(resize=...)) or build the model "
                f"with input_size=({h}, {w}) (at least {self.min_size})"
            )
        if self._min_size is not None:  # known: check now (a global-pool net: on failure)
            self._check_min_size(h, w)

    def _check_min_size(self, h: int, w: int) -> None:
        if min(h, w) < self.min_size:
            name = type(self).__name__
            raise ShapeError(
                f"{name} needs inputs of at least {self.min_size}x{self.min_size}, got {h}x{w}: "
                f"resize the images (Loader(resize={self.min_size}) or larger)"
            )

    def _build_flat(self, features: list[nn.Module], head: Callable[[int], list[nn.Module]],
                    in_channels: int, input_size: int | tuple[int, int]) -> None:
        """net = features, Flatten, head(n): a classifier sized for the n features at input_size."""
        body = nn.Sequential(*features)
        flat = flat_features(type(self).__name__, body, in_channels, input_size)
        self.net = nn.Sequential(*features, nn.Flatten(), *head(flat))
        self._finish(in_channels, input_size, body)

    def _finish(
        self,
        in_channels: int,
        input_size: int | tuple[int, int] | None,
        features: nn.Module | None = None,
    ) -> None:
        """Record the input contract, reject an impossible `input_size` now, apply init_cnn.

        `features` is the part before a flatten whose classifier was sized for `input_size`;
        without it the model ends in global pooling and takes any size from `min_size` up.
        """
        self.in_channels = in_channels
        name = type(self).__name__
        if features is not None:  # a plain chain: the rules find the minimum in microseconds
            self.min_size = min_input_size(features, in_channels)
            if input_size is not None:
                _require_size(name, input_size, self.min_size)
                self.input_size = pair(input_size, "input_size")
        elif input_size is not None:
            # One probe at the size asked for; the minimum is searched only to explain a failure
            # (or on first use of min_size), which keeps building a model cheap.
            h, w = pair(input_size, "input_size")
            if probe_output_shape(self.net, (2, in_channels, h, w)) is None:
                _require_size(name, (h, w), self.min_size)
                raise ShapeError(f"{name} cannot take {h}x{w} inputs")
        self.apply(init_cnn)

    def num_params(self) -> int:
        """Number of parameters (nanoGPT's get_num_params)."""
        return sum(p.numel() for p in self.parameters())
