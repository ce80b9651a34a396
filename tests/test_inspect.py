"""Looking inside networks: filters, conv stages and feature maps, Grad-CAM and saliency for every
zoo and d2l model; chapter 7.2's edge detector; `cnnlab inspect`; the report's section."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
from _trainkit import write_idx_dataset
from torch import nn

from cnnlab import cli, edgedemo, inspect_page
from cnnlab import inspect as ins
from cnnlab.errors import ConfigError
from cnnlab.models import create_model, list_models
from cnnlab.plots import figure_png

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _random(name: str, c: int) -> tuple[nn.Module, int]:
    """Zoo model `name` for c channels at a small input size it takes, with random weights.

    Built on the meta device and filled in place: no init cost, so the biggest models stay cheap.
    """
    with torch.device("meta"):
        size = max(create_model(name, in_channels=c).min_size, 8)
        model = create_model(name, in_channels=c, input_size=(size, size))
    model = model.to_empty(device="cpu")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.2, 0.2, generator=g)
        for name_, b in model.named_buffers():
            if b.is_floating_point():
                b.fill_(1.0 if name_.endswith("running_var") else 0.0)
    return model.eval(), size


def _nonblank(fig_or_png: object) -> np.ndarray:
    data = figure_png(fig_or_png) if not isinstance(fig_or_png, bytes) else fig_or_png
    img = matplotlib.image.imread(io.BytesIO(data))
    assert img.shape[0] > 20 and img.shape[1] > 20 and img[..., :3].std() > 0.05
    return img


# --- every model of the zoo and of the d2l drop-in --------------------------------------------

def _check_model(model: nn.Module, x: torch.Tensor) -> list[ins.Stage]:
    layers = dict(model.named_modules())
    stages = ins.conv_stages(model, x)
    assert stages, "no conv stage found"
    maps = ins.feature_maps(model, x[0])
    assert [s for s, _ in maps] == stages
    for stage, a in maps:
        assert all(n in layers for n in stage.names) and stage.cam_layer in layers
        assert any(stage.cam_layer == n or stage.cam_layer.startswith(n + ".") for n in stage.names)
        assert a.shape == stage.shape and stage.label.endswith("×".join(map(str, a.shape)))
    name, w = ins.filters(model)
    assert name == ins.conv_layers(model)[0] and w.shape == tuple(layers[name].weight.shape)
    cam, sal = ins.gradcam(model, x), ins.saliency(model, x)
    h, wd = x.shape[-2:]
    for a in (cam, sal):
        assert a.shape == (len(x), h, wd) and np.isfinite(a).all()
        assert a.min() >= 0 and a.max() <= 1
    assert np.allclose(sal.reshape(len(x), -1).max(axis=1), 1.0)  # every image has a gradient
    return stages


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_model_can_be_looked_into(name: str) -> None:
    torch.manual_seed(0)
    c = 3 if list_models().index(name) % 2 else 1  # half the zoo with 1 channel, half with 3
    model, size = _random(name, c)
    _check_model(model, torch.rand(2, c, size, size))
    assert ins.filters(model)[1].shape[1] == c  # the first conv sees the input's channels


@pytest.mark.parametrize("cls,args,size", [
    ("LeNet", {}, 28), ("BNLeNet", {}, 28), ("AlexNet", {}, 67),
    ("VGG", {"arch": ((1, 8), (1, 16))}, 32), ("NiN", {}, 67), ("GoogleNet", {}, 32),
    ("ResNet18", {}, 32), ("DenseNet", {}, 32),
])
def test_d2l_models_can_be_looked_into(cls: str, args: dict, size: int) -> None:
    from cnnlab import d2l

    torch.manual_seed(0)
    model = getattr(d2l, cls)(**args).eval()
    x = torch.rand(2, 1, size, size)
    with torch.no_grad():
        model(x)  # Lazy layers take their shapes from a first batch
    _check_model(model, x)


def test_stages_are_named_and_grouped_like_the_book_draws_them() -> None:
    model = create_model("lenet_modern")
    stages = ins.conv_stages(model, torch.rand(1, 1, 28, 28))
    assert [s.names for s in stages] == [("net.0", "net.1", "net.2"), ("net.3", "net.4", "net.5")]
    assert [s.shape for s in stages] == [(6, 14, 14), (16, 5, 5)]
    assert stages[0].label == "net.0 … net.2 (Conv2d, ReLU, MaxPool2d) → 6×14×14"
    assert stages[-1].cam_layer == "net.4"  # Grad-CAM on the 10x10 map, before the last pool

    resnet = create_model("resnet18_small")
    stages = ins.conv_stages(resnet, torch.rand(1, 1, 28, 28))
    assert [s.name for s in stages] == ["net.0", "net.b2", "net.b3", "net.b4", "net.b5"]
    assert [s.shape for s in stages][-1] == (512, 4, 4)
    # Names as `cnnlab summary` prints them.
    from cnnlab.cost import summary

    rows = {r.name for r in summary(resnet, (1, 28, 28), measure_memory=False).rows}
    assert {n for s in stages for n in s.names} <= rows

    goog = create_model("googlenet_small")
    names = [s.name for s in ins.conv_stages(goog, torch.rand(1, 1, 28, 28))]
    assert names[-2:] == ["net.4.0", "net.4.1"]  # inside the last block, before its global pool


@pytest.mark.parametrize("name", list_models())
def test_stages_at_the_books_input_size(name: str) -> None:
    """Found on the meta device (no memory, no compute); Grad-CAM's layer keeps a spatial map."""
    from cnnlab.models import default_input_size

    c, h, w = default_input_size(name)
    with torch.device("meta"):
        model = create_model(name, in_channels=c).eval()
        x = torch.empty(1, c, h, w)
        stages = ins.conv_stages(model, x)
        calls, _ = ins._trace(model, x)
    assert len(stages) >= 2 and all(s.shape[0] > 0 for s in stages)
    cam = next(c.output for c in calls.values() if c.name == stages[-1].cam_layer)
    assert cam.dim() == 4 and cam.shape[-1] * cam.shape[-2] >= 4  # Grad-CAM has a map to show


