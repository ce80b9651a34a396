"""Shape rules of section 7.3/7.5 and a receptive-field calculator (re-exported by cnnlab.ops).

Sizes are per spatial axis; functions take an int (both axes alike) or an (H, W) pair and return
an int only when every size argument was an int.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from torch import nn

from cnnlab.errors import CnnlabError, ConfigError, ShapeError

IntOrPair = int | tuple[int, int]
Pads = tuple[int, int, int, int]  # (top, bottom, left, right)


def pair(v: IntOrPair | Sequence[int], name: str, minimum: int = 1) -> tuple[int, int]:
    """(v, v) for an int, the pair itself for a pair; each element must be >= minimum.

    The one normalizer of an (H, W) argument: kernel sizes, strides, input sizes, resize.
    """
    if _is_int(v):
        out = (int(v), int(v))
    elif isinstance(v, Sequence) and len(v) == 2 and all(_is_int(x) for x in v):
        out = (int(v[0]), int(v[1]))
    else:
        out = (minimum - 1, 0)
    if min(out) < minimum:
        what = {0: "non-negative", 1: "positive"}.get(minimum, f">= {minimum}")
        raise ConfigError(f"{name}={v!r} must be a {what} int or a pair of {what} ints (h, w), "
                          f"e.g. {name}={max(minimum, 3)} or {name}=({max(minimum, 3)}, "
                          f"{max(minimum, 3)})")
    return out


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def conv_padding(
    padding: IntOrPair | str | Sequence[int], kernel: tuple[int, int], stride: tuple[int, int],
    dilation: tuple[int, int], fn: str = "conv2d",
) -> Pads:
    """Explicit (top, bottom, left, right) padding from an int, pair, 4-tuple, 'valid' or 'same'."""
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ConfigError(f"{fn}: padding {padding!r} is not an int, a pair, 'valid' or 'same'")
        if stride != (1, 1):
            raise ConfigError(f"{fn}: padding='same' needs stride 1 (got {stride}), as in torch")
        # torch puts the odd pixel of an even kernel's padding at the bottom/right.
        th, tw = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
        return (th // 2, th - th // 2, tw // 2, tw - tw // 2)
    if isinstance(padding, Sequence) and len(padding) == 4:
        if not all(isinstance(x, int) and x >= 0 for x in padding):
            raise ConfigError(f"{fn}: padding {padding!r} must be non-negative ints")
        return tuple(padding)  # type: ignore[return-value]
    ph, pw = pair(padding, "padding", minimum=0)
    return (ph, ph, pw, pw)


def _out_size(n: int, k: int, s: int, d: int, before: int, after: int, ceil: bool, fn: str) -> int:
    span = d * (k - 1) + 1  # the dilated kernel's extent
    if n + before + after < span:
        raise ShapeError(
            f"{fn}: kernel {k} (dilation {d}, spanning {span}) is larger than the padded input "
            f"{n + before + after} (input {n}, padding {before}+{after}); pad more or use a "
            "smaller kernel"
        )
    top = n + before + after - span
    out = (top + (s - 1 if ceil else 0)) // s + 1
    # ceil_mode: the last window must start inside the input or its left padding (torch's rule).
    if ceil and (out - 1) * s >= n + before:
        out -= 1
    return out


def _result(sizes: list[int], scalar: bool) -> int | tuple[int, int]:
    return sizes[0] if scalar else (sizes[0], sizes[1])


def conv_output_hw(
    n: tuple[int, int], k: tuple[int, int], s: tuple[int, int], pads: Pads, d: tuple[int, int],
    fn: str,
) -> tuple[int, int]:
    """(Ho, Wo) of a convolution with explicit (top, bottom, left, right) padding; fn names it."""
    return (_out_size(n[0], k[0], s[0], d[0], pads[0], pads[1], False, fn),
            _out_size(n[1], k[1], s[1], d[1], pads[2], pads[3], False, fn))


def pool_output_hw(
    n: tuple[int, int], k: tuple[int, int], s: tuple[int, int], p: tuple[int, int],
    d: tuple[int, int], ceil_mode: bool, fn: str,
) -> tuple[int, int]:
    """(Ho, Wo) of a pooling layer, checking torch's padding rule; fn names the caller."""
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ShapeError(
            f"{fn}: padding {p} must be at most half the kernel size {k} (torch's pooling rule); "
            "use less padding or a larger kernel"
        )
    return (_out_size(n[0], k[0], s[0], d[0], p[0], p[0], ceil_mode, fn),
            _out_size(n[1], k[1], s[1], d[1], p[1], p[1], ceil_mode, fn))


