"""cnnlab.plots writes real PNG files that decode to the expected sizes."""

import os
import stat

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch

from cnnlab import plots


def _png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return mpimg.imread(path)


def test_curves_png(tmp_path):
    hist = [{"epoch": e, "train_loss": 1 / e, "train_acc": 0.5 + e / 100, "val_loss": 1.1 / e,
             "val_acc": 0.5 + e / 120} for e in range(1, 6)]
    img = _png(plots.plot_curves(hist, tmp_path / "c.png", title="t"))
    assert img.shape[1] > img.shape[0] > 100  # two panels side by side
    assert not list(tmp_path.glob(".c.png.*"))  # no temporary left behind


def test_curves_show_steps_within_epochs_and_the_learning_rate():
    """A 3-epoch run with 4 logged points per epoch: the loss panel draws all 12, a third panel
    the learning rate, and every epoch axis has whole-number ticks only."""
    hist = [{"epoch": e, "train_loss": 1 / e, "train_acc": 0.5 + e / 10, "val_loss": 1.1 / e,
             "val_acc": 0.5 + e / 12, "lr": 0.1 / e} for e in (1, 2, 3)]
    steps = [{"epoch": s / 4, "step": s * 10, "train_loss": 2 / (1 + s), "lr": 0.1 * 0.8 ** s}
             for s in range(1, 13)]
    fig = plots.curves_figure(hist, steps=steps)
    loss, acc, lr = fig.axes
    assert [len(line.get_xdata()) for line in loss.lines] == [12, 3, 3]
    assert lr.get_ylabel() == "learning rate" and len(lr.lines[0].get_xdata()) == 12
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert len(plots.curves_figure(hist[:2]).axes) == 3  # lr from the epochs' rows alone
    assert len(plots.curves_figure([{"epoch": 1, "train_loss": 0.3}]).axes) == 2  # no lr known


def test_a_constant_learning_rate_is_not_drawn():
    """A flat lr panel says one number: constant_lr gives it (for a line of text), no panel."""
    hist = [{"epoch": e, "train_loss": 1 / e, "val_acc": 0.5 + e / 12, "lr": 0.1} for e in (1, 2)]
    steps = [{"epoch": s / 4, "train_loss": 2 / (1 + s), "lr": 0.1} for s in range(1, 9)]
    assert plots.constant_lr(hist, steps) == 0.1
    assert len(plots.curves_figure(hist, steps=steps).axes) == 2
    assert len(plots.curves_figure(hist, steps=steps, stacked=True).axes) == 2
    steps[3]["lr"] = 0.05  # one change anywhere: a schedule, drawn
    assert plots.constant_lr(hist, steps) is None
    assert len(plots.curves_figure(hist, steps=steps).axes) == 3
    assert plots.constant_lr([{"epoch": 1}]) is None  # nothing recorded: nothing to say


def test_curves_single_epoch_and_missing_keys(tmp_path):
    _png(plots.plot_curves([{"epoch": 1, "train_loss": 0.3}], tmp_path / "c.png"))


@pytest.mark.parametrize("images", [
    torch.randint(0, 256, (10, 28, 28), dtype=torch.uint8),
    torch.rand(10, 1, 28, 28),
    np.random.rand(10, 3, 16, 16).astype(np.float32),
])
def test_image_grid(tmp_path, images):
    img = _png(plots.save_image_grid(images, [f"#{i}" for i in range(10)], tmp_path / "g.png", 5))
    assert img.shape[1] > img.shape[0]  # 5 columns, 2 rows


def test_image_grid_rejects_bad_channels(tmp_path):
    with pytest.raises(ValueError, match="1 or 3 channels"):
        plots.save_image_grid(torch.rand(2, 2, 8, 8), None, tmp_path / "g.png")


def test_confusion(tmp_path):
    m = torch.tensor([[5, 1, 0], [0, 6, 0], [2, 0, 4]])
    _png(plots.plot_confusion(m, ["a", "b", "c"], tmp_path / "m.png"))
    with pytest.raises(ValueError, match="must be"):
        plots.plot_confusion(m, ["a", "b"], tmp_path / "m.png")


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_pictures_get_the_usual_file_mode(tmp_path, umask):
    # An atomic write through tempfile.mkstemp made every PNG 0600, unlike the run's other files.
    from matplotlib.figure import Figure

    from cnnlab.atomic import write_atomic

    old = os.umask(umask)
    try:
        fig = Figure(figsize=(1, 1))
        fig.add_subplot().plot([0, 1])
        plots.save_figure(fig, tmp_path / "a.png")
        write_atomic(tmp_path / "b.txt", b"x")
        (tmp_path / "c.txt").write_text("x")  # what open() gives
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == dict.fromkeys(("a.png", "b.txt", "c.txt"), 0o666 & ~umask)


def test_a_grid_has_a_size_limit(tmp_path):
    from cnnlab.errors import ConfigError

    with pytest.raises(ConfigError, match="257 images are more than a grid shows"):
        plots.save_image_grid(torch.rand(plots.MAX_GRID_IMAGES + 1, 4, 4), None, tmp_path / "g.png")
    assert not list(tmp_path.iterdir())