def test_a_test_time_average_is_looked_through() -> None:
    torch.manual_seed(0)
    model = create_model("fastnet").eval()  # in eval mode: the mean over the image and its mirror
    assert model.tta
    stages = ins.conv_stages(model, torch.rand(1, 1, 28, 28))
    assert [s.names for s in stages][0] == ("net.0", "net.1", "net.2", "net.3")
    x = torch.rand(1, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    x[..., :, :14] = 0  # all on the right: a mirrored pass would put the evidence on the left
    # net.1, the batch norm: the last layer at full resolution (FastNet pools before its ReLU)
    cam = ins.gradcam(model, x, target=0, layer="net.1")[0]
    assert cam[:, 16:].max() == 1 and cam[:, :12].max() == 0  # one pass, not its mirror too


def test_a_model_that_is_not_a_chain_gets_one_stage_per_conv() -> None:
    class Branchy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(1, 4, 5, padding=2)
            self.fc = nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = torch.cat([self.a(x), self.b(x)], 1).relu()
            return self.fc(y.mean((2, 3)))

    stages = ins.conv_stages(Branchy(), torch.rand(1, 1, 12, 12))
    assert [s.name for s in stages] == ["a", "b"] and stages[0].shape == (4, 12, 12)


# --- pictures ---------------------------------------------------------------------------------

def test_filters_grid_has_one_tile_per_channel_on_a_symmetric_scale() -> None:
    model = create_model("lenet_modern")
    fig = ins.plot_filters(model)
    ax = fig.axes[0]
    assert ax.get_title() == "net.0 (Conv2d): 6 filters of 1×5×5"
    arr = ax.images[0].get_array()
    assert arr.shape == (5, 6 * 6 - 1)  # six 5x5 tiles in a row, a one-pixel gap between
    lo, hi = ax.images[0].get_clim()
    w = model.net[0].weight.detach()
    assert lo == -hi and hi == pytest.approx(w.abs().max().item())
    _nonblank(fig)

    deeper = ins.plot_filters(model, "net.3")  # 16 filters of 6 input channels, by name
    assert deeper.axes[0].get_title() == "net.3 (Conv2d): 16 filters of 6×5×5"
    assert np.isfinite(deeper.axes[0].images[0].get_array()).sum() == 16 * 6 * 25
    big = ins.plot_filters(create_model("resnet18_small"), "net.b5.1.conv2")
    assert "(first 64 × 8 channels shown)" in big.axes[0].get_title()


def test_feature_maps_show_the_input_then_each_stage_with_its_shape() -> None:
    model = create_model("lenet_modern")
    x = torch.zeros(1, 1, 28, 28)
    x[..., 8:20, 10:18] = 1.0
    fig = ins.plot_feature_maps(model, x, title="a block")
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == ["input 1×28×28", "net.0 … net.2 (Conv2d, ReLU, MaxPool2d) → 6×14×14",
                      "net.3 … net.5 (Conv2d, ReLU, MaxPool2d) → 16×5×5"]
    assert fig.axes[1].images[0].get_array().shape == (14, 6 * 15 - 1)  # six maps in a row
    _nonblank(fig)
    wide = ins.plot_feature_maps(create_model("resnet18_small"), torch.rand(1, 1, 28, 28))
    assert wide.axes[-1].get_title(loc="left").endswith("→ 512×4×4, strongest 32 of 512 channels")


def _spot_model() -> nn.Module:
    """Class 0's score is the mean brightness seen by a 3x3 box filter: evidence is where the
    image is bright."""
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False)
    fc = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        conv.weight.fill_(1 / 9)
        fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), fc).eval()


