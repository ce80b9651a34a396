"""The pages of looking inside a network: `cnnlab inspect`'s inspect.html and the report's "What
the network sees" section, built from cnnlab.inspect's arrays through the page layer (pages.py);
every file written through atomic.py.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.atomic import write_atomic
from cnnlab.errors import ConfigError
from cnnlab.inspect import (
    MAX_FILTERS_IN,
    MAX_FILTERS_OUT,
    MAX_MAPS,
    _filters_caption,
    _image_rgb,
    _is_conv,
    _maps_caption,
    _mosaic,
    _scale,
    _shape,
    _strongest,
    colorize,
    conv_layers,
    default_cam_layer,
    feature_maps,
    filters,
    find_layer,
    gradcam,
    overlay,
    plot_attributions,
    plot_feature_maps,
    plot_filters,
    saliency,
)
from cnnlab.pages import figure, img_tag, png
from cnnlab.run import top_mistakes

__all__ = ["attribution_cards", "conf_text", "filters_html", "inspect_run", "maps_html",
           "mistake_caption", "report_section"]


def _run_inputs(run: Any, split: Any) -> tuple[torch.Tensor, np.ndarray]:
    """(what the model takes, on its device; what to show, (N, C, H, W) in [0, 1]) for a split."""
    from cnnlab.loader import Loader

    x = next(iter(run.loader(split, len(split))))[0]  # as training fed the model
    show = next(iter(Loader(split, len(split), resize=run.input_size)))[0]  # not normalized
    return x, show.numpy()


def _test_images(run: Any, indices: Sequence[int]) -> tuple[torch.Tensor, np.ndarray]:
    n = len(run.dataset.test)
    for i in indices:
        if not 0 <= i < n:
            raise ConfigError(f"--index {i} is out of range: the {run.dataset.name} test split "
                              f"has {n} images (0 to {n - 1})")
    return _run_inputs(run, run.dataset.test.subset(torch.as_tensor(list(indices))))


def _file_image(run: Any, path: str | Path) -> tuple[torch.Tensor, np.ndarray]:
    from cnnlab.run import files_split

    return _run_inputs(run, files_split(run, [Path(path)]))


def filters_html(model: nn.Module, layer: str | None = None) -> str:
    """The filters of a conv as an HTML figure with its caption and scale."""
    name, w = filters(model, layer)
    o, i = min(len(w), MAX_FILTERS_OUT), min(w.shape[1], MAX_FILTERS_IN)
    vmax = float(np.abs(w[:o, :i]).max()) or 1.0
    cap = html.escape(_filters_caption(name, find_layer(model, name), w, o, i))
    inside = "" if i == 1 else " (its input channels side by side)"
    cap += (f'<br><span class="muted">one tile per filter{inside}; red positive, blue negative, '
            f"one scale (±{vmax:.3g}) for all</span>")
    # Each filter its own picture: on a phone the tiles wrap instead of shrinking into one strip.
    kh, kw = w.shape[2:]
    wide = 40 * math.ceil((i * (kw + 1) - 1) / kh)  # enlarged until the tile is ~40 px tall
    tiles = "".join(img_tag(png(colorize(_mosaic(w[k, :i], ncols=i), "RdBu_r", -vmax, vmax),
                                wide, 16), f"filter {k}") for k in range(o))
    return (f'<figure class="filters"><div class="tiles">{tiles}</div>'
            f"<figcaption>{cap}</figcaption></figure>")


def maps_html(model: nn.Module, x: torch.Tensor, show: np.ndarray) -> str:
    """The input and each stage's feature maps, one figure each with its label and shape."""
    parts = [figure(png(_image_rgb(show), 84, 4), "input image",
                     f"input {_shape(show.shape)}", "thumb")]
    for stage, a in feature_maps(model, x):
        a, shown = _strongest(a, MAX_MAPS)
        mos = _mosaic(a, min(shown, 8))
        name, lo, hi = _scale(a)
        parts.append(figure(png(colorize(mos, name, lo, hi), 200), stage.label,
                             html.escape(_maps_caption(stage, shown)), "maps"))
    return f'<div class="fmaps">{"".join(parts)}</div>'


