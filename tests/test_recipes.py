"""Recipes: the book's hyperparameters as data, valid configs, buildable models, honest results."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from cnnlab.errors import ConfigError, suggest
from cnnlab.models import create_model, default_input_size, list_models
from cnnlab.recipes import (
    RECIPES,
    Measured,
    Recipe,
    get_recipe,
    list_recipes,
    recipe_table,
    resolve,
)
from cnnlab.train_config import TrainConfig

# D2L 1.0 ch. 7-8 as the book runs them: (lr, input side); all 10 epochs, SGD, batch 128.
BOOK = {"lenet": (0.1, 28), "alexnet": (0.01, 224), "vgg_small": (0.01, 224),
        "nin": (0.05, 224), "googlenet": (0.01, 96), "bn_lenet": (0.1, 28),
        "resnet18": (0.01, 96), "densenet": (0.01, 96)}
NOTEBOOK = ("lenet_modern", "lenet_modern_mnist", "lenet_wide", "vgg_small_56")


@pytest.mark.parametrize("name", list(BOOK))
def test_book_recipes_use_the_books_hyperparameters(name: str) -> None:
    lr, side = BOOK[name]
    cfg = get_recipe(name).config()
    assert (cfg.epochs, cfg.batch_size, cfg.optimizer, cfg.momentum, cfg.weight_decay) == (
        10, 128, "sgd", 0.0, 0.0)
    assert cfg.lr == lr and cfg.resize == (side, side)
    assert cfg.dataset == "fashion-mnist" and cfg.val_size == 0  # the book validates on test
    assert cfg.schedule == "constant" and not cfg.augment_flip and cfg.augment_crop == 0


def test_notebook_variants() -> None:
    for name in ("lenet_modern", "lenet_modern_mnist"):
        cfg = get_recipe(name).config()
        assert (cfg.lr, cfg.epochs, cfg.resize, cfg.model) == (0.05, 20, (28, 28), "lenet_modern")
    assert get_recipe("lenet_modern_mnist").dataset == "mnist"
    assert get_recipe("lenet_wide").model == "lenet_wide"
    vgg56 = get_recipe("vgg_small_56")
    assert vgg56.model == get_recipe("vgg_small").model and vgg56.config().resize == (56, 56)


def test_every_recipe_is_listed_once_in_table_order() -> None:
    names = list_recipes()
    assert names[:len(BOOK)] == list(BOOK) and set(NOTEBOOK) <= set(names)
    assert len(set(names)) == len(names)
    table = recipe_table()
    rows = [line for line in table.splitlines()[2:]]
    assert [r.split("|")[1].strip(" `") for r in rows] == names


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_config_is_valid_and_model_exists(name: str) -> None:
    r = RECIPES[name]
    cfg = r.config()
    assert isinstance(cfg, TrainConfig) and cfg.validate() is cfg
    assert cfg.model == r.model
    if r.model not in list_models():
        pytest.fail(f"recipe {name} names model {r.model!r}, which the zoo lacks")


@pytest.mark.parametrize("name", list(RECIPES))
def test_recipe_model_builds_for_its_input_and_outputs_ten_classes(name: str) -> None:
    r = RECIPES[name]
    cfg = r.config()
    with torch.device("meta"):  # shapes only: no memory, no compute
        model = create_model(r.model, input_size=cfg.resize, **r.model_kwargs)
        out = model(torch.empty(2, 1, *cfg.resize))
    assert tuple(out.shape) == (2, 10)


def test_measured_results_are_plausible_or_absent() -> None:
    for r in RECIPES.values():
        if r.measured is None:
            continue  # not yet measured: never an invented figure
        assert 0.1 <= r.measured.test_acc <= 1.0 and r.measured.seconds > 0
        assert r.measured.machine


def test_recipes_are_frozen() -> None:
    r = get_recipe("lenet")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.model = "alexnet"  # type: ignore[misc]
    with pytest.raises(TypeError):
        r.overrides["lr"] = 1.0  # type: ignore[index]


def test_config_changes_apply_last_and_unknown_fields_are_named() -> None:
    cfg = get_recipe("lenet").config(epochs=1, lr=0.5)
    assert (cfg.epochs, cfg.lr, cfg.batch_size) == (1, 0.5, 128)
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        get_recipe("lenet").config(epoch=1)


def test_unknown_recipe_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="no recipe named 'lenet_modrn'.*'lenet_modern'"):
        get_recipe("lenet_modrn")
    assert suggest("zzzz", ["lenet"]) == ""


def test_a_name_both_recipe_and_model_is_suggested_once() -> None:
    # 'lenet_modern' is a recipe and a model: it used to be offered twice.
    with pytest.raises(ConfigError) as err:
        resolve("lenet_moden")
    assert str(err.value).count("'lenet_modern'") == 1
    assert "did you mean 'lenet_modern', " in str(err.value)
    assert suggest("lenett", ["lenet", "lenet", "vgg"]) == "; did you mean 'lenet'?"
    assert suggest("abc", ["abcd", "xyz", "abce"]) == "; did you mean 'abce' or 'abcd'?"


def test_resolve_a_model_name_uses_book_defaults_at_its_size() -> None:
    r = resolve("resnet18_small")
    _, h, w = default_input_size("resnet18_small")
    cfg = r.config()
    assert (cfg.model, cfg.resize, cfg.epochs) == ("resnet18_small", (h, w), 10)
    assert resolve("lenet") is RECIPES["lenet"]  # a recipe wins over the model of the same name
    with pytest.raises(ConfigError, match="neither a recipe nor a model.*'alexnet'"):
        resolve("alexnett")


def test_a_figure_measured_on_a_subset_says_so() -> None:
    # 95.5% on ../shared/data's 10,000-image MNIST must not read as the usual ~99% on MNIST.
    m = RECIPES["lenet_modern_mnist"].measured
    assert m is not None and "10,000-image subset of MNIST" in m.data
    row = next(ln for ln in recipe_table().splitlines() if ln.startswith("| `lenet_modern_mnist`"))
    assert row.endswith("; on a 10,000-image subset of MNIST, not the official files) |")


def test_hyperparameters_text_and_measured_table_cell() -> None:
    r = Recipe(name="x", model="lenet", dataset="mnist", overrides={"lr": 0.1, "resize": (28, 28)},
               reproduces="test", measured=Measured(test_acc=0.9, machine="cpu", seconds=120.0))
    assert r.hyperparameters() == "lr=0.1 resize=28,28"
    assert math.isclose(r.measured.seconds / 60, 2.0)


def test_the_table_names_the_knobs_a_recipe_sets() -> None:
    assert RECIPES["fast"].model_spec() == "fastnet_slim (pool_before_bn=first)"
    assert RECIPES["lenet"].model_spec() == "lenet"
    r = Recipe(name="x", model="lenet_modern", dataset="mnist", overrides={}, reproduces="t",
               model_kwargs={"channels": (8, 32), "batch_norm": True})
    assert r.model_spec() == "lenet_modern (channels=8,32 batch_norm=true)"
    assert "| `fast` | fastnet_slim (pool_before_bn=first) |" in recipe_table()
