"""Chapter 7's operations from scratch on plain tensors: correlation, conv via im2col, pooling.

Gradients come from autograd through the construction the book describes, with one exception
made for speed: im2col's backward (col2im) is written by hand, as kh*kw in-place strided adds, and
is itself differentiable, so second derivatives still work. tests/test_ops.py checks values and
gradients against torch.nn.functional in float64. Shape rules and the receptive-field calculator
live in cnnlab/shapes.py and are re-exported here, so `cnnlab.ops` is the one place to look.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from cnnlab.errors import ConfigError, ShapeError
from cnnlab.shapes import (
    IntOrPair,
    ReceptiveField,
    RFLayer,
    conv2d_output_shape,
    conv_output_hw,
    conv_padding,
    pair,
    pool2d_output_shape,
    pool_output_hw,
    receptive_field,
)

__all__ = [
    "corr2d",
    "corr2d_loop",
    "corr2d_multi_in",
    "corr2d_multi_in_out",
    "corr2d_multi_in_out_1x1",
    "conv2d",
    "conv_transpose2d",
    "pool2d",
    "pad2d",
    "conv2d_output_shape",
    "pool2d_output_shape",
    "receptive_field",
    "ReceptiveField",
    "RFLayer",
]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
POOL_MODES = ("max", "avg", "min")


# --- 7.2 and 7.4: cross-correlation, single and multi-channel ------------------------------------


def corr2d_loop(X: Tensor, K: Tensor) -> Tensor:
    """The book's teaching version of 2-D cross-correlation: a Python double loop (slow)."""
    _check_corr_shapes(X, K, "corr2d_loop")
    h, w = K.shape
    Y = torch.zeros((X.shape[0] - h + 1, X.shape[1] - w + 1), dtype=X.dtype, device=X.device)
    for i in range(Y.shape[0]):
        for j in range(Y.shape[1]):
            Y[i, j] = (X[i : i + h, j : j + w] * K).sum()
    return Y


def corr2d(X: Tensor, K: Tensor) -> Tensor:
    """2-D cross-correlation of X (..., H, W) with K (..., kh, kw); leading dims broadcast."""
    _check_corr_shapes(X, K, "corr2d", batched=True)
    kh, kw = K.shape[-2:]
    Ho, Wo = X.shape[-2] - kh + 1, X.shape[-1] - kw + 1
    # Loop over the kh*kw kernel taps instead of the Ho*Wo output pixels: each tap is one
    # whole-image multiply-add on a shifted view, so a 3x3 kernel costs 9 vectorized passes.
    Y = None
    for i in range(kh):
        for j in range(kw):
            term = K[..., i, j, None, None] * X[..., i : i + Ho, j : j + Wo]  # (..., Ho, Wo)
            Y = term if Y is None else Y + term
    return Y


def corr2d_multi_in(X: Tensor, K: Tensor) -> Tensor:
    """Multi-input-channel correlation: X (..., Ci, H, W), K (Ci, kh, kw) -> (..., Ho, Wo)."""
    if X.dim() < 3 or K.dim() != 3 or X.shape[-3] != K.shape[0]:
        raise ShapeError(
            f"corr2d_multi_in: X {tuple(X.shape)} must be (..., Ci, H, W) and K {tuple(K.shape)} "
            "(Ci, kh, kw) with the same Ci"
        )
    # Correlate channel by channel, then add the channels up (section 7.4.1).
    return corr2d(X, K).sum(-3)


def corr2d_multi_in_out(X: Tensor, K: Tensor) -> Tensor:
    """Multi-in/out correlation: X (..., Ci, H, W), K (Co, Ci, kh, kw) -> (..., Co, Ho, Wo)."""
    if X.dim() < 3 or K.dim() != 4 or X.shape[-3] != K.shape[1]:
        raise ShapeError(
            f"corr2d_multi_in_out: X {tuple(X.shape)} must be (..., Ci, H, W) and K "
            f"{tuple(K.shape)} (Co, Ci, kh, kw) with the same Ci"
        )
    # One multi-input correlation per output channel (section 7.4.2), all at once by broadcasting.
    return corr2d(X.unsqueeze(-4), K).sum(-3)  # (..., Co, Ci, Ho, Wo) -> (..., Co, Ho, Wo)


