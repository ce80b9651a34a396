"""Small, fast networks for training on a CPU in seconds (the `fast` and `best_cpu` recipes).

FastNet is the shape the speed runs (airbench, the MNIST speed runs) converge on, cut to what two
CPU cores can afford: a few 3x3 conv -> batch norm -> ReLU layers, a 2x2 max-pool after each stage
(28 -> 14 -> 7 -> 3), then one linear layer. In eval mode it averages its logits over the image
and its mirror image (flip test-time augmentation), which costs one extra forward pass at
evaluation only; `tta=False` turns that off. `tta_shift=1` also averages over four copies of the
image shifted by a pixel (six passes), for nets trained with random crops.

Where the activation never decreases (ReLU and most others; not GELU or SiLU), a stage's last
activation runs after its max-pool: max(f(x)) = f(max(x)), the same numbers at a quarter of the
activation's work (training steps about 7% faster in float32; BENCHMARKS.md).

`pool_before_bn` goes one step further, as airbench does: the pool straight after a stage's last
conv (conv -> pool -> batch norm -> activation). That is another network (batch norm's
statistics come from the pooled map), and a cheaper one: the first stage's 28x28 map is where a
step's batch norm spends most of its time. `fast` pools that way in its first stage.

Variants: `fastnet` (16-32-64, one conv a stage), `fastnet_mid` (a second conv in the middle
stage: the first `fast` recipe, 92% on Fashion-MNIST within a minute on a 2-core CPU),
`fastnet_slim` (16-32-64 with two convs in the last two stages: the `fast` recipe, with
`pool_before_bn="first"`, 93% within seven of d2l's LeNet epochs), `fastnet_deep` (16-32-96,
the same depths: the `fast` recipe before, 1.3x the float32 work of `fastnet_slim`) and
`fastnet_wide` (32-64-128, the same depths: the `best_cpu` recipe, 94% within ten minutes).
Figures: bench/bench_speed.py and BENCHMARKS.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ConfigError
from cnnlab.layers.blocks import ACTIVATIONS, activation_class
from cnnlab.models._base import ZooModel, flat_features, min_input_size
from cnnlab.models._knobs import Knob
from cnnlab.models._registry import register_model
from cnnlab.shapes import pair

__all__ = ["FASTNET_KNOBS", "FastNet"]

STEMS = ("pool", "stride")
HEADS = ("flatten", "pool")
POOL_BEFORE_BN = ("none", "first", "all")

FASTNET_KNOBS = (
    Knob("widths", "ints", (16, 32, 64), "channels of each stage", low=1),
    Knob("depth", "ints", (1, 1, 1), "conv-BN-activation layers in each stage (one per width)",
         low=1),
    Knob("stem", "choice", "pool", "how the first stage halves the image: a 2x2 max-pool after "
         "it, or a stride-2 first conv (13% cheaper steps, less accurate per second)",
         choices=STEMS),
    Knob("pool_before_bn", "choice", "none", "stages whose max-pool runs straight after their "
         "last conv (airbench's conv-pool-BN-act): none (the book's order), the first (the "
         "28x28 stage, where most of a step's batch-norm work is) or all; batch norm and the "
         "activation then see a quarter of the values", choices=POOL_BEFORE_BN),
    Knob("head", "choice", "flatten", "classifier on the flattened last map (sized for the "
         "input) or on its global max (any size)", choices=HEADS),
    Knob("activation", "choice", "relu", "activation after every batch norm",
         choices=tuple(ACTIVATIONS), aliases=("act",)),
    Knob("tta", "bool", True, "in eval mode, average the logits with the mirror image's"),
    Knob("tta_shift", "int", 0, "with tta, also average over the image shifted this many "
         "pixels up, down, left and right (edges repeated): 6 forward passes instead of 2, for "
         "nets trained with random crops (0: off)", low=0, high=4),
)


# Activations f with max(f(x)) = f(max(x)): they commute with max-pooling.
MONOTONE = ("relu", "leaky_relu", "sigmoid", "tanh", "elu")


def conv_bn(c_in: int, c_out: int, activation: str = "relu", stride: int = 1) -> list[nn.Module]:
    """3x3 conv (no bias: batch norm's shift replaces it) -> batch norm -> activation."""
    return [nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out), activation_class(activation)()]