def conv2d_output_shape(
    input_size: IntOrPair, kernel_size: IntOrPair, stride: IntOrPair = 1,
    padding: IntOrPair | str | Sequence[int] = 0, dilation: IntOrPair = 1,
) -> int | tuple[int, int]:
    """Output height/width of a convolution: floor((n + 2p - d(k-1) - 1) / s) + 1 per axis.

    padding: an int, an (H, W) pair, (top, bottom, left, right), "valid" or "same".
    """
    n, k = pair(input_size, "input_size"), pair(kernel_size, "kernel_size")
    s, d = pair(stride, "stride"), pair(dilation, "dilation")
    pads = conv_padding(padding, k, s, d, "conv2d_output_shape")
    sizes = conv_output_hw(n, k, s, pads, d, "conv2d_output_shape")
    scalar = all(isinstance(a, int) for a in (input_size, kernel_size, stride, dilation)) and (
        isinstance(padding, int) or padding in ("same", "valid"))
    return _result(list(sizes), scalar)


def pool2d_output_shape(
    input_size: IntOrPair, kernel_size: IntOrPair, stride: IntOrPair | None = None,
    padding: IntOrPair = 0, dilation: IntOrPair = 1, ceil_mode: bool = False,
) -> int | tuple[int, int]:
    """Output height/width of a pooling layer, with torch's ceil_mode and padding rules."""
    n, k = pair(input_size, "input_size"), pair(kernel_size, "kernel_size")
    s = k if stride is None else pair(stride, "stride")
    p, d = pair(padding, "padding", minimum=0), pair(dilation, "dilation")
    sizes = pool_output_hw(n, k, s, p, d, ceil_mode, "pool2d_output_shape")
    scalar = all(isinstance(a, int) for a in (input_size, kernel_size, padding, dilation)) and (
        stride is None or isinstance(stride, int))
    return _result(list(sizes), scalar)


# --- receptive field ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RFLayer:
    """One row of the receptive-field table; every field is (height axis, width axis)."""

    name: str  # hierarchical module name ("" for the input row), e.g. "3.1"
    kind: str  # the module's class name
    output_size: tuple[int, int]  # feature-map size after this layer
    jump: tuple[int, int]  # input pixels between neighbouring outputs (the cumulative stride)
    receptive_field: tuple[int, int]  # input pixels one output sees, padding included
    start: tuple[float, float]  # input coordinate of the first output's field centre (pixel i at i)


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive-field table of a sequential model; `layers[0]` is the input."""

    layers: list[RFLayer]

    @property
    def size(self) -> tuple[int, int]:
        """Receptive field of the last layer's outputs."""
        return self.layers[-1].receptive_field

    @property
    def jump(self) -> tuple[int, int]:
        """Cumulative stride of the last layer."""
        return self.layers[-1].jump

    @property
    def output_size(self) -> tuple[int, int]:
        """Spatial size of the last layer's output."""
        return self.layers[-1].output_size

    def to_dict(self) -> list[dict]:
        """The rows as plain dicts (JSON-ready)."""
        return [asdict(r) for r in self.layers]

    def __str__(self) -> str:
        def fmt(v: tuple) -> str:
            return f"{v[0]:g}" if v[0] == v[1] else f"{v[0]:g}x{v[1]:g}"

        head = ("layer", "type", "output", "jump", "receptive field", "start")
        rows = [head] + [(r.name or "input", r.kind, f"{r.output_size[0]}x{r.output_size[1]}",
                          fmt(r.jump), fmt(r.receptive_field), fmt(r.start)) for r in self.layers]
        widths = [max(len(row[c]) for row in rows) for c in range(len(head))]
        return "\n".join("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip()
                         for row in rows)


