"""The model zoo: every registered model runs, the book's shapes, published parameter counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnlab.errors import CnnlabError, ConfigError, ShapeError
from cnnlab.models import (
    ZooModel,
    create_model,
    default_input_size,
    list_models,
    register_model,
)

META = torch.device("meta")


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def meta_model(name: str, **kwargs: object) -> nn.Module:
    """Build on the meta device: shapes and parameter counts without memory or init cost."""
    with META:
        return create_model(name, **kwargs)


def layer_shapes(model: nn.Module, size: int, in_channels: int = 1) -> list[tuple[str, tuple]]:
    """The book's layer_summary: (layer class, output shape) for each child of model.net."""
    X = torch.empty(1, in_channels, size, size, device=META)
    out = []
    model.eval()  # batch norm in training mode refuses a batch of one
    for layer in model.net:
        X = layer(X)
        out.append((type(layer).__name__, tuple(X.shape)))
    return out


# ---------------------------------------------------------------- every registered model


# The deepest networks repeat the blocks resnet50/resnext50 already cover and cost seconds each
# to initialize on a loaded 2-core machine: their real-valued step runs with the slow tests.
HEAVY = {"resnet101", "resnet152", "resnext101_32x8d"}


def smoke_size(name: str) -> int:
    """A small input the model takes: its minimum side, at least 32 (16 for small-stem nets)."""
    return max(meta_model(name).min_size, 16 if default_input_size(name)[1] == 28 else 32)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in list_models()
])
def test_every_model_trains_one_step(name: str) -> None:
    torch.manual_seed(0)
    size = smoke_size(name)
    model = create_model(name, num_classes=7, in_channels=1, input_size=size)
    assert isinstance(model, ZooModel)
    # Batch 4: batch norm over a 1x1 map of only two samples has near-zero variance and
    # explodes the gradients of deep nets, which says nothing about the model.
    X = torch.rand(4, 1, size, size)
    out = model(X)
    assert out.shape == (4, 7)
    assert torch.isfinite(out).all()
    nn.functional.cross_entropy(out, torch.tensor([0, 6, 3, 1])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(HEAVY))
def test_heavy_models_backward_on_meta(name: str) -> None:
    model = meta_model(name, num_classes=7)
    out = model(torch.empty(4, 1, 32, 32, device=META))
    out.sum().backward()
    assert out.shape == (4, 7)
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


@pytest.mark.parametrize("name", list_models())
def test_every_model_takes_its_book_input_size(name: str) -> None:
    c, h, w = default_input_size(name)
    model = meta_model(name, num_classes=10, in_channels=c)
    assert model.in_channels == c and model.min_size <= h
    assert model(torch.empty(2, c, h, w, device=META)).shape == (2, 10)


@pytest.mark.parametrize("name", list_models())
def test_minimum_size_works_and_below_it_raises_shape_error(name: str) -> None:
    model = meta_model(name)
    m = model.min_size
    at_min = meta_model(name, input_size=m)
    assert at_min(torch.empty(2, 1, m, m, device=META)).shape == (2, 10)
    if m == 1:  # every layer pads: any input works (e.g. ResNet, GoogLeNet)
        return
    with pytest.raises(ShapeError, match=f"at least {m}x{m}"):
        meta_model(name, input_size=m - 1)
    if model.input_size is None:  # global pooling: the size is checked at call time
        with pytest.raises(ShapeError, match=f"at least {m}x{m}"):
            model(torch.empty(2, 1, m - 1, m - 1, device=META))


def test_default_input_sizes_follow_the_book() -> None:
    expected = {
        "lenet": 28, "lenet_modern": 28, "lenet_wide": 28, "bn_lenet": 28,
        "alexnet": 224, "vgg11": 224, "vgg16": 224, "vgg11_small": 224, "nin": 224,
        "googlenet": 96, "resnet18": 96, "resnet50": 96, "densenet": 96, "regnetx32": 96,
        "resnet18_small": 28, "googlenet_small": 28, "densenet_small": 28,
        "alexnet_small": 28, "vgg11_small28": 28, "nin_small": 28, "resnext_small": 28,
    }
    for name, side in expected.items():
        assert default_input_size(name) == (1, side, side), name


