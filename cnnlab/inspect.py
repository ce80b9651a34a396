"""Look inside a network: its filters, what each conv stage makes of an image, and where it looks
when it decides (Grad-CAM, saliency).

The functions take any `nn.Module` (a zoo model, a d2l drop-in model, your own) and return arrays
or matplotlib Figures, so a notebook shows them inline; cnnlab.inspect_page turns them into
inspect.html and the report's "What the network sees", and cnnlab.edgedemo is chapter 7.2's
edge detector. Layers are named as `cnnlab summary` names them: module paths such as "net.0" or
"net.b2.0.conv1".

Attribution comes from Captum (the PyTorch project's attribution library) rather than hand-written
Grad-CAM: it is pure Python on top of torch (no compiled parts, ~2 MB, installs in a second),
works on the CPU and on every device torch does, and its LayerGradCam and Saliency are tested
against the papers' definitions by their maintainers. So it is a core dependency.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from cnnlab.errors import ConfigError, ShapeError

__all__ = [
    "Stage", "colorize", "conv_layers", "conv_stages", "feature_maps", "filters", "find_layer",
    "gradcam", "overlay", "plot_attributions", "plot_feature_maps", "plot_filters", "saliency",
]

MAX_FILTERS_OUT = 64  # output channels drawn by plot_filters (the first ones)
MAX_FILTERS_IN = 8  # input channels drawn per output channel
MAX_MAPS = 32  # channels drawn per stage in the feature maps (the strongest ones)

# --- layers, as `cnnlab summary` names them ----------------------------------------------------


def _layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if name}


def _is_conv(m: nn.Module) -> bool:
    return isinstance(m, (nn.Conv2d, nn.LazyConv2d))


def conv_layers(model: nn.Module) -> list[str]:
    """Names of the model's 2-D convolutions, (as `cnnlab summary` names them)."""
    return [name for name, m in _layers(model).items() if _is_conv(m)]


def find_layer(model: nn.Module, name: str, conv: bool = False) -> nn.Module:
    """The module called `name`; ConfigError naming the closest names when there is none."""
    from cnnlab.errors import suggest

    layers = _layers(model)
    if name not in layers:
        names = conv_layers(model) if conv else list(layers)
        hint = suggest(name, names) or ("; its conv layers are " + ", ".join(conv_layers(model)[:8])
                                        + ("..." if len(conv_layers(model)) > 8 else ""))
        raise ConfigError(f"{type(model).__name__} has no layer {name!r}{hint} "
                          "(`cnnlab summary MODEL` lists every layer name)")
    m = layers[name]
    if conv and not _is_conv(m):
        inside = [n for n in conv_layers(model) if n.startswith(name + ".")]
        hint = f"; the convs inside it are {', '.join(inside[:4])}" if inside else ""
        raise ConfigError(f"layer {name!r} is a {type(m).__name__}, not a Conv2d: it has no "
                          f"filters to draw{hint}")
    return m


# --- tracing one forward pass ------------------------------------------------------------------

@dataclass
class _Call:
    name: str
    module: nn.Module
    output: Any  # the module's output on the traced input (a tensor for every layer that matters)


def _body(model: nn.Module) -> nn.Module:
    """The module that does the work. Wrappers of one child are looked through (the zoo's input
    check, a test-time average over the image and its mirror, d2l's `self.net(X)`), so every
    picture shows one pass over the image as it is."""
    node = model
    while not isinstance(node, nn.Sequential):
        kids = list(node.children())
        if len(kids) != 1:
            break
        node = kids[0]
    return node


def _trace(model: nn.Module, x: torch.Tensor) -> tuple[dict[int, _Call], torch.Tensor]:
    """Every module's first output on `x` (by id(module)), and the output of the model's body."""
    calls: dict[int, _Call] = {}
    names = {id(m): n for n, m in model.named_modules()}  # named from the model, as summary does
    body = _body(model)

    def hook(m: nn.Module, _inp: Any, out: Any) -> None:
        calls.setdefault(id(m), _Call(names.get(id(m), "?"), m, out))

    handles = [m.register_forward_hook(hook) for m in body.modules()]
    try:
        with torch.no_grad():
            y = body(x)
    finally:
        for h in handles:
            h.remove()
    return calls, y


