"""Pictures a person looks at: training curves, image grids, confusion matrices, all saved as PNG.

Everything draws with matplotlib's Agg backend on its own Figure objects (no pyplot state), so it
works in a terminal, a log-only job, a thread or a notebook alike, and never opens a window.
Files are written atomically (temporary file, then rename) so a viewer that reloads `curves.png`
during a run never sees half a picture.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cnnlab.atomic import write_atomic
from cnnlab.errors import ConfigError

__all__ = ["MAX_GRID_IMAGES", "confusion_figure", "constant_lr", "curves_figure", "figure_png",
           "plot_compare_curves", "plot_confusion", "plot_curves", "plot_tradeoffs", "save_figure",
           "save_image_grid"]

# A grid larger than this is no longer a picture a person reads, and its figure grows without
# bound (60,000 subplots take minutes and gigabytes): refuse it instead.
MAX_GRID_IMAGES = 256


def figure_png(fig: Figure, dpi: int = 110, tight: bool = True) -> bytes:
    """A figure as PNG bytes (for a page that embeds it, or a notebook that shows it)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 110, tight: bool = True) -> Path:
    """Write a figure to `path` as PNG atomically and return the path.

    tight=True crops to the drawn content (one extra draw); a figure laid out with fixed margins
    (`subplots_adjust`) already fits its canvas and saves faster with tight=False.
    """
    path = write_atomic(path, figure_png(fig, dpi, tight))
    return path


def plot_curves(history: Sequence[dict], path: str | os.PathLike, title: str | None = None,
                steps: Sequence[dict] | None = None) -> Path:
    """Loss, accuracy and learning rate against epochs as a PNG (see curves_figure)."""
    return save_figure(curves_figure(history, title, steps), path, tight=False)


def constant_lr(history: Sequence[dict], steps: Sequence[dict] | None = None) -> float | None:
    """The learning rate when every recorded one is the same (a constant schedule), else None.

    A constant rate is said in a line of text, not drawn as a flat panel."""
    lrs = {float(p["lr"]) for p in [*(steps or []), *history]
           if isinstance(p.get("lr"), (int, float))}
    return lrs.pop() if len(lrs) == 1 else None


def curves_figure(history: Sequence[dict], title: str | None = None,
                  steps: Sequence[dict] | None = None, stacked: bool = False) -> Figure:
    """Loss, accuracy and learning rate against epochs; missing keys are skipped.

    history has one row per epoch (train/val loss and accuracy, lr); steps, the points logged
    within epochs ({"epoch": 2.25, "train_loss": ..., "lr": ...}), draw the training loss and the
    learning rate between the epochs' points, so a 3-epoch run is not a 3-point line.
    stacked=True puts the panels one above the other, for a phone-width page.
    """
    from matplotlib.ticker import MaxNLocator

    steps = [p for p in (steps or []) if p.get("epoch") is not None]
    has_lr = (any(p.get("lr") is not None for p in [*steps, *history])
              and constant_lr(history, steps) is None)  # a constant rate is text (constant_lr)
    n = 3 if has_lr else 2
    fig = Figure(figsize=(4.2, 2.8 * n) if stacked else (11.5 if has_lr else 9, 3.4))
    axes = fig.subplots(n, 1) if stacked else fig.subplots(1, n)
    ax_loss, ax_acc = axes[0], axes[1]
    epochs = [h.get("epoch", i + 1) for i, h in enumerate(history)]
    pts = [(p["epoch"], p["train_loss"]) for p in steps if p.get("train_loss") is not None]
    if pts:
        xs, ys = zip(*pts)
        ax_loss.plot(xs, ys, "-", color="C0", alpha=0.35, linewidth=1, label="train loss (steps)")
    for ax, metric in ((ax_loss, "loss"), (ax_acc, "acc")):
        for split, style, color in (("train", "-", "C0"), ("val", "--", "C1")):
            key = f"{split}_{metric}"
            pts = [(e, h[key]) for e, h in zip(epochs, history) if h.get(key) is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, style, color=color, marker="o", markersize=3,
                        label=f"{split} {metric}")
        ax.set_ylabel("accuracy" if metric == "acc" else "loss")
    if has_lr:
        ax_lr = axes[2]
        src = steps if any(p.get("lr") is not None for p in steps) else [
            {"epoch": e, "lr": h.get("lr")} for e, h in zip(epochs, history)]
        pts = [(p["epoch"], p["lr"]) for p in src if p.get("lr") is not None]
        xs, ys = zip(*pts)
        ax_lr.plot(xs, ys, "-", color="C2", marker="o" if len(pts) < 12 else None, markersize=3,
                   label="learning rate")
        if min(ys) > 0 and max(ys) / min(ys) > 100:  # a one-cycle tail spans decades
            ax_lr.set_yscale("log")
        else:
            ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        ax_lr.set_ylabel("learning rate")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        if ax.lines:
            ax.legend(frameon=False, fontsize=8)
        if steps:  # the first points lie inside epoch 1: start the axis at 0
            ax.set_xlim(0, max(max(epochs, default=1), max(p["epoch"] for p in steps)))
        elif len(epochs) == 1:  # one point: give the axis room instead of a zero-width range
            ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
    if title:
        fig.suptitle(title)
    # Fixed margins (room for each panel's tick labels and y label, so a panel's label never
    # overlaps its neighbour): one draw per save. Redrawn every epoch, a tight bbox or a
    # constrained layout would triple the cost (0.3 s instead of 0.1 s for a LeNet epoch of 3 s).
    if stacked:
        # bottom: room for the last panel's "epoch" label (0.5 in of a 2.8 in panel's height)
        fig.subplots_adjust(left=0.18, right=0.97, bottom=0.5 / (2.8 * n),
                            top=0.95 if title else 0.98, hspace=0.42)
    else:
        fig.subplots_adjust(left=0.06 if has_lr else 0.075, right=0.985, bottom=0.15,
                            top=0.86 if title else 0.95, wspace=0.3)
    return fig


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
    if n > MAX_GRID_IMAGES:
        raise ConfigError(f"{n} images are more than a grid shows ({MAX_GRID_IMAGES} at most); "
                          "pick fewer")
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
    return save_figure(confusion_figure(matrix, classes), path)