# ---------------------------------------------------------------- layer shapes as the book prints


def test_lenet_shapes_at_28() -> None:
    assert layer_shapes(meta_model("lenet"), 28) == [
        ("Conv2d", (1, 6, 28, 28)), ("Sigmoid", (1, 6, 28, 28)), ("AvgPool2d", (1, 6, 14, 14)),
        ("Conv2d", (1, 16, 10, 10)), ("Sigmoid", (1, 16, 10, 10)),
        ("AvgPool2d", (1, 16, 5, 5)), ("Flatten", (1, 400)),
        ("Linear", (1, 120)), ("Sigmoid", (1, 120)), ("Linear", (1, 84)), ("Sigmoid", (1, 84)),
        ("Linear", (1, 10)),
    ]


def test_lenet_variants_are_one_class_differing_in_activation_pool_and_widths() -> None:
    book, modern, wide = (meta_model(n) for n in ("lenet", "lenet_modern", "lenet_wide"))
    assert type(book) is type(modern) is type(wide)
    kinds = lambda m: [type(x).__name__ for x in m.net]  # noqa: E731
    assert kinds(modern) == [k.replace("Sigmoid", "ReLU").replace("AvgPool2d", "MaxPool2d")
                             for k in kinds(book)]
    # the state-dict keys of runs saved before the merge still load
    assert list(modern.state_dict()) == list(book.state_dict()) == [
        f"net.{i}.{p}" for i in (0, 3, 7, 9, 11) for p in ("weight", "bias")]
    assert [s for _, s in layer_shapes(wide, 28) if len(s) == 4][::3] == [
        (1, 32, 28, 28), (1, 64, 14, 14), (1, 128, 7, 7)]
    assert wide.num_params() == 422_026
    assert meta_model("lenet_wide", hidden=(64,)).net[-1].in_features == 64  # kwargs still win


def test_bn_lenet_shapes_at_28() -> None:
    shapes = [s for _, s in layer_shapes(meta_model("bn_lenet"), 28)]
    assert shapes[0] == (1, 6, 24, 24) and shapes[3] == (1, 6, 12, 12)
    assert shapes[4] == (1, 16, 8, 8) and shapes[7] == (1, 16, 4, 4)
    assert shapes[8] == (1, 256) and shapes[-1] == (1, 10)


def test_alexnet_shapes_at_224() -> None:
    assert layer_shapes(meta_model("alexnet"), 224) == [
        ("Conv2d", (1, 96, 54, 54)), ("ReLU", (1, 96, 54, 54)), ("MaxPool2d", (1, 96, 26, 26)),
        ("Conv2d", (1, 256, 26, 26)), ("ReLU", (1, 256, 26, 26)),
        ("MaxPool2d", (1, 256, 12, 12)),
        ("Conv2d", (1, 384, 12, 12)), ("ReLU", (1, 384, 12, 12)),
        ("Conv2d", (1, 384, 12, 12)), ("ReLU", (1, 384, 12, 12)),
        ("Conv2d", (1, 256, 12, 12)), ("ReLU", (1, 256, 12, 12)),
        ("MaxPool2d", (1, 256, 5, 5)), ("Flatten", (1, 6400)),
        ("Linear", (1, 4096)), ("ReLU", (1, 4096)), ("Dropout", (1, 4096)),
        ("Linear", (1, 4096)), ("ReLU", (1, 4096)), ("Dropout", (1, 4096)),
        ("Linear", (1, 10)),
    ]


def test_vgg11_shapes_at_224() -> None:
    assert layer_shapes(meta_model("vgg11"), 224) == [
        ("Sequential", (1, 64, 112, 112)), ("Sequential", (1, 128, 56, 56)),
        ("Sequential", (1, 256, 28, 28)), ("Sequential", (1, 512, 14, 14)),
        ("Sequential", (1, 512, 7, 7)), ("Flatten", (1, 25088)),
        ("Linear", (1, 4096)), ("ReLU", (1, 4096)), ("Dropout", (1, 4096)),
        ("Linear", (1, 4096)), ("ReLU", (1, 4096)), ("Dropout", (1, 4096)),
        ("Linear", (1, 10)),
    ]


