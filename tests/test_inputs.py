"""RunInputs: the one owner of what a run feeds its model (splits, size, channels, classes,
normalization, resize), for the engine, finished runs and pages alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _trainkit import TinyNet, make_dataset, write_image_folder

from cnnlab.data import Loader, Split
from cnnlab.inputs import InputShape, RunInputs, book_resize, recorded_shape
from cnnlab.run import predict
from cnnlab.train_config import TrainConfig


def test_the_book_size_applies_on_28x28_data_only_when_no_resize_is_asked() -> None:
    assert book_resize(None, "resnet18", (28, 28)) == (96, 96)  # the book's size for it
    assert book_resize(None, "lenet", (28, 28)) is None  # already its size
    assert book_resize((64, 48), "resnet18", (28, 28)) == (64, 48)  # asked for: kept
    assert book_resize(None, "resnet18", (32, 32)) is None  # CIFAR-10 keeps its own size
    assert book_resize(None, None, (28, 28)) is None  # a custom nn.Module: the data's size


def test_splits_are_seeded_disjoint_and_sized_by_the_config() -> None:
    ds = make_dataset(400, 100)
    cfg = TrainConfig(val_size=0.25, train_samples=200, test_samples=40, seed=1)
    inputs = RunInputs(cfg, ds, "lenet")
    train, val, test = inputs.splits()
    assert (len(train), len(val), len(test)) == (200, 100, 40)
    again = RunInputs(cfg.to_dict(), ds).splits()  # config.json's dict: the same draw
    for a, b in zip((train, val, test), again):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    # validation is carved from train: no validation image is also trained on
    seen = {bytes(x.numpy()) for x in train.images}
    assert not any(bytes(x.numpy()) in seen for x in val.images)
    assert inputs.split("val") is not None and len(inputs.split("test")) == 100  # eval: all
    assert not inputs.val_is_test and RunInputs(TrainConfig(), ds).val_is_test
    assert inputs.shape == InputShape(1, (28, 28), 10)


def test_normalization_is_computed_once_and_only_when_asked() -> None:
    ds = make_dataset(100, 20)
    assert RunInputs(TrainConfig(), ds).normalize is None
    mean, std = RunInputs(TrainConfig(normalize=True), ds).normalize
    pixels = ds.train.images.double() / 255
    assert mean == pytest.approx(pixels.mean().item(), abs=1e-6)
    assert std == pytest.approx(pixels.std(unbiased=False).item(), abs=1e-6)


def test_recorded_shape_needs_no_images_for_named_data(tmp_path: Path) -> None:
    assert recorded_shape({"dataset": "cifar10", "model": "resnet18_small"}) == InputShape(
        3, (32, 32), 10)
    assert recorded_shape({"dataset": "fashion-mnist", "model": "alexnet"}).size == (224, 224)
    assert recorded_shape({"dataset": "mnist", "resize": [40, 40]}).chw == (1, 40, 40)
    folder = tmp_path / "photos"
    write_image_folder(folder, {"a": 6, "b": 6, "c": 6}, size=(20, 20), mode="RGB")
    assert recorded_shape({"dataset": f"folder:{folder}"}) == InputShape(3, (20, 20), 3)
    assert recorded_shape({"dataset": f"folder:{tmp_path / 'gone'}"}) is None


def test_predict_resizes_exactly_as_the_loader_feeds_training() -> None:
    """One resize in cnnlab: predict's batches are the Loader's, bit for bit."""
    torch.manual_seed(0)
    net = TinyNet(size=40).eval()
    images = make_dataset(30, 10).test.images
    norm = (0.3, 0.2)
    X = next(iter(Loader(Split(images, torch.zeros(10, dtype=torch.int64)), 10,
                         resize=(40, 40), normalize=norm)))[0]
    with torch.no_grad():
        want = net(X).softmax(dim=1)
    assert torch.equal(predict(net, images, resize=(40, 40), normalize=norm), want)