def test_gradcam_and_saliency_point_at_the_evidence() -> None:
    x = torch.zeros(1, 1, 16, 16)
    x[..., 2:6, 9:13] = 1.0  # a bright square, top right
    model = _spot_model()
    cam = ins.gradcam(model, x, target=0)[0]
    r, c = np.unravel_index(cam.argmax(), cam.shape)
    assert 2 <= r < 6 and 9 <= c < 13 and cam[12:, :6].max() == 0
    sal = ins.saliency(model, x, target=0)[0]
    assert sal[2:6, 9:13].min() > 0.5 and sal[12:, :6].max() == 0  # only where the ReLU is open
    fig = ins.plot_attributions(x.numpy(), cam[None], sal[None], ["spot"])
    assert [ax.get_ylabel() for ax in fig.axes] == ["image", "Grad-CAM", "saliency"]
    assert fig.axes[0].get_title() == "spot"
    _nonblank(fig)


def test_layer_names_are_checked_with_a_suggestion() -> None:
    model = create_model("lenet_modern")
    with pytest.raises(ConfigError, match=r"no layer 'net.33'; did you mean 'net.3'"):
        ins.find_layer(model, "net.33")
    with pytest.raises(ConfigError, match=r"its conv layers are net.0, net.3"):
        ins.plot_filters(model, "conv1")
    with pytest.raises(ConfigError, match=r"'net.1' is a ReLU, not a Conv2d"):
        ins.plot_filters(model, "net.1")
    with pytest.raises(ConfigError, match="no image-shaped output"):
        ins.gradcam(model, torch.rand(1, 1, 28, 28), layer="net.7")


# --- chapter 7.2 ------------------------------------------------------------------------------

def test_edge_demo_learns_the_books_kernel() -> None:
    demo = edgedemo.edge_demo()  # the book: 10 steps, lr 3e-2
    assert demo.X.shape == (6, 8) and (demo.X[:, 2:6] == 0).all() and (demo.X[:, :2] == 1).all()
    assert (demo.Y[:, 1] == 1).all() and (demo.Y[:, 5] == -1).all() and abs(demo.Y).sum() == 12
    assert np.abs(demo.kernel - [[1, -1]]).max() < 0.1
    assert np.abs(demo.kernels[0] - [1, -1]).max() > 0.5  # it started far away
    assert (np.diff(demo.losses) < 0).all() and demo.losses[-1] < 0.1 * demo.losses[0]
    assert np.abs(edgedemo.edge_demo(steps=40).kernel - [[1, -1]]).max() < 1e-3
    fig = edgedemo.plot_edge_demo(demo)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[2] == "the learned kernel approaches [1, -1]" and "per step" in titles[3]
    assert len(fig.axes[3].lines[0].get_ydata()) == 10
    _nonblank(fig)