def test_vgg11_small_is_the_books_quarter_width_arch() -> None:
    shapes = [s for _, s in layer_shapes(meta_model("vgg11_small"), 224)]
    assert shapes[:6] == [(1, 16, 112, 112), (1, 32, 56, 56), (1, 64, 28, 28),
                          (1, 128, 14, 14), (1, 128, 7, 7), (1, 6272)]


def test_vgg_arch_argument() -> None:
    model = meta_model("vgg", arch=((1, 8), (2, 16)), input_size=28)
    assert [s for _, s in layer_shapes(model, 28)][:3] == [(1, 8, 14, 14), (1, 16, 7, 7), (1, 784)]
    assert model.min_size == 4


def test_nin_shapes_at_224() -> None:
    assert layer_shapes(meta_model("nin"), 224) == [
        ("Sequential", (1, 96, 54, 54)), ("MaxPool2d", (1, 96, 26, 26)),
        ("Sequential", (1, 256, 26, 26)), ("MaxPool2d", (1, 256, 12, 12)),
        ("Sequential", (1, 384, 12, 12)), ("MaxPool2d", (1, 384, 5, 5)),
        ("Dropout", (1, 384, 5, 5)), ("Sequential", (1, 10, 5, 5)),
        ("AdaptiveAvgPool2d", (1, 10, 1, 1)), ("Flatten", (1, 10)),
    ]


def test_googlenet_shapes_at_96() -> None:
    assert layer_shapes(meta_model("googlenet"), 96) == [
        ("Sequential", (1, 64, 24, 24)), ("Sequential", (1, 192, 12, 12)),
        ("Sequential", (1, 480, 6, 6)), ("Sequential", (1, 832, 3, 3)),
        ("Sequential", (1, 1024)), ("Linear", (1, 10)),
    ]


def test_resnet18_shapes_at_96() -> None:
    assert layer_shapes(meta_model("resnet18"), 96) == [
        ("Sequential", (1, 64, 24, 24)), ("Sequential", (1, 64, 24, 24)),
        ("Sequential", (1, 128, 12, 12)), ("Sequential", (1, 256, 6, 6)),
        ("Sequential", (1, 512, 3, 3)), ("Sequential", (1, 10)),
    ]


def test_densenet_shapes_at_96() -> None:
    shapes = [s for _, s in layer_shapes(meta_model("densenet"), 96)]
    assert shapes == [
        (1, 64, 24, 24), (1, 192, 24, 24), (1, 96, 12, 12), (1, 224, 12, 12), (1, 112, 6, 6),
        (1, 240, 6, 6), (1, 120, 3, 3), (1, 248, 3, 3), (1, 10),
    ]


def test_regnetx32_shapes_at_96() -> None:
    shapes = [s for _, s in layer_shapes(meta_model("regnetx32"), 96)]
    assert shapes == [(1, 32, 48, 48), (1, 32, 24, 24), (1, 80, 12, 12), (1, 10)]
    # group width 16: the 80-channel stage has 80 // 16 = 5 groups
    assert meta_model("regnetx32").net.stage2[0].conv2.groups == 5


@pytest.mark.parametrize(("name", "first", "last"), [
    ("resnet18_small", (1, 64, 28, 28), (1, 512, 4, 4)),
    ("densenet_small", (1, 64, 28, 28), (1, 248, 3, 3)),
    ("googlenet_small", (1, 64, 28, 28), (1, 1024)),
    ("alexnet_small", (1, 96, 28, 28), (1, 256, 2, 2)),  # the stem's max-pool stays: 28 -> 13
    ("nin_small", (1, 96, 28, 28), (1, 10, 2, 2)),
    ("vgg11_small28", (1, 16, 28, 28), (1, 128, 1, 1)),  # no max-pool in the first block
    ("resnext_small", (1, 64, 28, 28), (1, 512, 4, 4)),
])
def test_small_input_variants_keep_resolution_at_28(name: str, first: tuple, last: tuple) -> None:
    shapes = [s for _, s in layer_shapes(meta_model(name), 28)]
    assert shapes[0] == first and last in shapes and shapes[-1] == (1, 10)