def _spatial(t: Any) -> bool:
    return isinstance(t, torch.Tensor) and t.dim() == 4


@dataclass(frozen=True)
class Stage:
    """A convolutional stage: a block holding convolutions, and the layers that follow it up to the
    next one (activation, normalization, pooling). Its output is what the next stage sees."""

    names: tuple[str, ...]  # its modules, in order, as `cnnlab summary` names them
    types: tuple[str, ...]  # their classes
    shape: tuple[int, int, int]  # (C, H, W) of its output
    cam_layer: str  # where Grad-CAM looks: its output, before a trailing pooling layer

    @property
    def name(self) -> str:
        """The first module of the stage."""
        return self.names[0]

    @property
    def output(self) -> str:
        """The module whose output the stage shows."""
        return self.names[-1]

    @property
    def label(self) -> str:
        """'net.0 … net.2 (Conv2d, ReLU, MaxPool2d) → 6×14×14'."""
        span = self.names[0] if len(self.names) == 1 else f"{self.names[0]} … {self.names[-1]}"
        return f"{span} ({', '.join(self.types)}) → {_shape(self.shape)}"


def _shape(s: Sequence[int]) -> str:
    return "×".join(str(int(v)) for v in s)


_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d)


def _stages_from(calls: dict[int, _Call], model: nn.Module) -> list[Stage]:
    """The conv stages of a traced model (see Stage)."""
    node = _body(model)
    groups: list[list[_Call]] = []
    if isinstance(node, nn.Sequential):
        _collect(node, calls, groups)
    if not groups:  # not a chain of modules: every convolution is a stage of its own
        order = list(calls.values())  # hooks fire in the order the modules finish
        groups = [[c] for c in order if _is_conv(c.module) and _spatial(c.output)]
    stages = []
    for g in groups:
        stages.append(Stage(tuple(c.name for c in g), tuple(type(c.module).__name__ for c in g),
                            tuple(int(v) for v in g[-1].output.shape[1:]),
                            _cam_layer(g, calls)))
    return stages


def _cam_layer(group: list[_Call], calls: dict[int, _Call]) -> str:
    """Where Grad-CAM looks in a stage: its output before a trailing pooling layer, inside a
    block too (VGG's last ReLU, not the pooled map, as in the Grad-CAM paper)."""
    cam = list(group)
    while True:
        if len(cam) > 1 and isinstance(cam[-1].module, _POOLS):
            cam.pop()
            continue
        last = cam[-1].module
        kids = [calls[id(k)] for k in last.children() if id(k) in calls and _spatial(
            calls[id(k)].output)] if isinstance(last, nn.Sequential) else []
        if len(kids) > 1 and isinstance(kids[-1].module, _POOLS):
            cam = kids[:-1]  # a block ending in its pooling: step inside
            continue
        return cam[-1].name


def _collect(seq: nn.Sequential, calls: dict[int, _Call], groups: list[list[_Call]]) -> bool:
    """Group a Sequential's children into stages; False once the head (no 4-D output) starts."""
    for child in seq.children():
        rec = calls.get(id(child))
        if rec is None:
            continue  # never ran
        has_conv = any(_is_conv(m) for m in child.modules())
        if _spatial(rec.output) and has_conv:
            groups.append([rec])
        elif _spatial(rec.output):
            if groups and rec.output.shape[-2:].numel() > 1:
                groups[-1].append(rec)  # activation, norm, pooling: the end of the stage
        elif has_conv and isinstance(child, nn.Sequential):
            return _collect(child, calls, groups)  # stages, then the head (GoogLeNet's last block)
        else:
            return False
    return True