def attribution_cards(images: np.ndarray, cams: np.ndarray, sals: np.ndarray,
                      captions: Sequence[str], where: str = "the last conv stage") -> str:
    """One card per image: image | Grad-CAM overlay | saliency, captioned in HTML."""
    cards = []
    for img, cam, sal, cap in zip(images, cams, sals, captions):
        g = _image_rgb(img)
        g3 = np.repeat(g[..., None], 3, axis=2) if g.ndim == 2 else g
        gap = np.ones((g3.shape[0], 2, 3), dtype=np.float32)
        strip = np.concatenate([g3, gap, overlay(img, cam), gap,
                                colorize(sal, "magma", 0.0, 1.0)], axis=1)
        cards.append(figure(png(strip, 240, 4), "image, Grad-CAM, saliency", cap, "card"))
    return ('<div class="cards">' + "".join(cards) + "</div><p class=muted>Each: the image, "
            f"Grad-CAM of the predicted class at {where} (red: where the evidence is), and "
            "input-gradient saliency (bright: pixels the score is most sensitive to).</p>")


def conf_text(p: float) -> str:
    """A probability as text that never rounds a mistake up to a certain 100%."""
    return ">99.9%" if p >= 0.9995 else f"{p:.1%}" if p >= 0.99 else f"{p:.0%}"


def mistake_caption(classes: Sequence[str], pred: int, conf: float, true: int) -> str:
    """HTML caption of a misclassified image: the predicted class in red with its probability,
    then the true class."""
    return (f'<b class="bad">{html.escape(classes[pred])}</b> {conf_text(conf)}'
            f'<br><span class="muted">true: {html.escape(classes[true])}</span>')


# --- the report's section, and `cnnlab inspect` ------------------------------------------------

def report_section(run: Any, ev: Any, n_mistakes: int = 8) -> str:
    """report.html's "What the network sees": first filters, the feature maps of one correct and
    one wrong test image, Grad-CAM and saliency of the most confident mistakes."""
    model, classes = run.model, run.classes
    parts = ["<section id=sees><h2>What the network sees</h2>",
             "<h3>First-layer filters</h3>", filters_html(model)]
    right = (ev.preds == ev.labels).nonzero().flatten()
    mistakes = top_mistakes(ev, n_mistakes)
    pair = []
    for title, idx in (("a correctly classified test image", right[:1]),
                       ("a misclassified test image", mistakes[:1])):
        if not len(idx):
            continue
        i = int(idx[0])
        x, show = _test_images(run, [i])
        what = (f"test image {i}: {html.escape(classes[int(ev.labels[i])])}, predicted "
                f"{html.escape(classes[int(ev.preds[i])])} ({conf_text(float(ev.confidence[i]))})")
        pair.append(f"<div><h3>Feature maps of {title}</h3><p class=muted>{what}</p>"
                    + maps_html(model, x, show[0]) + "</div>")
    parts.append(f'<div class="pair">{"".join(pair)}</div>')
    if len(mistakes):
        x, show = _test_images(run, mistakes.tolist())
        wrong = ev.preds[mistakes]  # explain the class the model chose, TTA and all
        cams, sals = gradcam(model, x, target=wrong), saliency(model, x, target=wrong)
        caps = [mistake_caption(classes, int(ev.preds[i]), float(ev.confidence[i]),
                                 int(ev.labels[i])) for i in mistakes]
        parts.append(f"<h3>Where it looked: the {len(mistakes)} most confident mistakes</h3>")
        parts.append(attribution_cards(show, cams, sals, caps))
    parts.append("<p class=muted>More: <code>cnnlab inspect "
                 f"{html.escape(str(run.run_dir))}</code> (any image, any layer).</p></section>")
    return "".join(parts)