# ---------------------------------------------------------------- parameter counts


@pytest.mark.parametrize(("name", "count"), [
    ("vgg11", 132_863_336),
    ("vgg13", 133_047_848),
    ("vgg16", 138_357_544),
    ("vgg19", 143_667_240),
    ("resnet18", 11_689_512),
    ("resnet34", 21_797_672),
    ("resnet50", 25_557_032),
    ("resnet101", 44_549_160),
    ("resnet152", 60_192_808),
    ("resnext50_32x4d", 25_028_904),
    ("resnext101_32x8d", 88_791_336),
])
def test_published_imagenet_parameter_counts(name: str, count: int) -> None:
    model = meta_model(name, num_classes=1000, in_channels=3, input_size=224)
    assert sum(p.numel() for p in model.parameters()) == count


def test_lenet_parameter_count() -> None:
    # 6*(25+1) + 16*(6*25+1) + 120*401 + 84*121 + 10*85, the classic LeNet-5 figure
    assert meta_model("lenet").num_params() == 61_706


# ---------------------------------------------------------------- input checks and errors


def test_vgg_at_28_says_which_size_to_use() -> None:
    with pytest.raises(ShapeError, match=r"at least 32x32.*resize"):
        create_model("vgg11", input_size=28)


def test_fixed_head_model_rejects_another_size_at_call() -> None:
    model = meta_model("lenet")
    with pytest.raises(ShapeError, match=r"built for 28x28.*got 32x32"):
        model(torch.empty(1, 1, 32, 32, device=META))
    model32 = meta_model("lenet", input_size=32)  # a classifier sized for 32x32 works
    assert model32(torch.empty(1, 1, 32, 32, device=META)).shape == (1, 10)


def test_global_pool_model_rejects_too_small_input_at_call() -> None:
    model = meta_model("densenet")
    with pytest.raises(ShapeError, match=r"at least 29x29, got 28x28"):
        model(torch.empty(2, 1, 28, 28, device=META))


def test_wrong_channel_count_says_in_channels() -> None:
    model = meta_model("resnet18")
    with pytest.raises(ShapeError, match="in_channels=3"):
        model(torch.empty(2, 3, 96, 96, device=META))
    with pytest.raises(ShapeError, match="batch or channel axis"):
        model(torch.empty(1, 96, 96, device=META))


def test_non_square_input_size() -> None:
    model = meta_model("alexnet", input_size=(224, 160))
    assert model(torch.empty(1, 1, 224, 160, device=META)).shape == (1, 10)


def test_unknown_model_suggests_closest_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown model 'resnet19'.*resnet18"):
        create_model("resnet19")
    with pytest.raises(CnnlabError, match="list_models"):
        default_input_size("zzzz")


def test_bad_class_or_channel_count_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="num_classes=0"):
        create_model("lenet", num_classes=0)
    with pytest.raises(ConfigError, match="in_channels=0"):
        create_model("lenet", in_channels=0)


def test_three_channel_model_takes_rgb() -> None:
    model = meta_model("resnet18_small", in_channels=3)
    assert model(torch.empty(2, 3, 32, 32, device=META)).shape == (2, 10)


def test_bad_stem_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="stem"):
        meta_model("resnet18", stem="tiny")


def test_list_models_is_sorted_and_filters() -> None:
    names = list_models()
    assert names == sorted(names) and len(names) == len(set(names))
    assert {"lenet", "alexnet", "vgg11", "nin", "googlenet", "resnet18", "densenet"} <= set(names)
    resnets = list_models("resnet*")
    assert "resnet18" in resnets and "resnext50_32x4d" not in resnets
    assert all(n.startswith("resnet") for n in resnets)


def test_register_model_refuses_a_duplicate_name() -> None:
    with pytest.raises(ValueError, match="twice"):
        register_model(input_size=28)(type("lenet", (), {}))  # a callable named like lenet


# ---------------------------------------------------------------- initialization