def corr2d_multi_in_out_1x1(X: Tensor, K: Tensor) -> Tensor:
    """1x1 convolution as a matmul: X (..., Ci, H, W), K (Co, Ci, 1, 1) -> (..., Co, H, W)."""
    if X.dim() < 3 or K.dim() != 4 or K.shape[-2:] != (1, 1) or X.shape[-3] != K.shape[1]:
        raise ShapeError(
            f"corr2d_multi_in_out_1x1: X {tuple(X.shape)} must be (..., Ci, H, W) and K "
            f"{tuple(K.shape)} (Co, Ci, 1, 1) with the same Ci"
        )
    *lead, c_i, h, w = X.shape
    c_o = K.shape[0]
    # Every pixel is an independent Ci-vector, so the layer is a fully connected layer applied
    # per pixel (section 7.4.3): (Co, Ci) @ (..., Ci, H*W).
    Y = K.reshape(c_o, c_i) @ X.reshape(*lead, c_i, h * w)  # (..., Co, H*W)
    return Y.reshape(*lead, c_o, h, w)


def _check_corr_shapes(X: Tensor, K: Tensor, fn: str, batched: bool = False) -> None:
    ok_dims = (X.dim() >= 2 and K.dim() >= 2) if batched else (X.dim() == 2 and K.dim() == 2)
    if not ok_dims:
        want = "(..., H, W) and (..., kh, kw)" if batched else "2-D (H, W) and (kh, kw)"
        raise ShapeError(f"{fn}: X {tuple(X.shape)} and K {tuple(K.shape)} must be {want}")
    if K.shape[-2] > X.shape[-2] or K.shape[-1] > X.shape[-1]:
        raise ShapeError(
            f"{fn}: kernel {K.shape[-2]}x{K.shape[-1]} is larger than the input "
            f"{X.shape[-2]}x{X.shape[-1]}; pad the input or use a smaller kernel"
        )


# --- 7.3: padding -----------------------------------------------------------------------------


def _pad_index(n: int, before: int, after: int, mode: str, fn: str) -> Tensor:
    """Source row/column of each padded position for reflect/replicate/circular padding."""
    if mode == "reflect" and (before >= n or after >= n):
        raise ShapeError(
            f"{fn}: reflect padding ({before}, {after}) must be smaller than the input size {n}"
        )
    i = torch.arange(-before, n + after)
    if mode == "reflect":  # mirror about the edge pixel, which is not repeated
        i = i.abs()
        i = torch.where(i > n - 1, 2 * (n - 1) - i, i)
    elif mode == "replicate":  # repeat the edge pixel
        i = i.clamp(0, n - 1)
    else:  # circular: wrap around, as if the image tiled the plane
        i = i.remainder(n)
    return i


def pad2d(
    X: Tensor, pads: tuple[int, int, int, int], mode: str = "zeros", value: float = 0.0,
    fn: str = "pad2d",
) -> Tensor:
    """Pad (top, bottom, left, right) the last two dims; negative amounts crop (zeros mode only)."""
    top, bottom, left, right = pads
    if mode == "zeros":
        H, W = X.shape[-2:]
        # Crop first (conv_transpose2d's padding can exceed the kernel's reach), then pad.
        X = X[..., max(-top, 0) : H - max(-bottom, 0), max(-left, 0) : W - max(-right, 0)]
        top, bottom, left, right = (max(p, 0) for p in pads)
        if top == bottom == left == right == 0:
            return X
        h, w = X.shape[-2:]
        out = X.new_full((*X.shape[:-2], top + h + bottom, left + w + right), value)
        out[..., top : top + h, left : left + w] = X  # autograd routes the gradient back to X
        return out
    if mode not in PADDING_MODES:
        raise ConfigError(f"{fn}: padding_mode {mode!r} is not one of {PADDING_MODES}")
    if min(pads) < 0:
        raise ConfigError(f"{fn}: negative padding {pads} is only allowed with zeros")
    rows = _pad_index(X.shape[-2], top, bottom, mode, fn).to(X.device)
    cols = _pad_index(X.shape[-1], left, right, mode, fn).to(X.device)
    return X.index_select(-2, rows).index_select(-1, cols)