def inspect_run(run_dir: str | Path, out_dir: str | Path | None = None, *,
                index: int | None = None, image: str | Path | None = None,
                layer: str | None = None, checkpoint: str = "last",
                n_mistakes: int = 8) -> list[Path]:
    """Write a run's pictures (PNG) and inspect.html into out_dir (default: RUN/inspect); the
    files written, inspect.html last."""
    from cnnlab.pages import page
    from cnnlab.plots import save_figure
    from cnnlab.run import evaluate_run, load_run

    if index is not None and image is not None:
        raise ConfigError("give --index N or --image PATH, not both")
    run = load_run(run_dir, checkpoint)
    model, classes = run.model, run.classes
    out = Path(out_dir) if out_dir is not None else run.run_dir / "inspect"
    if layer is not None:  # fail on a wrong name before any work
        find_layer(model, layer)
    if image is not None:
        x, show = _file_image(run, image)
        what = f"image {Path(image).name}"
    else:
        index = 0 if index is None else index
        x, show = _test_images(run, [index])
        what = (f"test image {index} (true class: "
                f"{classes[int(run.dataset.test.labels[index])]})")
    with torch.no_grad():
        probs = model(x).float().softmax(dim=1)[0].cpu()
    pred = int(probs.argmax())
    # Said once each: the image in the header, the prediction under its Grad-CAM card.
    pred_html = f"predicted <b>{html.escape(classes[pred])}</b> ({conf_text(float(probs[pred]))})"
    # --layer names a conv (its filters are drawn too) or any block with an image-shaped output.
    conv_layer = layer if layer is not None and _is_conv(find_layer(model, layer)) else None

    title = f"{run.config.get('model')} on {run.dataset.name}: inside"
    sections = [f"<header><h1>{html.escape(title)}</h1><p>run <code>"
                f"{html.escape(run.run_dir.resolve().name)}</code> &middot; {html.escape(what)}</p>"
                "</header><main>"]
    written = [save_figure(plot_filters(model), out / "filters.png")]
    body = filters_html(model)
    if conv_layer and conv_layer != conv_layers(model)[0]:
        written.append(save_figure(plot_filters(model, conv_layer),
                                   out / f"filters-{conv_layer}.png"))
        body += filters_html(model, conv_layer)
    sections.append(f"<section><h2>Filters</h2>{body}</section>")

    written.append(save_figure(plot_feature_maps(model, x, torch.from_numpy(show), what),
                               out / "feature-maps.png"))
    sections.append("<section><h2>Feature maps</h2><p class=muted>Each stage's channels share "
                    "one colour scale.</p>" + maps_html(model, x, show[0])
                    + "</section>")

    cl = layer or default_cam_layer(model, x)
    where_html = f"<code>{html.escape(cl)}</code>" + ("" if layer else " (the last conv stage)")
    cams, sals = gradcam(model, x, pred, layer=cl), saliency(model, x, pred)
    cap = pred_html
    written.append(save_figure(plot_attributions(show, cams, sals, [f"{classes[pred]}"],
                                                 f"Grad-CAM at {cl}"), out / "attribution.png"))
    sections.append("<section><h2>Where it looks</h2>"
                    + attribution_cards(show, cams, sals, [cap], where_html) + "</section>")

    ev = evaluate_run(run)
    mistakes = top_mistakes(ev, n_mistakes)
    if len(mistakes):
        xm, showm = _test_images(run, mistakes.tolist())
        wrong = ev.preds[mistakes]
        camsm, salsm = gradcam(model, xm, wrong, layer=cl), saliency(model, xm, wrong)
        caps = [f"{classes[int(ev.preds[i])]} {conf_text(float(ev.confidence[i]))}\ntrue: "
                f"{classes[int(ev.labels[i])]}" for i in mistakes]
        written.append(save_figure(plot_attributions(showm, camsm, salsm, caps,
                                                     "the most confident mistakes"),
                                   out / "mistakes.png"))
        html_caps = [mistake_caption(classes, int(ev.preds[i]), float(ev.confidence[i]),
                                      int(ev.labels[i])) for i in mistakes]
        sections.append(f"<section><h2>The {len(mistakes)} most confident mistakes</h2>"
                        f"<p class=muted>of {int((ev.preds != ev.labels).sum()):,} "
                        f"misclassified among the {ev.n:,} test images (accuracy "
                        f"{ev.acc:.2%})</p>"
                        + attribution_cards(showm, camsm, salsm, html_caps, where_html)
                        + "</section>")
    files = ", ".join(p.name for p in written)
    sections.append(f"<footer>cnnlab inspect &middot; {html.escape(str(run.checkpoint))} "
                    f"&middot; pictures also written as {html.escape(files)}</footer></main>")
    path = out / "inspect.html"
    write_atomic(path, page(title, "".join(sections)))
    return [*written, path]