def test_init_cnn_is_xavier_uniform() -> None:
    torch.manual_seed(0)
    model = create_model("lenet")
    fc = model.net[7]  # Linear(400, 120): Xavier bound sqrt(6/520) ~ 0.107 vs torch's 0.05
    bound = math.sqrt(6 / (400 + 120))
    assert isinstance(fc, nn.Linear)
    assert fc.weight.abs().max() <= bound
    assert fc.weight.abs().max() > 0.9 * bound
    conv = create_model("resnet18").net.b3[0].conv1  # Conv2d(64, 128, 3)
    fan_in, fan_out = 64 * 9, 128 * 9
    assert conv.weight.abs().max() > 0.9 * math.sqrt(6 / (fan_in + fan_out))


# ---------------------------------------------------------------- building a model is cheap


@pytest.mark.parametrize("name", ["lenet", "bn_lenet", "alexnet", "vgg11_small", "fastnet_mid",
                                  "nin", "lenet_wide"])
def test_shape_rules_agree_with_the_meta_device(name: str) -> None:
    """The chains whose shapes are worked out by cnnlab.shapes (not run on the meta device) get
    the answer torch gives, at every size from too small to the book's, fitting or not."""
    from torch.func import functional_call

    from cnnlab.shapes import chain_output_shape

    model = meta_model(name)
    book = default_input_size(name)[1]
    flat = next(i for i, m in enumerate(model.net) if isinstance(m, nn.Flatten))
    features = model.net[: flat + 1]  # the part the rules must always answer for
    parts = [model.net, features, model.net[: flat // 2]]
    for part in parts:
        for side in sorted({1, 2, 3, 5, 7, 8, 12, 16, 27, 28, 31, 32, 63, 64, book - 1, book}):
            try:
                ours = chain_output_shape(part, (1, side, side))
            except ShapeError:
                ours = "too small"
            state = {k: torch.empty_like(t, device="meta") for k, t in
                     [*part.named_parameters(), *part.named_buffers()]}
            try:
                with torch.no_grad():
                    out = functional_call(part, state, (torch.empty(2, 1, side, side,
                                                                    device="meta"),))
                theirs = tuple(out.shape[1:])
            except RuntimeError:
                theirs = "too small"
            # None: a Linear that does not fit the flattened size; torch is asked then.
            assert ours == theirs or (ours is None and theirs == "too small"), (name, side)
            if part is features:
                assert ours is not None


def test_building_models_runs_nothing_on_the_meta_device() -> None:
    """`cnnlab models` and a LeNet training never start torch's compiler stack (seconds in a
    fresh process): shapes of plain chains come from the rules, global-pool models search
    their minimum size only when asked."""
    import subprocess
    import sys

    code = ("import sys\nfrom cnnlab.cost import model_rows\nfrom cnnlab.models import "
            "create_model\nrows = model_rows()\ncreate_model('lenet', input_size=(28, 28))\n"
            "create_model('fastnet_mid', input_size=28)\n"
            "print(len(rows), 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == [str(len(list_models())), "False"]


def test_a_fresh_global_pool_model_runs_one_forward_per_call() -> None:
    """Its minimum size is searched only to explain a failure, never inside a forward that works
    (probes there would be counted by a FLOP count or a profiler)."""
    model = meta_model("densenet")
    calls = []
    model.net[0].register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[-1]))
    model(torch.empty(2, 1, 96, 96, device=META))
    assert calls == [96] and model._min_size is None
    with pytest.raises(ShapeError, match=f"at least {model.min_size}x"):
        model(torch.empty(2, 1, 2, 2, device=META))


@pytest.mark.parametrize("cls_name", ["AlexNet", "NiN", "VGG"])
def test_unknown_stem_is_a_config_error(cls_name: str) -> None:
    from cnnlab.models import alexnet, nin, vgg

    cls = {"AlexNet": alexnet.AlexNet, "NiN": nin.NiN, "VGG": vgg.VGG}[cls_name]
    with pytest.raises(ConfigError, match="stem must be 'imagenet' or 'small'"), META:
        cls(stem="tiny")