def _windows(Xp: Tensor, k: tuple[int, int], s: tuple[int, int], d: tuple[int, int]) -> Tensor:
    """All kxk windows of Xp (..., Hp, Wp) as a strided view (..., Ho, Wo, kh, kw); no copy."""
    ekh, ekw = d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1  # dilated ("effective") kernel
    win = Xp.unfold(-2, ekh, s[0]).unfold(-2, ekw, s[1])  # (..., Ho, Wo, ekh, ekw)
    if d != (1, 1):
        win = win[..., :: d[0], :: d[1]]  # keep every d-th tap: (..., Ho, Wo, kh, kw)
    return win


# --- 7.3 and 7.4: convolution as im2col + one matrix multiply -----------------------------------


class _Im2Col(torch.autograd.Function):
    """(N, C, Hp, Wp) -> (C, kh, kw, N, Ho, Wo): each tap's view of every window, copied once."""

    @staticmethod
    def forward(ctx, Xp: Tensor, k: tuple, s: tuple, d: tuple, out: tuple) -> Tensor:
        ctx.geometry = (tuple(Xp.shape), k, s, d, out)
        return _windows(Xp, k, s, d).permute(1, 4, 5, 0, 2, 3).contiguous()

    @staticmethod
    def backward(ctx, grad: Tensor):
        shape, k, s, d, out = ctx.geometry
        return _Col2Im.apply(grad, shape, k, s, d, out), None, None, None, None


class _Col2Im(torch.autograd.Function):
    """The adjoint of _Im2Col: add each tap's values back onto the pixels they were read from.

    Autograd would get there through two nested unfold backwards, each allocating and zeroing
    a full-size buffer; kh*kw strided adds into one buffer do the same work with less traffic.
    """

    @staticmethod
    def forward(ctx, cols: Tensor, shape: tuple, k: tuple, s: tuple, d: tuple, out: tuple):
        ctx.geometry = (k, s, d, out)
        N, C, Hp, Wp = shape
        (kh, kw), (Ho, Wo) = k, out
        acc = cols.new_zeros(C, N, Hp, Wp)  # (C, N) first, matching cols, so the adds stream
        for i in range(kh):
            for j in range(kw):
                r, c = i * d[0], j * d[1]  # where tap (i, j) of the first window sits
                rows = slice(r, r + s[0] * (Ho - 1) + 1, s[0])  # ... and of every later one
                columns = slice(c, c + s[1] * (Wo - 1) + 1, s[1])
                acc[:, :, rows, columns] += cols[:, i, j]  # (C, N, Ho, Wo)
        return acc.permute(1, 0, 2, 3)  # (N, C, Hp, Wp)

    @staticmethod
    def backward(ctx, grad: Tensor):
        k, s, d, out = ctx.geometry
        return _Im2Col.apply(grad, k, s, d, out), None, None, None, None, None


def _batched(X: Tensor, weight: Tensor, fn: str, weight_layout: str) -> tuple[Tensor, bool]:
    """X as (N, C, H, W) and whether it came unbatched; ShapeError unless X and weight fit."""
    unbatched = X.dim() == 3
    if unbatched:
        X = X.unsqueeze(0)
    if X.dim() != 4 or weight.dim() != 4:
        raise ShapeError(
            f"{fn}: input {tuple(X.shape)} must be (N, C, H, W) or (C, H, W) and weight "
            f"{tuple(weight.shape)} {weight_layout}"
        )
    return X, unbatched