_POINTWISE = (
    nn.Identity, nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm, nn.LocalResponseNorm, nn.modules.dropout._DropoutNd,
)
_PADS = (nn.ZeroPad2d, nn.ConstantPad2d, nn.ReflectionPad2d, nn.ReplicationPad2d)


def _is_pointwise(m: nn.Module) -> bool:
    # Activations act pixel by pixel (MultiheadAttention lives in the same module but does not).
    if type(m).__module__ == "torch.nn.modules.activation":
        return not isinstance(m, nn.MultiheadAttention)
    return isinstance(m, _POINTWISE)


def _layer_geometry(name: str, m: nn.Module, n: tuple[int, int]) -> list[tuple] | None:
    """Per axis (kernel, stride, dilation, pad_before, pad_after, ceil_mode); None = pointwise."""
    kind = type(m).__name__
    if isinstance(m, nn.Flatten) or isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        target = (1, 1) if isinstance(m, nn.Flatten) else m.output_size
        target = pair(target, "output_size") if not isinstance(target, Sequence) else target
        geo = []
        for a in range(2):
            o = n[a] if target[a] is None else target[a]
            if n[a] % o:
                raise ShapeError(
                    f"receptive_field: {name} ({kind}) maps {n[a]} to {o} with unequal windows; "
                    "use an input size divisible by its output size"
                )
            geo.append((n[a] // o, n[a] // o, 1, 0, 0, False))
        return geo
    if _is_pointwise(m):
        return None
    if isinstance(m, _PADS) or (hasattr(nn, "CircularPad2d") and isinstance(m, nn.CircularPad2d)):
        left, right, top, bottom = m.padding
        return [(1, 1, 1, top, bottom, False), (1, 1, 1, left, right, False)]
    if isinstance(m, nn.modules.conv._ConvNd) and m.transposed:
        raise CnnlabError(f"receptive_field: {name} ({kind}) upsamples; it is not supported")
    if hasattr(m, "kernel_size") and not list(m.children()):
        # torch convs and pools, and cnnlab's layers, which keep torch's attribute names.
        k = pair(m.kernel_size, f"{name}.kernel_size")
        stride = getattr(m, "stride", None)
        s = k if stride is None else pair(stride, f"{name}.stride")
        d = pair(getattr(m, "dilation", 1), f"{name}.dilation")
        pads = conv_padding(getattr(m, "padding", 0), k, s, d, f"receptive_field: {name}")
        ceil = bool(getattr(m, "ceil_mode", False))
        return [(k[0], s[0], d[0], pads[0], pads[1], ceil),
                (k[1], s[1], d[1], pads[2], pads[3], ceil)]
    raise CnnlabError(
        f"receptive_field: cannot tell how {name or 'the model'} ({kind}) changes the spatial "
        "geometry; it handles nn.Sequential chains of convolutions, pools, padding and pointwise "
        "layers, not branching blocks (pass a sequential part of your model)"
    )


def receptive_field(model: nn.Module, input_size: int | Sequence[int]) -> ReceptiveField:
    """Output size, jump, receptive field and start of every layer of a sequential model.

    input_size is H (square), (H, W) or (C, H, W). Per axis and layer with kernel k, stride s,
    dilation d and padding p (effective kernel e = d(k-1)+1): jump' = jump*s,
    rf' = rf + (e-1)*jump, start' = start + ((e-1)/2 - p)*jump.
    """
    n = pair(input_size if _is_int(input_size) else tuple(input_size)[-2:], "input_size")
    rows = [RFLayer("", "input", n, (1, 1), (1, 1), (0.0, 0.0))]
    state = {"n": n, "j": (1, 1), "r": (1, 1), "start": (0.0, 0.0), "flat": False}

    def walk(prefix: str, m: nn.Module) -> None:
        children = list(m.named_children())
        # A Sequential runs its children in order; a module with exactly one child (the book's
        # and the zoo's models keep everything in `self.net`) is taken to run just that child.
        if isinstance(m, nn.Sequential) or (len(children) == 1 and not hasattr(m, "kernel_size")):
            for child_name, child in children:
                walk(f"{prefix}.{child_name}" if prefix else child_name, child)
            return
        kind = type(m).__name__
        # After a Flatten or global pool every output already sees the whole input.
        geo = None if state["flat"] else _layer_geometry(prefix, m, state["n"])
        if geo is not None:
            n_new, j_new, r_new, st_new = [], [], [], []
            for a, (k, s, d, pb, pa, ceil) in enumerate(geo):
                e = d * (k - 1) + 1
                n_new.append(_out_size(state["n"][a], k, s, d, pb, pa, ceil,
                                       f"receptive_field: {prefix} ({kind})"))
                j_new.append(state["j"][a] * s)
                r_new.append(state["r"][a] + (e - 1) * state["j"][a])
                st_new.append(state["start"][a] + ((e - 1) / 2 - pb) * state["j"][a])
            state.update(n=tuple(n_new), j=tuple(j_new), r=tuple(r_new), start=tuple(st_new))
            if state["n"] == (1, 1) and isinstance(m, (nn.Flatten, nn.AdaptiveAvgPool2d,
                                                       nn.AdaptiveMaxPool2d)):
                state["flat"] = True
        rows.append(RFLayer(prefix, kind, state["n"], state["j"], state["r"], state["start"]))

    walk("", model)
    return ReceptiveField(rows)


# --- the output shape of a chain of layers, without running it ----------------------------------


def chain_output_shape(module: nn.Module, shape: Sequence[int]) -> tuple[int, ...] | None:
    """Output shape (no batch axis) of `module` for inputs of `shape` (C, H, W), by the rules above.

    For nn.Sequential chains of torch's Conv2d, MaxPool2d, AvgPool2d, adaptive pools, Flatten,
    Linear and shape-keeping layers (activations, batch norm, dropout). None when the chain holds
    anything else (a branching block, a custom module): run it on the meta device then. An input
    too small for a kernel raises ShapeError, as torch raises there.
    """
    out: tuple[int, ...] | None = tuple(int(s) for s in shape)
    for m in (module if isinstance(module, nn.Sequential) else [module]):
        if out is None:
            return None
        if isinstance(m, nn.Sequential):
            out = chain_output_shape(m, out)
        else:
            out = _layer_output_shape(m, out)
    return out


def _layer_output_shape(m: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    kind, image = type(m), len(shape) == 3
    if isinstance(m, nn.modules.lazy.LazyModuleMixin):
        return None
    if kind is nn.Conv2d and image and m.padding_mode == "zeros" and shape[0] == m.in_channels:
        k, s, d = m.kernel_size, m.stride, m.dilation
        pads = conv_padding(m.padding, k, s, d, "conv2d")
        return (m.out_channels, *conv_output_hw(shape[1:], k, s, pads, d, "conv2d"))
    if kind in (nn.MaxPool2d, nn.AvgPool2d) and image:
        k = pair(m.kernel_size, "kernel_size")
        s = k if m.stride is None else pair(m.stride, "stride")
        d = pair(getattr(m, "dilation", 1), "dilation")
        p = pair(m.padding, "padding", minimum=0)
        return (shape[0], *pool_output_hw(shape[1:], k, s, p, d, m.ceil_mode, kind.__name__))
    if kind in (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d) and image:
        size = m.output_size
        size = (size, size) if isinstance(size, int) else tuple(size)
        return (shape[0], *(n if o is None else o for o, n in zip(size, shape[1:])))
    if kind is nn.Flatten and m.start_dim == 1 and m.end_dim == -1:
        n = 1
        for s in shape:
            n *= s
        return (n,)
    if kind is nn.Linear and shape == (m.in_features,):
        return (m.out_features,)
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
        ok = len(shape) == (3 if kind is nn.BatchNorm2d else 1) and shape[0] == m.num_features
        return shape if ok else None
    if kind in _SHAPE_KEEPING or (kind.__module__ == "torch.nn.modules.activation"
                                  and kind not in (nn.GLU, nn.PReLU, nn.MultiheadAttention)):
        return shape  # activations, dropout, identity: the shape goes through unchanged
    return None


_SHAPE_KEEPING = (nn.Identity, nn.Dropout, nn.Dropout2d, nn.AlphaDropout)