def confusion_figure(matrix: torch.Tensor | np.ndarray, classes: Sequence[str],
                     narrow: bool = False) -> Figure:
    """The confusion matrix figure; narrow=True: no colour bar and smaller type, so ten classes
    fit a phone's width (about 400 px) at full size instead of being scaled down unreadably."""
    m = matrix.detach().cpu().numpy() if isinstance(matrix, torch.Tensor) else np.asarray(matrix)
    k = len(classes)
    if m.shape != (k, k):
        raise ValueError(f"confusion matrix must be ({k}, {k}) for {k} classes, got {m.shape}")
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros(m.shape, dtype=float), where=rows > 0)
    size = 1.6 + 0.55 * k
    fig = Figure(figsize=(3.4, 3.4) if narrow else (size + 1.2, size))
    ax = fig.subplots()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    if not narrow:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    small = 6 if narrow else 8
    ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=small + (1 if narrow else 0))
    ax.set_yticks(range(k), classes, fontsize=small + (1 if narrow else 0))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if m[i, j]:
                ax.text(j, i, str(int(m[i, j])), ha="center", va="center",
                        fontsize=small if m[i, j] < 1000 or not narrow else small - 1,
                        color="white" if frac[i, j] > 0.5 else "black")
    return fig


def _colors(n: int) -> list:
    """n distinct colors: tab10, or tab20 for more than ten series."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _plain_log_axis(ax, unit: str = "") -> None:
    """Log-scaled x ticks as plain numbers (20, 50, 100 or 2M, 10M), not 2x10^1."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    def fmt(v: float, _pos: int) -> str:
        for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
            if unit and v >= scale:
                return f"{v / scale:g}{prefix}"
        return f"{v:g}"

    lo, hi = ax.get_xlim()
    decades = math.log10(hi / lo) if lo > 0 else 0
    # 1-2-5 ticks over a decade or two; beyond that, one tick per decade stays readable
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 2.5
                                          else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(fmt))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, p: ""))


def plot_compare_curves(series: Sequence[dict], path: str | os.PathLike,
                        columns: int = 2) -> Path:
    """Validation accuracy and loss of several runs, against epoch and against seconds.

    series: one dict per run, {"label", "finished", "points": [{"epoch", "seconds", "val_acc",
    "val_loss"}, ...]}; unfinished runs are dashed. columns=2 lays the four panels out 2x2
    (accuracy above loss), columns=1 stacks them for narrow screens.
    """
    rows = 4 // columns
    # The legend sits below the panels, in rows of `ncol` runs; the figure grows to hold it.
    ncol = 4 if columns == 2 else 1
    legend_rows = -(-len(series) // ncol)
    legend_h = 0.62 + 0.2 * legend_rows  # inches: the last x label, then the legend
    width, panels_h = (11, 7.6) if columns == 2 else (4.0, 12.0)
    fig = Figure(figsize=(width, panels_h + legend_h))
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    panels = [("epoch", "val_acc"), ("seconds", "val_acc"), ("epoch", "val_loss"),
              ("seconds", "val_loss")]
    colors = _colors(len(series))
    for ax, (x_key, y_key) in zip(axes, panels):
        for s, color in zip(series, colors):
            pts = [(p[x_key], p[y_key]) for p in s["points"] if p.get(y_key) is not None]
            if not pts:
                continue
            xs, ys = zip(*pts)
            ax.plot(xs, ys, "-" if s.get("finished", True) else "--", color=color, marker="o",
                    markersize=3.5, linewidth=1.6, label=s["label"])
        ax.set_xlabel("epoch" if x_key == "epoch" else "seconds (training + validation)")
        ax.set_ylabel("validation accuracy" if y_key == "val_acc" else "validation loss")
        if x_key == "seconds" and any(p["seconds"] > 0 for s in series for p in s["points"]):
            ax.set_xscale("log")
            _plain_log_axis(ax)
        if x_key == "epoch":
            ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:  # a run without validation rows on the first panel still gets listed
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, loc="lower left" if columns == 1 else "lower center",
                   bbox_to_anchor=(0.02, 0) if columns == 1 else (0.5, 0), ncol=ncol,
                   frameon=False, fontsize=9)
    fig.subplots_adjust(left=0.08 if columns == 2 else 0.2, right=0.98,
                        top=1 - 0.15 / (panels_h + legend_h),
                        bottom=legend_h / (panels_h + legend_h),
                        hspace=0.3 if columns == 2 else 0.34, wspace=0.22)
    return save_figure(fig, path, tight=False)