def conv2d(
    X: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair | str = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
) -> Tensor:
    """2-D convolution as torch defines it, via unfold + matmul; X (N, C, H, W) or (C, H, W)."""
    X, unbatched = _batched(X, weight, "conv2d", "(C_out, C_in/groups, kh, kw)")
    N, C, H, W = X.shape
    C_out, C_g, kh, kw = weight.shape
    if groups < 1 or C % groups or C_out % groups:
        raise ShapeError(
            f"conv2d: groups={groups} must divide both input channels {C} and output channels "
            f"{C_out}"
        )
    if C_g * groups != C:
        raise ShapeError(
            f"conv2d: input has {C} channels but weight {tuple(weight.shape)} expects "
            f"{C_g} x groups={groups} = {C_g * groups}"
        )
    if bias is not None and bias.shape != (C_out,):
        raise ShapeError(f"conv2d: bias {tuple(bias.shape)} must be ({C_out},)")
    s, d = pair(stride, "stride"), pair(dilation, "dilation")
    pads = conv_padding(padding, (kh, kw), s, d, "conv2d")  # (top, bottom, left, right)
    Ho, Wo = conv_output_hw((H, W), (kh, kw), s, pads, d, "conv2d")

    Xp = pad2d(X, pads, padding_mode, fn="conv2d")  # (N, C, Hp, Wp)
    # im2col, laid out so that the whole batch is ONE matrix multiply per group:
    # rows = (channel, tap), columns = (image, output pixel).
    cols = _Im2Col.apply(Xp, (kh, kw), s, d, (Ho, Wo))  # (C, kh, kw, N, Ho, Wo)
    cols = cols.reshape(groups, C_g * kh * kw, N * Ho * Wo)  # a view: C is the leading dim
    Wm = weight.reshape(groups, C_out // groups, C_g * kh * kw)  # (G, C_out/G, C_g*kh*kw)
    Y = torch.matmul(Wm, cols)  # (G, C_out/G, N*Ho*Wo)
    Y = Y.reshape(C_out, N, Ho, Wo)
    if bias is not None:
        Y = Y + bias.view(C_out, 1, 1, 1)
    # Back to NCHW; contiguous so callers can .view() it exactly like F.conv2d's output.
    Y = Y.permute(1, 0, 2, 3).contiguous()  # (N, C_out, Ho, Wo)
    return Y[0] if unbatched else Y


def conv_transpose2d(
    X: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    output_padding: IntOrPair = 0,
    groups: int = 1,
    dilation: IntOrPair = 1,
) -> Tensor:
    """Transposed convolution (torch semantics, weight (C_in, C_out/groups, kh, kw)) via conv2d."""
    X, unbatched = _batched(X, weight, "conv_transpose2d", "(C_in, C_out/groups, kh, kw)")
    N, C, H, W = X.shape
    C_in, C_og, kh, kw = weight.shape
    if C != C_in or groups < 1 or C_in % groups:
        raise ShapeError(
            f"conv_transpose2d: input has {C} channels, weight {tuple(weight.shape)} expects "
            f"{C_in}, and groups={groups} must divide it"
        )
    s, d = pair(stride, "stride"), pair(dilation, "dilation")
    p = pair(padding, "padding", minimum=0)
    op = pair(output_padding, "output_padding", minimum=0)
    for a in range(2):
        if op[a] >= max(s[a], d[a]):
            raise ConfigError(
                f"conv_transpose2d: output_padding {op} must be smaller than stride {s} or "
                f"dilation {d}"
            )
    out = [(n - 1) * s[a] - 2 * p[a] + d[a] * (k - 1) + op[a] + 1
           for a, (n, k) in enumerate(((H, kh), (W, kw)))]
    if min(out) < 1:
        raise ShapeError(
            f"conv_transpose2d: output would be {out[0]}x{out[1]} for input {H}x{W}, kernel "
            f"{kh}x{kw}, stride {s}, padding {p}, dilation {d}; reduce the padding"
        )
    # 1. "Stride 1/s" (exercise 7.3.6): spread the input out, s-1 zeros between neighbours.
    Z = X.new_zeros(N, C, (H - 1) * s[0] + 1, (W - 1) * s[1] + 1)
    Z[:, :, :: s[0], :: s[1]] = X
    # 2. Pad so that every input pixel meets every kernel tap; a padding p of the transposed
    #    conv crops instead, and output_padding adds rows/columns at the bottom/right only.
    ph, pw = d[0] * (kh - 1) - p[0], d[1] * (kw - 1) - p[1]
    Zp = pad2d(Z, (ph, ph + op[0], pw, pw + op[1]), fn="conv_transpose2d")
    # 3. An ordinary stride-1 convolution with each group's kernel flipped and in/out swapped.
    G = groups
    Wt = weight.reshape(G, C_in // G, C_og, kh, kw).transpose(1, 2)  # (G, C_out/G, C_in/G, kh, kw)
    Wt = Wt.reshape(G * C_og, C_in // G, kh, kw).flip(-2, -1)
    Y = conv2d(Zp, Wt, bias, stride=1, padding=0, dilation=d, groups=G)
    return Y[0] if unbatched else Y


# --- 7.5: pooling -------------------------------------------------------------------------------


def pool2d(
    X: Tensor,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    mode: str = "max",
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    dilation: IntOrPair = 1,
) -> Tensor:
    """Max, average or min pooling of X (N, C, H, W) or (C, H, W) with torch's window rules."""
    if mode not in POOL_MODES:
        raise ConfigError(f"pool2d: mode {mode!r} is not one of {POOL_MODES}")
    if X.dim() not in (3, 4):
        raise ShapeError(f"pool2d: input {tuple(X.shape)} must be (N, C, H, W) or (C, H, W)")
    k = pair(kernel_size, "kernel_size")
    s = k if stride is None else pair(stride, "stride")
    p, d = pair(padding, "padding", minimum=0), pair(dilation, "dilation")
    if mode == "avg" and d != (1, 1):
        raise ConfigError("pool2d: average pooling has no dilation (as in torch); use dilation=1")
    H, W = X.shape[-2:]
    Ho, Wo = pool_output_hw((H, W), k, s, p, d, ceil_mode, "pool2d")  # checks padding <= k/2
    # ceil_mode may let the last window hang past the padded input: pad that overhang too.
    extra = [max(0, (o - 1) * s[a] + d[a] * (k[a] - 1) + 1 - (n + 2 * p[a]))
             for a, (o, n) in enumerate(((Ho, H), (Wo, W)))]
    # Padding must never win: -inf for max, +inf for min, 0 for avg (then divided properly).
    fill = {"max": -math.inf, "min": math.inf, "avg": 0.0}[mode]
    Xp = pad2d(X, (p[0], p[0] + extra[0], p[1], p[1] + extra[1]), value=fill, fn="pool2d")
    win = _windows(Xp, k, s, d)  # (..., Ho, Wo, kh, kw)
    if mode == "avg":
        return win.sum((-2, -1)) / _avg_divisor(X, (H, W), (Ho, Wo), k, s, p, count_include_pad)
    # max/min over dim (not amax) so the gradient goes to one winner per window, as in torch.
    flat = win.flatten(-2)  # (..., Ho, Wo, kh*kw)
    return flat.max(-1).values if mode == "max" else flat.min(-1).values


def _avg_divisor(
    X: Tensor, size: tuple[int, int], out: tuple[int, int], k: tuple[int, int],
    s: tuple[int, int], p: tuple[int, int], count_include_pad: bool,
) -> Tensor:
    """How many elements each average-pooling window counts, as torch's avg_pool2d counts them."""
    counts = []
    for n, o, ka, sa, pa in zip(size, out, k, s, p):
        start = torch.arange(o, device=X.device) * sa - pa
        end = start + ka
        if count_include_pad:  # padding counts, but not the ceil_mode overhang past it
            c = end.clamp(max=n + pa) - start
        else:
            c = end.clamp(max=n) - start.clamp(min=0)
        counts.append(c.to(X.dtype))
    return counts[0][:, None] * counts[1][None, :]  # (Ho, Wo)