class FastNet(ZooModel):
    """Stages of `depth[i]` conv-BN-act layers with `widths[i]` channels, each ending in a max-pool
    (with `stem="stride"` the first stage instead starts with a stride-2 conv). With
    `pool_before_bn` "first" or "all" the pool follows the first or every stage's last conv
    directly (conv-pool-BN-act), as in airbench.

    The classifier is one linear layer on the flattened last feature map (`head="flatten"`,
    built for `input_size`) or on its global max (`head="pool"`, any input size).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int | tuple[int, int] = 28,
        widths: Sequence[int] = (16, 32, 64),
        depth: Sequence[int] = (1, 1, 1),
        head: str = "flatten",
        activation: str = "relu",
        tta: bool = True,
        stem: str = "pool",
        pool_before_bn: str = "none",
        tta_shift: int = 0,
    ) -> None:
        super().__init__()
        if len(widths) != len(depth) or not widths or min(depth) < 1:
            raise ConfigError(f"widths={widths} and depth={depth} need one entry (>= 1) per "
                              "stage")
        if head not in HEADS:
            raise ConfigError(f"head={head!r} must be 'flatten' or 'pool'")
        if stem not in STEMS:
            raise ConfigError(f"stem={stem!r} must be 'pool' or 'stride'")
        if pool_before_bn not in POOL_BEFORE_BN:
            raise ConfigError(f"pool_before_bn={pool_before_bn!r} must be one of "
                              f"{', '.join(POOL_BEFORE_BN)}")
        if pool_before_bn == "first" and stem == "stride":
            raise ConfigError("pool_before_bn='first' moves the first stage's pool, and "
                              "stem='stride' has none there: choose one of the two")
        if not 0 <= tta_shift <= 4:
            raise ConfigError(f"tta_shift={tta_shift} must be 0 (off) to 4 pixels")
        activation_class(activation)  # checked before any layer is built
        features: list[nn.Module] = []
        c = in_channels
        for i, (width, n) in enumerate(zip(widths, depth, strict=True)):
            strided = i == 0 and stem == "stride"
            for j in range(n):
                features += conv_bn(c, width, activation, stride=2 if strided and j == 0 else 1)
                c = width
            if strided:
                continue
            if pool_before_bn == "all" or (pool_before_bn == "first" and i == 0):
                at = -2  # straight after the stage's last conv: conv-pool-BN-act
            else:  # before the last activation where they commute (the same function)
                at = -1 if activation in MONOTONE else len(features)
            features.insert(at, nn.MaxPool2d(2))
        body = nn.Sequential(*features)
        if head == "flatten":
            flat = flat_features("FastNet", body, in_channels, input_size)
            classifier: list[nn.Module] = [nn.Flatten(), nn.Linear(flat, num_classes)]
        else:
            classifier = [nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
        self.net = nn.Sequential(*features, *classifier)
        self.tta = tta
        self.tta_shift = int(tta_shift)
        # torch's default (Kaiming-uniform) init, not the book's Xavier: the recipes were tuned
        # with it, and it suits ReLU networks.
        self.in_channels = in_channels
        self.min_size = min_input_size(body, in_channels)
        if head == "flatten":
            self.input_size = pair(input_size, "input_size")

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Class scores (N, num_classes); in eval mode with tta, averaged with the mirror image
        (and with tta_shift, with four shifted copies of the image)."""
        self.check_input(X)
        if self.training or not self.tta:
            return self.net(X)
        views = [X, X.flip(3), *shifted(X, self.tta_shift)]
        return sum(self.net(v) for v in views) / len(views)


def shifted(X: torch.Tensor, s: int) -> list[torch.Tensor]:
    """X moved s pixels up, down, left and right (none for s=0), the edge rows and columns
    repeated into the gap: the model sees its input normalized, where a zero is the mean, not
    the background that the edges of a Fashion-MNIST image are."""
    if not s:
        return []
    H, W = X.shape[-2:]
    P = F.pad(X, (s, s, s, s), mode="replicate")
    return [P[..., s + dy:s + dy + H, s + dx:s + dx + W]
            for dy, dx in ((-s, 0), (s, 0), (0, -s), (0, s))]


@register_model(input_size=28, knobs=FASTNET_KNOBS)
def fastnet(**kwargs: object) -> FastNet:
    """Three conv-BN-ReLU stages of 16-32-64 channels + linear (~29k params)."""
    return FastNet(**kwargs)


@register_model(input_size=28, knobs=FASTNET_KNOBS, defaults=dict(depth=(1, 2, 1)))
def fastnet_mid(**kwargs: object) -> FastNet:
    """16-32-64 with two convs in the middle stage (~38k params): the first `fast` recipe's net."""
    return FastNet(**kwargs)


@register_model(input_size=28, knobs=FASTNET_KNOBS, defaults=dict(depth=(1, 2, 2)))
def fastnet_slim(**kwargs: object) -> FastNet:
    """16-32-64 with two convs in the last two stages (~75k params): the `fast` recipe's net."""
    return FastNet(**kwargs)


@register_model(input_size=28, knobs=FASTNET_KNOBS,
                defaults=dict(widths=(16, 32, 96), depth=(1, 2, 2)))
def fastnet_deep(**kwargs: object) -> FastNet:
    """16-32-96 with two convs in the last two stages (~134k params): the earlier `fast` net."""
    return FastNet(**kwargs)


@register_model(input_size=28, knobs=FASTNET_KNOBS,
                defaults=dict(widths=(32, 64, 128), depth=(1, 2, 2)))
def fastnet_wide(**kwargs: object) -> FastNet:
    """32-64-128 with two convs in the last two stages (~289k params): the `best_cpu` network."""
    return FastNet(**kwargs)