# --- a run: `cnnlab inspect` and the report's section ------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One epoch of the modern LeNet on a small synthetic Fashion-MNIST look-alike."""
    from cnnlab.train import TrainConfig, train

    root = tmp_path_factory.mktemp("inspect")
    write_idx_dataset(root / "fashion-mnist", n_train=400, n_test=100)
    cfg = TrainConfig(model="lenet_modern", dataset="fashion-mnist", data_root=str(root),
                      epochs=1, batch_size=50, lr=0.05, momentum=0.9, progress="none",
                      tensorboard=False, eval_every=0, threads=1)
    train("lenet_modern", None, cfg, out_dir=root / "run")
    return root / "run"


class Page(HTMLParser):
    """Images (data: URIs or not), links, headings and figure captions of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.images: list[str] = []
        self.sources: list[dict[str, str | None]] = []
        self.external: list[str] = []
        self.headings: list[str] = []
        self.captions: list[str] = []
        self._in: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        if tag == "source":
            self.sources.append(a)
        if tag in ("script", "link", "iframe") or (a.get("href") or "").startswith("http"):
            self.external.append(tag)
        if tag in ("h2", "h3", "figcaption"):
            self._in = tag
            (self.headings if tag != "figcaption" else self.captions).append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in:
            (self.headings if self._in != "figcaption" else self.captions)[-1] += data


def _decode(src: str) -> np.ndarray:
    import base64

    assert src.startswith("data:image/png;base64,")
    return _nonblank(base64.b64decode(src.split(",", 1)[1]))


def test_inspect_command_writes_pictures_and_a_self_contained_page(
        run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "look"
    assert cli.main(["inspect", str(run_dir), "--index", "3", "--layer", "net.3", "--out",
                     str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"page: {out / 'inspect.html'}" in printed
    assert "pictures: filters.png, filters-net.3.png, feature-maps.png, attribution.png, " \
        "mistakes.png in" in printed
    for name in ("filters.png", "filters-net.3.png", "feature-maps.png", "attribution.png",
                 "mistakes.png"):
        _nonblank((out / name).read_bytes())
    page = Page((out / "inspect.html").read_text())
    assert not page.external and page.images
    for src in page.images:
        _decode(src)
    assert page.headings[:3] == ["Filters", "Feature maps", "Where it looks"]
    assert "net.0 (Conv2d): 6 filters of 1×5×5" in page.captions[0]
    assert "net.3 (Conv2d): 16 filters of 6×5×5" in page.captions[1]
    assert "input 1×28×28" in page.captions
    assert "net.3 … net.5 (Conv2d, ReLU, MaxPool2d) → 16×5×5" in page.captions
    html = (out / "inspect.html").read_text()
    # Each fact once: the image in the header, its prediction under its Grad-CAM card.
    assert html.count("test image 3 (true class: ") == 1
    assert html.index("test image 3 (true class: ") < html.index("<main>")
    assert sum(c.startswith("predicted ") for c in page.captions) == 1
    assert html.count("Grad-CAM of the predicted class at <code>net.3</code>") == 2  # two cards
    assert html.count("Grad-CAM at") == 0  # the cards' note says it; no second caption
    # the first layer's filters: one picture each (6), then the --layer's (16)
    tiles = re.findall(r'<div class="tiles">(.*?)</div>', html)
    assert [t.count("<img") for t in tiles] == [6, 16]


def test_inspect_an_image_file(run_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    img = np.full((40, 40), 255, np.uint8)
    img[8:32, 14:26] = 0  # a dark trouser-ish bar on white: inverted like the dataset
    Image.fromarray(img).save(tmp_path / "mine.png")
    *pngs, page = inspect_page.inspect_run(run_dir, tmp_path / "o", image=tmp_path / "mine.png",
                                  n_mistakes=2)
    assert [p.name for p in pngs] == ["filters.png", "feature-maps.png", "attribution.png",
                                      "mistakes.png"]
    text = page.read_text()
    assert "image mine.png</p>" in text and "predicted <b>" in text
    assert len(Page(text).captions) >= 4


@pytest.mark.parametrize("argv,message", [
    (["--layer", "net.33"], "has no layer 'net.33'; did you mean 'net.3'"),
    (["--index", "100"], "--index 100 is out of range: the fashion-mnist test split has 100 "
                         "images (0 to 99)"),
    (["--index", "-1"], "--index -1 is out of range"),
    (["--image", "NOTIMG"], "cannot read image"),
    (["--image", "MISSING"], "does not exist"),
    (["--image", "BOMB"], "claims 100,000,000 pixels, more than the 89,478,485 cnnlab decodes"),
    (["--image", "FOLDER"], "is a folder, not an image"),
    (["--mistakes", "-1"], "must not be negative"),
])
def test_inspect_bad_input_is_one_line_exit_2(run_dir: Path, tmp_path: Path, argv: list[str],
                                              message: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from _trainkit import bomb_png

    (tmp_path / "not.png").write_text("not an image")
    bomb_png(tmp_path / "bomb.png", 10_000, 10_000)  # the one limit: 89 Mpx, as for predict
    argv = [{"NOTIMG": str(tmp_path / "not.png"), "MISSING": str(tmp_path / "nope.png"),
             "BOMB": str(tmp_path / "bomb.png"), "FOLDER": str(tmp_path)}.get(a, a)
            for a in argv]
    assert cli.main(["inspect", str(run_dir), *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_edge_demo_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inspect", "--edge-demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    k = [float(v) for v in re.search(r"learned kernel \[(\S+), (\S+)\]", out).groups()]
    assert abs(k[0] - 1) < 0.1 and abs(k[1] + 1) < 0.1
    _nonblank((tmp_path / "edge-demo.png").read_bytes())
    page = Page((tmp_path / "inspect.html").read_text())
    assert len(page.images) == 1 and page.sources[0]["media"] == "(max-width: 640px)"
    assert cli.main(["inspect", "--edge-demo", "--index", "2"]) == 2


def test_report_has_the_section_and_phone_friendly_pictures(run_dir: Path) -> None:
    from cnnlab.report import write_report

    text = write_report(run_dir, max_errors=6).read_text()
    page = Page(text)
    assert "What the network sees" in page.headings
    i = page.headings.index("What the network sees")
    assert page.headings[i + 1:i + 4] == [
        "First-layer filters", "Feature maps of a correctly classified test image",
        "Feature maps of a misclassified test image"]
    assert page.headings[i + 4].startswith("Where it looked: the ")
    assert "net.0 (Conv2d): 6 filters of 1×5×5" in " ".join(page.captions)
    assert sum(c == "input 1×28×28" for c in page.captions) == 2
    # The curves have a stacked version for narrow screens; mistakes have HTML captions.
    assert any(s.get("media") == "(max-width: 640px)" for s in page.sources)
    assert sum(c.startswith("true: ") or "true: " in c for c in page.captions) >= 6
    for src in page.images:
        _decode(src)


# --- in a real browser ------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PROBE = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const small = [...document.querySelectorAll('figcaption, p, td, h2, h3')]
    .filter(e => e.offsetParent && parseFloat(getComputedStyle(e).fontSize) < 12).length;
  document.body.setAttribute('data-probe', JSON.stringify({
    images: imgs.length, broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).length,
    tiny: imgs.filter(i => i.offsetParent && i.getBoundingClientRect().width < 40).length,
    overflow: document.documentElement.scrollWidth - window.innerWidth, small}));
});
</script></body>"""


def _probe(page: Path, width: int) -> dict:
    """Load `page` in headless Chromium at `width` px; what the probe script measured."""
    import json

    probed = page.with_name("probe-" + page.name)
    probed.write_text(page.read_text().replace("</body>", PROBE))
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", f"--window-size={width},2400",
             "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()],
            capture_output=True, text=True, timeout=120).stdout
    m = re.search(r"data-probe=\"([^\"]+)\"", dom)
    assert m, "the page did not finish loading in Chromium"
    return json.loads(m.group(1).replace("&quot;", '"'))


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
@pytest.mark.parametrize("width", [420, 1400])
def test_pages_render_in_chromium(run_dir: Path, tmp_path: Path, width: int) -> None:
    from cnnlab.report import write_report

    report = write_report(run_dir, max_errors=6)
    look = inspect_page.inspect_run(run_dir, tmp_path / "look", n_mistakes=3)[-1]
    for page in (report, look):
        got = _probe(page, width)
        got["page"] = page.name
        assert got["images"] > 5 and got["broken"] == 0 and got["tiny"] == 0, got
        assert got["overflow"] <= 0, got  # nothing wider than a phone's screen
        assert got["small"] == 0, got  # no text under 12 px