def _as_batch(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4:
        raise ShapeError(f"give one image (C, H, W) or a batch (N, C, H, W), got {tuple(x.shape)}")
    check = getattr(model, "check_input", None)
    if callable(check):  # the zoo's own check says what is wrong with a shape, and what to do
        check(x)
    p = next(iter(model.parameters()), None)
    if p is not None and not isinstance(p, nn.parameter.UninitializedParameter):
        x = x.to(p.device)
    return x


def conv_stages(model: nn.Module, x: torch.Tensor) -> list[Stage]:
    """The model's conv stages, found by running `x` (one image or a batch) through it."""
    calls, _ = _trace(model, _as_batch(model, x))
    return _stages_from(calls, model)


def feature_maps(model: nn.Module, x: torch.Tensor) -> list[tuple[Stage, np.ndarray]]:
    """Each conv stage and its output (C, H, W) for one image x (C, H, W) or (1, C, H, W)."""
    x = _as_batch(model, x)[:1]
    calls, _ = _trace(model, x)
    by_name = {c.name: c for c in calls.values()}
    return [(s, by_name[s.output].output[0].float().cpu().numpy())
            for s in _stages_from(calls, model)]


# --- filters -----------------------------------------------------------------------------------

def filters(model: nn.Module, layer: str | None = None) -> tuple[str, np.ndarray]:
    """(name, weights (out, in/groups, kh, kw)) of conv `layer`, by default the first conv."""
    names = conv_layers(model)
    if not names:
        raise ConfigError(f"{type(model).__name__} has no Conv2d layer: no filters to draw")
    name = layer or names[0]
    m = find_layer(model, name, conv=True)
    if isinstance(m.weight, nn.parameter.UninitializedParameter):
        raise ConfigError(f"layer {name!r} is a Lazy conv that has not seen an input yet: run one "
                          "batch through the model first")
    return name, m.weight.detach().float().cpu().numpy()


def _mosaic(tiles: np.ndarray, ncols: int, gap: int = 1) -> np.ndarray:
    """(N, h, w) tiles -> one (rows*(h+gap)-gap, ncols*(w+gap)-gap) array, NaN between tiles."""
    n, h, w = tiles.shape
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    out = np.full((nrows * (h + gap) - gap, ncols * (w + gap) - gap), np.nan, dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, ncols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = tiles[i]
    return out


def _filter_mosaic(w: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Weights (out, in, kh, kw) -> (mosaic, outs shown, ins shown): one block per output channel
    (its input channels side by side), blocks left to right then down."""
    o, i = min(len(w), MAX_FILTERS_OUT), min(w.shape[1], MAX_FILTERS_IN)
    w = w[:o, :i]
    kh, kw = w.shape[2:]
    blocks = np.stack([_mosaic(b, ncols=i) for b in w])  # (o, kh, i*(kw+1)-1)
    bh, bw = blocks.shape[1:]
    # One row up to 8 blocks, else about three times as wide as tall, in full rows if it can.
    target = math.sqrt(3.0 * o * bh / bw)
    fits = [d for d in range(1, o + 1) if o % d == 0 and target / 2 <= d <= target * 2]
    ncols = o if o <= 8 else min(fits, key=lambda d: abs(d - target)) if fits else round(target)
    gap = 1 if i == 1 else max(2, kw // 2)
    return _mosaic(blocks, ncols, gap=gap), o, i


def _filters_caption(name: str, m: nn.Module, w: np.ndarray, o: int, i: int) -> str:
    k = f"{w.shape[2]}×{w.shape[3]}"
    text = f"{name} ({type(m).__name__}): {w.shape[0]} filters of {w.shape[1]}×{k}"
    if o < w.shape[0] or i < w.shape[1]:
        text += f" (first {o} × {i} channels shown)"
    return text


def plot_filters(model: nn.Module, layer: str | None = None) -> Figure:
    """The kernels of a conv (default: the first), one tile per output and input channel, on one
    symmetric colour scale: red is positive, blue negative, white zero."""
    name, w = filters(model, layer)
    mos, o, i = _filter_mosaic(w)
    vmax = float(np.abs(w[:o, :i]).max()) or 1.0
    h, wd = mos.shape
    fig = Figure(figsize=(min(9.0, max(4.0, 0.16 * wd + 1.6)), min(9.0, 0.16 * h + 1.1)))
    ax = fig.subplots()
    cmap = _cmap("RdBu_r")
    im = ax.imshow(mos, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label="weight")
    ax.set_title(_filters_caption(name, find_layer(model, name), w, o, i), fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    how = ("one tile per output channel" if i == 1 else
           "one block per output channel, one tile per input channel inside it")
    ax.set_xlabel(how + "; shared colour scale", fontsize=8.5)
    return fig


def _cmap(name: str) -> Any:
    import matplotlib

    # The gaps between tiles (NaN) in a colour no value has.
    return matplotlib.colormaps[name].with_extremes(bad="#f0f2f6" if name == "magma"
                                                    else "#9ea4ae")


# --- feature maps ------------------------------------------------------------------------------

def _strongest(a: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """The k channels of (C, H, W) with the largest mean |activation|, strongest first."""
    if len(a) <= k:
        return a, len(a)
    order = np.argsort(-np.abs(a).mean(axis=(1, 2)), kind="stable")[:k]
    return a[order], k


def _scale(a: np.ndarray) -> tuple[str, float, float]:
    """Colour map and range for one stage: diverging when it has negative values."""
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if lo < 0:
        m = max(-lo, hi) or 1.0
        return "RdBu_r", -m, m
    return "magma", 0.0, hi or 1.0


def _image_rgb(img: np.ndarray) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W) gray or (H, W, 3) RGB for imshow."""
    img = np.clip(np.asarray(img, dtype=np.float32), 0.0, 1.0)
    return img[0] if img.shape[0] == 1 else img[:3].transpose(1, 2, 0)


def _maps_caption(stage: Stage, shown: int) -> str:
    c = stage.shape[0]
    return stage.label + ("" if shown == c else f", strongest {shown} of {c} channels")


def plot_feature_maps(model: nn.Module, x: torch.Tensor, image: torch.Tensor | None = None,
                      title: str | None = None) -> Figure:
    """The input, then each conv stage's activations as a grid labelled with the stage's shape.

    x is what the model takes (normalized, resized); `image` is what to show as the input
    (default: x itself). Each stage has its own colour scale, shared by its channels.
    """
    maps = feature_maps(model, x)
    shown_image = image if image is not None else x
    show = shown_image.reshape(-1, *shown_image.shape[-3:])[0].float().cpu().numpy()
    rows = [("input " + _shape(show.shape), _image_rgb(show), None)]
    for stage, a in maps:
        a, shown = _strongest(a, MAX_MAPS)
        ncols = min(shown, 16)
        rows.append((_maps_caption(stage, shown), _mosaic(a, ncols), _scale(a)))
    heights = [min(3.0, max(1.0, 8.0 * r[1].shape[0] / r[1].shape[1])) for r in rows]
    heights[0] = 1.6
    fig = Figure(figsize=(8.0, sum(heights) + 0.45 * len(rows) + (0.4 if title else 0.1)))
    axes = fig.subplots(len(rows), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
    for ax, (label, arr, scale) in zip(axes, rows):
        if scale is None:
            ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1)
        else:
            name, lo, hi = scale
            ax.imshow(arr, cmap=_cmap(name), vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(label, fontsize=9.5, loc="left")
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    fig.set_layout_engine("constrained")
    return fig


# --- attribution (Captum) ----------------------------------------------------------------------

def _targets(model: nn.Module, x: torch.Tensor, target: Any) -> torch.Tensor:
    if target is None:
        with torch.no_grad():
            return _body(model)(x).argmax(dim=1)
    t = torch.as_tensor(target, device=x.device).long().reshape(-1)
    return t.expand(len(x)) if len(t) == 1 else t


def _unit(a: torch.Tensor) -> np.ndarray:
    """(N, H, W) -> each map scaled to [0, 1] by its own maximum (all zeros stay zero)."""
    a = a.detach().float().cpu()
    peak = a.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (a / peak).clamp(0, 1).numpy()


def default_cam_layer(model: nn.Module, x: torch.Tensor) -> str:
    """Where Grad-CAM looks by default: the output of the last conv stage."""
    stages = conv_stages(model, _as_batch(model, x)[:1])
    if not stages:
        raise ConfigError(f"{type(model).__name__} has no convolutional stage for Grad-CAM")
    return stages[-1].cam_layer


def gradcam(model: nn.Module, x: torch.Tensor, target: Any = None,
            layer: str | None = None) -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1] at the input's size, for class `target` (default: the
    predicted one), at `layer` (default: the last conv stage)."""
    from captum.attr import LayerAttribution, LayerGradCam

    x = _as_batch(model, x)
    name = layer or default_cam_layer(model, x)
    m = find_layer(model, name)
    t = _targets(model, x, target)
    with torch.enable_grad():
        cam = LayerGradCam(_body(model), m).attribute(x, target=t, relu_attributions=True)
    if cam.dim() != 4:
        raise ConfigError(f"layer {name!r} gives no image-shaped output (got {tuple(cam.shape)}); "
                          "pick a conv layer or block for Grad-CAM")
    cam = LayerAttribution.interpolate(cam.float(), tuple(x.shape[-2:]), "bilinear")  # (N,1,H,W)
    return _unit(cam[:, 0])


def saliency(model: nn.Module, x: torch.Tensor, target: Any = None) -> np.ndarray:
    """Input-gradient saliency (N, H, W) in [0, 1]: |d score / d pixel|, max over channels."""
    from captum.attr import Saliency

    x = _as_batch(model, x).detach().clone().requires_grad_(True)
    t = _targets(model, x, target)
    with torch.enable_grad():
        g = Saliency(_body(model)).attribute(x, target=t, abs=True)
    return _unit(g.amax(dim=1))


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """An (H, W, 3) RGB picture: the image (C, H, W) in gray, the map (H, W) over it in 'jet'."""
    import matplotlib

    img = _image_rgb(image)
    gray = img if img.ndim == 2 else img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    heat = matplotlib.colormaps["jet"](cam)[..., :3]
    a = alpha * np.clip(cam, 0, 1)[..., None] ** 0.5  # faint where the map is weak
    return np.clip((1 - a) * gray[..., None] + a * heat, 0, 1).astype(np.float32)


def plot_attributions(images: np.ndarray, cams: np.ndarray, sals: np.ndarray,
                      captions: Sequence[str], title: str | None = None) -> Figure:
    """One column per image: the image, its Grad-CAM overlay, its saliency."""
    n = len(images)
    fig = Figure(figsize=(max(3.2, 1.45 * n + 0.9), 5.0 + (0.3 if title else 0)))
    axes = fig.subplots(3, n, squeeze=False)
    for j in range(n):
        img = _image_rgb(images[j])
        axes[0, j].imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        axes[0, j].set_title(captions[j], fontsize=8)
        axes[1, j].imshow(overlay(images[j], cams[j]))
        axes[2, j].imshow(sals[j], cmap="magma", vmin=0, vmax=1)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    for ax, label in zip(axes[:, 0], ("image", "Grad-CAM", "saliency")):
        ax.set_ylabel(label, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.set_layout_engine("constrained")
    return fig


def colorize(a: np.ndarray, cmap: str, lo: float, hi: float) -> np.ndarray:
    """A 2-D array through a colour map to (H, W, 3); NaN (the gaps) is light gray."""
    rgb = _cmap(cmap)(np.ma.masked_invalid((a - lo) / ((hi - lo) or 1.0)))[..., :3]
    return rgb.astype(np.float32)
