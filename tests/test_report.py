"""The run report: reload a run, evaluate it, write a self-contained report.html; images decode."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import torch
from _trainkit import bomb_png

from cnnlab.errors import ConfigError, DataError
from cnnlab.report import write_report
from cnnlab.run import evaluate_run, load_run, predict_files, read_image, to_dataset_image

FASHION = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
           "bag", "ankle boot"]


@pytest.fixture(scope="module")
def run_dir(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real two-epoch run of the modern LeNet on 1,024 Fashion-MNIST images."""
    from cnnlab.train import TrainConfig, train

    out = tmp_path_factory.mktemp("report") / "run"
    cfg = TrainConfig(model="lenet_modern", dataset="fashion-mnist", data_root=str(data_root),
                      epochs=2, train_samples=1024, batch_size=64, lr=0.1, momentum=0.9,
                      eval_every=2, progress="none", tensorboard=False, eval_batch_size=2048)
    train("lenet_modern", None, cfg, out_dir=out)
    return out


class Page(HTMLParser):
    """Collects images, links, scripts, headings and table cells of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str | None]] = []
        self.external: list[str] = []
        self.headings: list[str] = []
        self.cells: list[str] = []
        self._tag: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a)
        for key in ("src", "href"):
            v = a.get(key) or ""
            if v and not v.startswith("data:") and not v.startswith("#"):
                self.external.append(f"{tag} {key}={v}")
        if tag in ("link", "script", "iframe"):
            self.external.append(tag)
        self._tag = tag

    def handle_data(self, data: str) -> None:
        if self._tag in ("h1", "h2"):
            self.headings.append(data.strip())
        if self._tag == "td":
            self.cells.append(data.strip())


def _decode(src: str) -> np.ndarray:
    head, data = src.split(",", 1)
    assert head == "data:image/png;base64"
    return matplotlib.image.imread(io.BytesIO(base64.b64decode(data, validate=True)), format="png")


def test_report_is_self_contained_and_every_image_decodes(run_dir: Path) -> None:
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    assert page.external == []  # no network, no server: nothing outside the file
    alts = [img["alt"] for img in page.images]
    assert alts[:2] == ["training curves", "confusion matrix"]
    assert sum(a.startswith("test image ") for a in alts) == 32  # the mistakes, one card each
    # "What the network sees" (tests/test_inspect.py): the first layer's 6 filters, a tile each
    assert [a for a in alts if a.startswith("filter ")] == [f"filter {k}" for k in range(6)]
    for img in page.images:
        pixels = _decode(img["src"] or "")
        wide = 40 if img["alt"].startswith("filter ") else 80  # a 5x5 kernel: a 40x40 tile
        assert pixels.ndim in (2, 3) and pixels.shape[0] >= 40 and pixels.shape[1] >= wide
        assert pixels.std() > 0.01  # a drawing, not a blank canvas
    for name in ("confusion.png", "errors.png", "curves.png"):
        assert matplotlib.image.imread(run_dir / name).shape[0] > 100
    # At phone width: the curves and the confusion matrix each have a drawing that fits 420 px,
    # and the constant learning rate is a line of text, not a flat third panel.
    text = path.read_text(encoding="utf-8")
    assert text.count('<source media="(max-width: 640px)"') == 2
    sources = re.findall(r'<source media="\(max-width: 640px\)" srcset="([^"]+)"', text)
    narrow = [_decode(src) for src in sources]
    assert narrow[1].shape[1] <= 420  # the matrix: no colour bar, small type
    assert "Learning rate 0.1 throughout (constant)." in text
    curves = matplotlib.image.imread(run_dir / "curves.png")
    assert curves.shape[1] < 2.9 * curves.shape[0]  # two panels side by side, not three
    for heading in ("Learning curves", "Confusion matrix", "Per-class accuracy",
                    "Most confident mistakes", "What the network sees", "Model cost",
                    "Configuration", "Result and timings", "Environment"):
        assert heading in page.headings
    assert set(FASHION) <= set(page.cells)  # per-class rows carry the class names


def test_report_numbers_agree_with_the_run(run_dir: Path) -> None:
    result = json.loads((run_dir / "result.json").read_text())
    ev = evaluate_run(run_dir)  # last.pt: the model whose accuracy train reported
    assert ev.n == 10_000 and ev.dataset == "fashion-mnist"
    assert ev.acc == pytest.approx(result["test_acc"], abs=1e-6)
    assert ev.loss == pytest.approx(result["test_loss"], rel=1e-4)
    assert ev.acc > 0.5  # two epochs of the modern LeNet learn something
    cm = ev.confusion(10)
    assert int(cm.sum()) == 10_000 and int(cm.trace()) == round(ev.acc * 10_000)
    assert cm.sum(dim=1).tolist() == [1000] * 10  # 1,000 test images per class
    path = run_dir / "report.html"
    html = (path if path.exists() else write_report(run_dir)).read_text()
    assert f"{ev.acc:.2%}" in html  # the headline number is the evaluated accuracy
    per_class = (cm.diag().double() / cm.sum(dim=1)).tolist()
    for acc in per_class:
        assert f"{acc:.1%}" in html
    assert "The cost summary failed" not in html
    assert "parameters" in html and "61,706" in html  # LeNet's parameter count, from cnnlab.cost


def test_memory_card_costs_the_runs_own_optimizer(run_dir: Path) -> None:
    from cnnlab.cost import format_si, summary

    run = load_run(run_dir)  # trained with SGD, momentum 0.9, batch 64
    size = (1, *run.input_size)
    step = summary(run.model, size, batch_size=64, optimizer="sgd", momentum=0.9,
                   measure_memory=False)
    plain = summary(run.model, size, batch_size=64, measure_memory=False)
    assert step.memory.optimizer_state == step.memory.params > plain.memory.optimizer_state == 0
    html = write_report(run_dir).read_text()
    card = "<b>{}</b><span>memory of a step, batch 64 (est.)</span>"
    assert card.format(format_si(step.memory.total, "B")) in html  # plain SGD before
    assert card.format(format_si(plain.memory.total, "B")) not in html


def test_best_checkpoint_and_missing_things(run_dir: Path, tmp_path: Path) -> None:
    best = load_run(run_dir, "best")
    assert best.checkpoint.name == "best.pt" and not best.model.training
    with pytest.raises(DataError, match="does not exist"):
        load_run(tmp_path / "nope")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(DataError, match="not valid JSON"):
        load_run(tmp_path)


def _png(path: Path, gray: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(gray, "L").save(path)  # 8-bit grayscale: exact pixel values
    return path


def test_images_from_files_go_through_the_runs_pipeline(run_dir: Path, tmp_path: Path) -> None:
    run = load_run(run_dir)
    idx = [0, 1, 2, 3, 4, 5]
    images = run.dataset.test.images[idx]
    paths = [_png(tmp_path / f"{i}.png", images[i].numpy()) for i in range(len(idx))]
    # Dark-ground PNGs round-trip exactly; inverted (light-ground) copies are flipped back.
    for p, img in zip(paths, images):
        assert torch.equal(to_dataset_image(read_image(p)), img)
    light = _png(tmp_path / "light.png", 255 - images[0].numpy())
    assert torch.equal(to_dataset_image(read_image(light)), images[0])
    assert torch.equal(to_dataset_image(read_image(light), invert="no"), 255 - images[0])
    probs = predict_files(run, paths)
    assert probs.shape == (6, 10) and torch.allclose(probs.sum(1), torch.ones(6))
    ev = evaluate_run(run, limit=6)
    assert probs.argmax(1).tolist() == ev.preds.tolist()
    with pytest.raises(ConfigError, match="invert"):
        to_dataset_image(read_image(paths[0]), invert="maybe")


def test_read_image_color_alpha_jpeg_and_errors(tmp_path: Path) -> None:
    from PIL import Image

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255  # pure red, opaque on the left half, transparent on the right
    rgba[:, :4, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    g = read_image(tmp_path / "a.png")
    assert g.shape == (8, 8)
    assert torch.allclose(g[:, :4], torch.full((8, 4), 0.299), atol=1e-3)  # luma of red
    assert torch.allclose(g[:, 4:], torch.ones(8, 4))  # transparent: white background
    Image.fromarray(np.full((40, 30), 200, np.uint8), "L").save(tmp_path / "b.jpg", quality=95)
    j = read_image(tmp_path / "b.jpg")
    assert j.shape == (40, 30) and abs(j.mean().item() - 200 / 255) < 0.01
    assert to_dataset_image(j).shape == (28, 28)  # resized to the dataset's size, inverted
    assert to_dataset_image(j).max() < 60
    (tmp_path / "c.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="cannot read image"):
        read_image(tmp_path / "c.png")
    with pytest.raises(DataError, match="does not exist"):
        read_image(tmp_path / "missing.png")


@pytest.mark.parametrize("side", [10_000, 100_000])  # Pillow warns past 89 Mpx, stops past 179
def test_read_image_refuses_a_decompression_bomb(tmp_path: Path, side: int) -> None:
    import warnings

    path = bomb_png(tmp_path / "bomb.png", side, side)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning escapes either
        with pytest.raises(DataError, match=rf"bomb.png claims {side * side:,} pixels, more than "
                                            r"the 89,478,485 cnnlab decodes"):
            read_image(path)


def test_report_of_a_resized_normalized_run(data_root: Path, tmp_path: Path) -> None:
    """A LeNet built for 32x32 inputs, trained on normalized images, reloads and reports."""
    from cnnlab.train import TrainConfig, train

    cfg = TrainConfig(model="lenet", dataset="mnist", data_root=str(data_root), resize=(32, 32),
                      normalize=True, epochs=1, limit_batches=2, progress="none",
                      tensorboard=False)  # (a dry run leaves no checkpoint to report on)
    train("lenet", None, cfg, out_dir=tmp_path)
    run = load_run(tmp_path)
    assert run.input_size == (32, 32) and run.classes == [str(d) for d in range(10)]
    path = write_report(tmp_path, limit=300, max_errors=0)
    page = Page()
    page.feed(path.read_text())
    alts = [img["alt"] for img in page.images]
    assert alts[:2] == ["training curves", "confusion matrix"]
    assert not any(a.startswith("test image ") for a in alts)  # --max-errors 0: no mistakes
    assert "filter 0" in alts
    assert "input 32&times;32" in path.read_text() and "300 test images" in path.read_text()
    # The shared mnist folder is a 10,000-image subset: the page says so beside its accuracy.
    assert ('<p class="note"><b>mnist:</b> not the official files: 8,004 of the official 60,000 '
            "training images") in path.read_text()



def test_load_run_is_public_api(run_dir: Path) -> None:
    import cnnlab

    run = cnnlab.load_run(run_dir)
    assert not run.model.training and run.classes == FASHION
    assert run.precision == "off"  # recorded resolved: float32 on a CPU by default
    assert run.metrics["test_acc"] == pytest.approx(evaluate_run(run).acc, abs=1e-6)
    assert len(run.history) == 2
    for split in ("train", "val", "test"):
        assert evaluate_run(run, split=split, limit=64).n == 64
    with pytest.raises(ConfigError, match="train, val or test"):
        evaluate_run(run, split="dev")


def _cards(text: str) -> dict[str, str]:
    import re

    return {label: value for value, label in
            re.findall(r'<div class="stat[^"]*"><b>(.*?)</b><span>(.*?)</span>', text)}


def test_report_labels_partial_results_and_hides_empty_cards(data_root: Path,
                                                              tmp_path: Path) -> None:
    """Under limit_batches a figure covers part of a split: the report says how many images; a
    card with no value (no validation) is left out instead of showing n/a."""
    from cnnlab.train import TrainConfig, train

    out = tmp_path / "part"
    cfg = TrainConfig(model="lenet", dataset="fashion-mnist", data_root=str(data_root),
                      epochs=1, batch_size=64, limit_batches=2, eval_batch_size=200,
                      progress="none", tensorboard=False, plot=False, threads=1)
    result = train("lenet", None, cfg, out_dir=out)
    assert result.test_images == 400 and result.history[0]["val_images"] == 400
    text = write_report(out, limit=500, max_errors=0).read_text()
    cards = _cards(text)
    assert "test accuracy (last.pt, 500 of 10,000 images)" in cards
    assert "best val acc (epoch 1, 400 of 10,000 images)" in cards
    # one source for the test accuracy: the page's evaluation, not also result.json's figure
    assert "test accuracy (final model" not in text and text.count("test accuracy") == 1
    assert "Validation on 400 of 10,000 images each epoch." in text
    assert "n/a" not in "".join(cards.values())
    assert "1 epoch of 2 batches" in text  # the header, in words
    assert "<td>stopped early</td><td>no</td>" in text  # words, not Python's False
    assert "<td>plot</td><td>off</td>" in text  # a setting that differs from the default

    # The same run without its validation numbers: no "best val acc" card at all.
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    (out / "metrics.jsonl").write_text("".join(
        json.dumps({k: v for k, v in r.items() if not k.startswith("val_")}) + "\n"
        for r in rows))
    cards = _cards(write_report(out, limit=100, max_errors=0).read_text())
    assert not any(label.startswith("best val acc") for label in cards)
    assert "test loss" in cards


def test_the_report_after_training_reuses_the_final_evaluation(data_root: Path, tmp_path: Path,
                                                               monkeypatch) -> None:
    """The engine's last validation is the final model on the whole test split: it keeps the
    predictions, they equal a fresh evaluation, and write_report uses them instead."""
    import cnnlab.report
    from cnnlab.train import TrainConfig, train

    cfg = TrainConfig(model="lenet_modern", dataset="fashion-mnist", data_root=str(data_root),
                      epochs=1, train_samples=256, batch_size=64, eval_batch_size=2500,
                      progress="none", tensorboard=False, plot=False, threads=1)
    result = train("lenet_modern", None, cfg, out_dir=tmp_path)
    ev = result.evaluation
    assert ev is not None and ev.n == 10_000 and ev.split == "test"
    assert (ev.acc, ev.loss) == (result.test_acc, result.test_loss)
    fresh = evaluate_run(tmp_path)
    assert torch.equal(fresh.labels, ev.labels)
    assert (fresh.preds != ev.preds).float().mean() < 1e-3  # channels_last may flip a near tie
    assert fresh.acc == pytest.approx(ev.acc, abs=1e-3)

    def no_second_evaluation(*args, **kwargs):
        raise AssertionError("evaluated again")

    monkeypatch.setattr(cnnlab.report, "evaluate_run", no_second_evaluation)
    text = write_report(tmp_path, evaluation=ev, max_errors=4).read_text()
    assert f"{ev.acc:.2%}" in text


def test_best_means_what_best_pt_holds(run_dir: Path, tmp_path: Path) -> None:
    """With monitor=val_loss, "best" on the page is the epoch of lowest validation loss (the one
    best.pt holds), not the one of highest accuracy; the result table's best row agrees."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "monitor": "val_loss"}))
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    base = rows[-1]
    crafted = [{**base, "epoch": 1, "val_acc": 0.90, "val_loss": 0.50},
               {**base, "epoch": 2, "val_acc": 0.80, "val_loss": 0.30},  # best.pt: lowest loss
               {**base, "epoch": 3, "val_acc": 0.95, "val_loss": 0.40}]
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in crafted))
    text = write_report(out, limit=100, max_errors=0).read_text()
    cards = _cards(text)
    label = next(k for k in cards if k.startswith("best val"))
    assert label.startswith("best val loss (epoch 2") and cards[label] == "0.3000"
    assert '<td><b>best</b></td><td><span class="num">2</span>' in text