def _place_labels(fig: Figure, ax, points: list[tuple[float, float, str]],
                  fontsize: float = 8.5) -> None:
    """Label each point where its text overlaps no other label, point or the axes' edge.

    Greedy, highest point first: each label tries offsets around its point, nearest first, in
    display coordinates (the axes' limits and scales must be set); when none is free it takes
    the one that overlaps least.
    """
    FigureCanvasAgg(fig)
    to_px = ax.transData.transform
    box = ax.get_window_extent()
    pt = fig.dpi / 72  # pixels per point
    dots = [to_px((x, y)) for x, y, _ in points]
    placed: list[tuple[float, float, float, float]] = [
        (dx - 4 * pt, dy - 4 * pt, dx + 4 * pt, dy + 4 * pt) for dx, dy in dots]
    offsets = [(6, 4), (6, -11), (-6, 4), (-6, -11), (6, 14), (6, -21), (-6, 14), (-6, -21),
               (6, 24), (6, -31), (-6, 24), (-6, -31), (6, 34), (6, -41), (-6, 34), (-6, -41)]

    def overlap(a: tuple, b: tuple) -> float:
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        return w * h if w > 0 and h > 0 else 0.0

    order = sorted(range(len(points)), key=lambda i: -points[i][1])
    for i in order:
        x, y, label = points[i]
        px, py = dots[i]
        width, height = 0.56 * fontsize * pt * len(label), 1.1 * fontsize * pt
        best, best_cost = None, None
        for ox, oy in offsets:
            x0 = px + ox * pt if ox > 0 else px + ox * pt - width
            y0 = py + oy * pt
            rect = (x0, y0, x0 + width, y0 + height)
            outside = (max(0, box.x0 - rect[0]) + max(0, rect[2] - box.x1)
                       + max(0, box.y0 - rect[1]) + max(0, rect[3] - box.y1)) * height * 4
            cost = outside + sum(overlap(rect, r) for r in placed)
            if best_cost is None or cost < best_cost:
                best, best_cost = (ox, oy, rect), cost
            if cost == 0:
                break
        ox, oy, rect = best
        placed.append(rect)
        far = abs(oy) > 11  # moved away from its point: a thin line says whose label it is
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(ox, oy),
                    ha="left" if ox > 0 else "right", va="bottom", fontsize=fontsize,
                    color="#1d2430", arrowprops=dict(arrowstyle="-", color="#9aa3ad", lw=0.6,
                                                     shrinkA=0, shrinkB=3) if far else None)


def plot_tradeoffs(points: Sequence[dict], path: str | os.PathLike, columns: int = 2) -> Path:
    """Test accuracy against training seconds and against MACs per image, each point labelled.

    points: {"label", "test_acc", "seconds", "macs"} per run; a missing x leaves the point out of
    that panel. Log x axes: the runs span orders of magnitude.
    """
    rows = 2 // columns
    fig = Figure(figsize=(11, 4.6) if columns == 2 else (4.0, 7.2))
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    # The layout first: labels are placed in display coordinates.
    fig.subplots_adjust(left=0.08 if columns == 2 else 0.2, right=0.98, top=0.97,
                        bottom=0.12 if columns == 2 else 0.07, wspace=0.2, hspace=0.28)
    colors = _colors(len(points))
    for ax, (key, xlabel) in zip(axes, (("seconds", "training seconds"),
                                        ("macs", "MACs per image (forward)"))):
        pts = [(p[key], p["test_acc"], p["label"], c) for p, c in zip(points, colors)
               if p.get(key) and p.get("test_acc") is not None]
        for x, y, _, c in pts:
            ax.scatter([x], [y], s=42, color=c, zorder=3, edgecolors="white", linewidths=0.6)
        if not pts:
            ax.set_xlabel(xlabel)
            continue
        ax.set_xscale("log")
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        ax.set_xlim(min(xs) / 1.5, max(xs) * 1.5)
        _plain_log_axis(ax, unit="macs" if key == "macs" else "")
        pad = max(0.01, (max(ys) - min(ys)) * 0.12)
        ax.set_ylim(min(ys) - pad, max(ys) + pad)
        _place_labels(fig, ax, [(x, y, label) for x, y, label, _ in pts])
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    return save_figure(fig, path, tight=False)
