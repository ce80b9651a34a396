"""Pictures a person looks at: training curves, image grids, confusion matrices, all saved as PNG.

Everything draws with matplotlib's Agg backend on its own Figure objects (no pyplot state), so it
works in a terminal, a log-only job, a thread or a notebook alike, and never opens a window.
Files are written atomically (temporary file, then rename) so a viewer that reloads `curves.png`
during a run never sees half a picture.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cnnlab.download import temp_sibling

__all__ = ["plot_curves", "save_image_grid", "plot_confusion", "save_figure"]


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 110, tight: bool = True) -> Path:
    """Write a figure to `path` as PNG atomically and return the path.

    tight=True crops to the drawn content (one extra draw); a figure laid out with fixed margins
    (`subplots_adjust`) already fits its canvas and saves faster with tight=False.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fd, tmp = temp_sibling(path)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def plot_curves(history: Sequence[dict], path: str | os.PathLike, title: str | None = None) -> Path:
    """Loss and accuracy per epoch, train and validation side by side; missing keys are skipped."""
    fig = Figure(figsize=(9, 3.4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
        for split, style in (("train", "-"), ("val", "--")):
            key = f"{split}_{metric}"
            pts = [(e, h[key]) for e, h in zip(epochs, history) if h.get(key) is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, style, marker="o", markersize=3, label=f"{split} {metric}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if metric == "acc" else "loss")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(frameon=False)
    if len(epochs) == 1:  # a single point: give the axis some room instead of a zero-width range
        for ax in (ax_loss, ax_acc):
            ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
    if title:
        fig.suptitle(title)
    # Fixed margins (room for each panel's tick labels and y label, so the right panel's label
    # never overlaps the left panel): one draw per save. Redrawn every epoch, a tight bbox or a
    # constrained layout would triple the cost (0.3 s instead of 0.1 s for a LeNet epoch of 3 s).
    fig.subplots_adjust(left=0.075, right=0.985, bottom=0.15, top=0.86 if title else 0.95,
                        wspace=0.28)
    return save_figure(fig, path, tight=False)


def _as_images(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """(N, H, W) or (N, C, H, W), uint8 or float in [0, 1] -> float (N, H, W) or (N, H, W, 3)."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    x = x.astype(np.float32)
    if x.ndim == 4:
        if x.shape[1] == 1:
            x = x[:, 0]
        elif x.shape[1] == 3:
            x = x.transpose(0, 2, 3, 1)
        else:
            raise ValueError(f"images must have 1 or 3 channels, got shape {x.shape}")
    if x.ndim != 3 and not (x.ndim == 4 and x.shape[-1] == 3):
        raise ValueError(f"images must be (N, H, W) or (N, C, H, W), got shape {x.shape}")
    return np.clip(x, 0.0, 1.0)


def save_image_grid(
    images: torch.Tensor | np.ndarray,
    titles: Sequence[str] | None,
    path: str | os.PathLike,
    ncols: int = 8,
    title_colors: Sequence[str] | None = None,
    scale: float = 1.3,
) -> Path:
    """A grid of images with an optional caption under each one (what `d2l.show_images` draws)."""
    x = _as_images(images)
    n = len(x)
    ncols = max(1, min(ncols, n))
    nrows = max(1, -(-n // ncols))
    lines = max((str(t).count("\n") + 1 for t in titles), default=0) if titles else 0
    title_h = 0.16 * lines + 0.06 if lines else 0.0  # inches for a caption of 8-pt lines
    pad = 0.04  # inches around the grid
    fig_w, fig_h = ncols * scale, nrows * (scale + title_h)
    fig = Figure(figsize=(fig_w, fig_h))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    # Fixed margins sized for the captions: one draw per save instead of a tight bbox's two.
    fig.subplots_adjust(left=pad / fig_w, right=1 - pad / fig_w, bottom=pad / fig_h,
                        top=1 - title_h / fig_h, wspace=0.08,
                        hspace=title_h / max(scale - 2 * pad, 0.1))
    for i, ax in enumerate(axes):
        ax.set_axis_off()
        if i >= n:
            continue
        ax.imshow(x[i], cmap="gray" if x[i].ndim == 2 else None, vmin=0.0, vmax=1.0)
        if titles is not None:
            color = title_colors[i] if title_colors is not None else "black"
            ax.set_title(str(titles[i]), fontsize=8, color=color)
    return save_figure(fig, path, tight=False)


def plot_confusion(
    matrix: torch.Tensor | np.ndarray, classes: Sequence[str], path: str | os.PathLike
) -> Path:
    """Confusion matrix (rows: true class, columns: predicted): counts, row-normalized shading."""
    m = matrix.detach().cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix)
    k = len(classes)
    if m.shape != (k, k):
        raise ValueError(f"confusion matrix must be ({k}, {k}) for {k} classes, got {m.shape}")
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros(m.shape, dtype=float), where=rows > 0)
    size = 1.6 + 0.55 * k
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.subplots()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if m[i, j]:
                ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if frac[i, j] > 0.5 else "black")
    return save_figure(fig, path)
