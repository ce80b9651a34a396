"""Chapter 7.2 reproduced: a 1x2 kernel learns, by gradient descent, to find the edges of the
book's 6x8 image (`cnnlab inspect --edge-demo`): the data, the training, the figure and its page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from cnnlab.atomic import write_atomic
from cnnlab.errors import ConfigError

__all__ = ["EdgeDemo", "edge_demo", "edge_demo_page", "plot_edge_demo"]


@dataclass
class EdgeDemo:
    """Chapter 7.2's experiment: a 1x2 kernel learned from X and Y = corr2d(X, [[1, -1]])."""

    X: np.ndarray  # (6, 8): ones, with zeros in columns 2-5 (two vertical edges)
    Y: np.ndarray  # (6, 7): +1 at the light-to-dark edge, -1 at the dark-to-light one
    kernels: np.ndarray  # (steps + 1, 2): the kernel before training and after each step
    losses: np.ndarray  # (steps,): the summed squared error at each step, before its update
    lr: float

    @property
    def kernel(self) -> np.ndarray:
        """The learned kernel (1, 2)."""
        return self.kernels[-1][None]


def edge_demo(steps: int = 10, lr: float = 3e-2, seed: int = 0) -> EdgeDemo:
    """Train the book's 1x2 kernel on its 6x8 edge image by plain gradient descent (section 7.2)."""
    from cnnlab.ops import corr2d

    if steps < 1:
        raise ConfigError(f"steps={steps} must be at least 1")
    X = torch.ones((6, 8))
    X[:, 2:6] = 0
    Y = corr2d(X, torch.tensor([[1.0, -1.0]]))
    g = torch.Generator().manual_seed(seed)
    # The book's LazyConv2d(1, kernel_size=(1, 2)) starts from U(-1/sqrt(2), 1/sqrt(2)).
    K = ((torch.rand((1, 2), generator=g) * 2 - 1) / math.sqrt(2)).requires_grad_(True)
    kernels, losses = [K.detach().clone()], []
    for _ in range(steps):
        loss = ((corr2d(X, K) - Y) ** 2).sum()
        loss.backward()
        with torch.no_grad():
            K -= lr * K.grad
        K.grad = None
        losses.append(loss.item())
        kernels.append(K.detach().clone())
    return EdgeDemo(X.numpy(), Y.numpy(), torch.cat(kernels).numpy(), np.array(losses), lr)


def plot_edge_demo(demo: EdgeDemo, narrow: bool = False) -> Figure:
    """X, Y, the kernel approaching [1, -1], and the loss per step (2x2, or 4x1 for a phone)."""
    fig = Figure(figsize=(4.2, 11.0) if narrow else (9.0, 6.4))
    axes = fig.subplots(4, 1) if narrow else fig.subplots(2, 2)
    ax_x, ax_y, ax_k, ax_l = np.ravel(axes)
    for ax, a, t, cmap in ((ax_x, demo.X, "X: the 6×8 image (0 = black)", "gray"),
                           (ax_y, demo.Y, "Y = corr2d(X, [[1, -1]]): its edges", "RdBu_r")):
        lim = 1.0
        ax.imshow(a, cmap=cmap, vmin=-lim if cmap != "gray" else 0, vmax=lim)
        for (r, c), v in np.ndenumerate(a):
            ax.text(c, r, f"{v:g}", ha="center", va="center", fontsize=8,
                    color="white" if (cmap == "gray" and v < 0.5) or abs(v) > 0.5 and
                    cmap != "gray" else "black")
        ax.set_title(t, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    steps = np.arange(len(demo.kernels))
    for j, (target, color) in enumerate(((1.0, "#d64545"), (-1.0, "#2f6fde"))):
        ax_k.plot(steps, demo.kernels[:, j], marker="o", markersize=3, color=color,
                  label=f"K[0, {j}] → {demo.kernels[-1, j]:+.3f}")
        ax_k.axhline(target, color=color, linestyle="--", linewidth=0.8)
    ax_k.set_title("the learned kernel approaches [1, -1]", fontsize=10)
    ax_k.set_xlabel("step")
    ax_k.legend(frameon=False, fontsize=8.5)
    ax_k.grid(alpha=0.3)
    ax_l.semilogy(np.arange(1, len(demo.losses) + 1), demo.losses, marker="o", markersize=3)
    ax_l.set_title(f"squared error per step (lr {demo.lr:g})", fontsize=10)
    ax_l.set_xlabel("step")
    ax_l.grid(alpha=0.3, which="both")
    fig.set_layout_engine("constrained")
    return fig


def edge_demo_page(out_dir: str | Path, steps: int = 10,
                   lr: float = 3e-2) -> tuple[Path, EdgeDemo]:
    """Chapter 7.2 reproduced: edge-demo.png and an inspect.html showing it; (html, demo)."""
    from cnnlab.pages import page, picture_tag
    from cnnlab.plots import figure_png, save_figure

    demo = edge_demo(steps, lr)
    out = Path(out_dir)
    wide = save_figure(plot_edge_demo(demo), out / "edge-demo.png")
    narrow = figure_png(plot_edge_demo(demo, narrow=True))
    k = demo.kernel[0]
    body = ("<header><h1>Chapter 7.2: learning an edge detector</h1><p>a 1&times;2 kernel, "
            f"{len(demo.losses)} steps of gradient descent, lr {demo.lr:g}</p></header><main>"
            "<section><h2>The kernel approaches [1, -1]</h2>"
            f"<p>learned kernel <b>[{k[0]:.4f}, {k[1]:.4f}]</b>, squared error "
            f"{demo.losses[0]:.3f} &rarr; {demo.losses[-1]:.4f}</p>"
            + picture_tag(wide.read_bytes(), narrow, "edge image, target, kernel and loss per step")
            + "</section></main>")
    path = out / "inspect.html"
    write_atomic(path, page("cnnlab: chapter 7.2 edge detector", body))
    return path, demo
