"""cnnlab.cost: reference figures, op formulas, attribution, memory, rendering, the exercises."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab import memory, models
from cnnlab.cost import compare_models, conv2d_cost, summary
from cnnlab.errors import ConfigError, ShapeError
from cnnlab.opcount import ModuleTracker, OpCounts, count_step, one_value_per_channel_allowed
from cnnlab.train_config import make_optimizer

# -- independent definitions of the reference networks (torchvision's layout) ------------------


def vgg16_ref() -> nn.Module:
    layers: list[nn.Module] = []
    c = 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=True)]
            c = v
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(7), nn.Flatten(),
                         nn.Linear(512 * 49, 4096), nn.ReLU(True), nn.Dropout(),
                         nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, 1000))


class Block(nn.Module):
    def __init__(self, cin: int, mid: int, stride: int, bottleneck: bool) -> None:
        super().__init__()
        cout = mid * 4 if bottleneck else mid
        if bottleneck:
            self.body = nn.Sequential(
                nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(True),
                nn.Conv2d(mid, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(True),
                nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout))
        else:
            self.body = nn.Sequential(
                nn.Conv2d(cin, mid, 3, stride, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(True),
                nn.Conv2d(mid, mid, 3, 1, 1, bias=False), nn.BatchNorm2d(mid))
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                      nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + (x if self.down is None else self.down(x)))


def resnet_ref(blocks: tuple[int, ...], bottleneck: bool) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                               nn.ReLU(True), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for i, n in enumerate(blocks):
        mid = 64 * 2**i
        for j in range(n):
            layers.append(Block(cin, mid, 2 if j == 0 and i > 0 else 1, bottleneck))
            cin = mid * 4 if bottleneck else mid
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, 1000))


REFERENCE = {  # params, MACs (torchvision's published ~15.47 / 1.81 / 4.09 G), builder
    "vgg16": (138_357_544, 15_470_264_320, vgg16_ref),
    "resnet18": (11_689_512, 1_814_073_344, lambda: resnet_ref((2, 2, 2, 2), False)),
    "resnet50": (25_557_032, 4_089_184_256, lambda: resnet_ref((3, 4, 6, 3), True)),
}


def zoo(name: str, **kw: object) -> nn.Module:
    with torch.device("meta"):  # no weights initialised: counting needs only shapes
        return models.create_model(name, num_classes=1000, in_channels=3, **kw)


@pytest.mark.parametrize("name", list(REFERENCE))
@pytest.mark.parametrize("source", ["zoo", "reference"])
def test_reference_figures(name: str, source: str) -> None:
    params, macs, build = REFERENCE[name]
    if source == "zoo":
        model = zoo(name)
    else:
        with torch.device("meta"):
            model = build()
    s = summary(model, (3, 224, 224), measure_memory=False)
    assert s.total_params == s.trainable_params == params
    assert s.total_macs == macs
    assert f"{s.total_macs / 1e9:.2f}" == f"{macs / 1e9:.2f}"
    # every MAC is two FLOPs; the rest of the forward (bias, BN, ReLU, pools, adds) is extra
    assert s.flops_forward > 2 * s.total_macs


def test_matmul_counts_agree_with_flop_counter_mode() -> None:
    torch.manual_seed(0)
    model = resnet_ref((1, 1, 1, 1), False)
    x = torch.randn(2, 3, 32, 32)
    with FlopCounterMode(display=False) as fwd:
        out = model(x)
    with FlopCounterMode(display=False) as bwd:
        out.backward(torch.ones_like(out))
    s = summary(model, (3, 32, 32), batch_size=2, measure_memory=False)
    assert 2 * s.total_macs == fwd.get_total_flops()
    assert 2 * s.macs_backward == bwd.get_total_flops()
    # backward MACs: dX and dW for every conv except the first (its input needs no gradient)
    first = next(r for r in s.rows if r.name == "0")
    assert s.macs_backward == 2 * s.total_macs - first.macs


# -- formulas for single layers ---------------------------------------------------------------

def one(layer: nn.Module, size: tuple[int, ...], batch: int = 1):  # noqa: ANN201
    return summary(layer, size, batch_size=batch, measure_memory=False)


def test_conv_counts_bias_that_thop_and_fvcore_leave_out() -> None:
    s = one(nn.Conv2d(3, 5, 3), (3, 6, 6))  # thop issue #231: 2240 FLOPs, not 2160
    assert [(r.name, r.type, r.output_shape) for r in s.rows] == [
        ("Conv2d", "Conv2d", [[1, 5, 4, 4]])]  # a bare layer is its own single row
    assert s.total_macs == 5 * 4 * 4 * 27
    assert s.flops_forward == 2 * 2160 + 5 * 4 * 4 == 4400
    s = one(nn.Conv2d(3, 5, 3, bias=False), (3, 6, 6))
    assert s.flops_forward == 4320


@pytest.mark.parametrize("groups", [1, 2, 4, 8])
def test_grouped_and_depthwise_conv(groups: int) -> None:
    s = one(nn.Conv2d(8, 16, 3, padding=1, groups=groups, bias=False), (8, 10, 10), batch=3)
    out = 3 * 16 * 10 * 10
    assert s.total_macs == out * (8 // groups) * 9
    assert s.total_params == 16 * (8 // groups) * 9
    # the first layer's input needs no gradient: the backward computes dW only
    assert s.macs_backward == s.total_macs
    # inside a network both dX and dW: twice the forward (torch 2.13's FlopCounterMode counts
    # a grouped conv's dW as if groups were 1, i.e. (1 + g) times the forward)
    net = nn.Sequential(nn.Conv2d(8, 8, 1), nn.Conv2d(8, 16, 3, padding=1, groups=groups))
    s = one(net, (8, 10, 10), batch=3)
    conv = next(r for r in s.rows if r.name == "1")
    assert conv.flops_backward == 2 * 2 * conv.macs + out  # dX, dW, and the bias gradient


def test_linear_norm_pool_activation_formulas() -> None:
    s = one(nn.Linear(10, 7), (10,), batch=4)
    assert (s.total_macs, s.flops_forward) == (4 * 70, 2 * 280 + 28)
    n = 2 * 4 * 6 * 6
    assert one(nn.BatchNorm2d(4), (4, 6, 6), batch=2).flops_forward == 7 * n
    assert one(nn.BatchNorm2d(4), (4, 6, 6), batch=2).flops_backward == 9 * n
    assert one(nn.ReLU(), (4, 6, 6), batch=2).flops_forward == n
    assert one(nn.Sigmoid(), (4, 6, 6), batch=2).flops_forward == 4 * n
    assert one(nn.MaxPool2d(2), (4, 6, 6), batch=2).flops_forward == (4 - 1) * n // 4
    assert one(nn.AvgPool2d(3, stride=3), (4, 6, 6), batch=2).flops_forward == 9 * 2 * 4 * 4
    assert one(nn.AdaptiveAvgPool2d(1), (4, 6, 6), batch=2).flops_forward == n + 8


class Functional(nn.Module):
    """Residual add, torch.cat and F.relu written in forward (thop sees none of them)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv(x) + x)
        return torch.cat([y, x], dim=1)


def test_functional_ops_in_forward_are_counted_and_attributed() -> None:
    s = one(Functional(), (4, 5, 5), batch=2)
    n = 2 * 4 * 5 * 5
    ops = next(r for r in s.rows if r.name == "(ops)")
    assert ops.type == "functional: add, relu"
    assert ops.flops_forward == 2 * n  # the add and the relu; cat moves data, 0 FLOPs
    conv = next(r for r in s.rows if r.name == "conv")
    assert conv.macs == n * 4 * 9
    assert s.flops_forward == 2 * conv.macs + 2 * n
    # backward: relu's mask (n); the conv's dW (its input is the model input: no dX)
    assert s.flops_backward == n + 2 * conv.macs
    assert sum(r.flops_forward for r in s.rows if r.is_leaf) == s.flops_forward


class SharedTwice(nn.Module):
    """One conv called twice (a Siamese use; torchsummary double-counts its weights)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.features(x))


class ActBlock(nn.Module):
    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(2))
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = self.act(layer(x))
        return x


class SharedAcross(nn.Module):
    """One ReLU instance inside every block (torchinfo issue #327: 160 params for 120)."""

    def __init__(self) -> None:
        super().__init__()
        act = nn.ReLU()
        self.blocks = nn.ModuleList(ActBlock(act) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return x


def test_shared_modules_count_params_once_and_work_per_call() -> None:
    s = one(SharedTwice(), (1, 8, 8))
    assert s.total_params == 10
    row = next(r for r in s.rows if r.name == "features")
    assert row.calls == 2 and row.params == 10
    assert s.total_macs == 2 * 64 * 9
    s = one(SharedAcross(), (4,), batch=2)
    assert s.total_params == 120
    acts = [r for r in s.rows if r.name.endswith(".act")]
    assert [r.name for r in acts] == ["blocks.0.act", "blocks.1.act", "blocks.2.act"]
    assert all(r.calls == 2 and r.flops_forward == 2 * 2 * 4 for r in acts)
    assert [r.name for r in s.rows if r.name.startswith("blocks.1.")] == [
        "blocks.1.layers.0", "blocks.1.act", "blocks.1.layers.1"]


def test_tied_weights_counted_once() -> None:
    model = nn.Sequential(nn.Linear(6, 6, bias=False), nn.ReLU(), nn.Linear(6, 6, bias=False))
    model[2].weight = model[0].weight
    s = one(model, (6,))
    assert s.total_params == 36
    assert s.memory.params == 36 * 4 and s.memory.grads == 36 * 4


def test_lazy_modules_are_materialized() -> None:
    model = nn.Sequential(nn.LazyConv2d(8, 3), nn.ReLU(), nn.Flatten(), nn.LazyLinear(10))
    s = one(model, (3, 12, 12))
    assert s.total_params == 8 * 27 + 8 + 8 * 100 * 10 + 10
    assert model[3].weight.shape == (10, 800)


def test_shape_error_names_layer_and_shape() -> None:
    model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.Flatten(),
                          nn.Linear(6 * 28 * 28, 10))
    with pytest.raises(ShapeError, match=r"layer '3' \(Linear\) failed on input \[1, 2400\]"):
        one(model, (1, 20, 20))
    with pytest.raises(ShapeError, match=r"layer '0' \(Conv2d\) failed on input \[1, 2, 28, 28\]"):
        one(model, (2, 28, 28))
    nested = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 7)))
    with pytest.raises(ShapeError, match=r"layer '0.0' \(Conv2d\).*\[1, 1, 4, 4\]"):
        one(nested, (1, 4, 4))


def test_batch_norm_over_one_value_per_channel() -> None:
    # batch 1 at 1x1: torch refuses to train it, but its cost is still counted ...
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.BatchNorm1d(2))
    s = one(model, (1, 3, 3))
    assert s.flops_forward == 2 * 18 + 2 + 7 * 2 + 7 * 2
    # ... and a real step is measured at the batch asked for (it failed before: torch's check)
    verify = F._verify_batch_size
    s = summary(model, (1, 3, 3))
    assert s.measured is not None and s.measured.batch_size == 1 and s.measured.peak > 0
    assert "Measured peak of one step at batch 1:" in str(s)
    # the check is lifted for the counted and measured step only, never for the process
    assert F._verify_batch_size is verify
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        model.train()(torch.zeros(1, 1, 3, 3))


def test_count_step_is_the_public_counting_entry_point() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tracker = ModuleTracker(model, OpCounts())
    out_bytes = count_step(model, torch.zeros(5, 3, device="meta"), tracker)
    assert out_bytes == 5 * 4 * 4
    assert tracker.counts.macs_fwd["0"] == 5 * 3 * 4  # a training step, attributed per layer
    assert tracker.counts.macs_bwd["0"] == 5 * 3 * 4  # dW only: the input needs no gradient
    assert not model.training and not model[1].training  # its eval flag is put back
    for k, v in model.state_dict().items():  # running statistics untouched
        torch.testing.assert_close(v, before[k])


def test_torch_check_is_restored_when_counting_fails() -> None:
    verify = F._verify_batch_size
    with pytest.raises(ShapeError):
        summary(nn.Sequential(nn.BatchNorm1d(2), nn.Linear(3, 1)), (2,), measure_memory=False)
    assert F._verify_batch_size is verify
    with pytest.raises(RuntimeError), one_value_per_channel_allowed():
        assert F._verify_batch_size is not verify
        raise RuntimeError("a failing step")
    assert F._verify_batch_size is verify


def test_measuring_prints_nothing_on_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    # the profiler's C++ side printed "USDT: ... profiler_start/stop" on every measurement
    summary(nn.Sequential(nn.Linear(4, 3)), (4,))
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    print("still here", file=sys.stderr)  # fd 2 is back after the measurement
    assert capfd.readouterr().err == "still here\n"


def test_counts_under_no_grad() -> None:
    with torch.no_grad():
        s = one(nn.Linear(3, 2), (3,))
    assert s.macs_backward == 6


@pytest.mark.parametrize("name", ["bn_lenet", "googlenet", "resnext50_32x4d"])
def test_zoo_models_fully_counted(name: str) -> None:
    with torch.device("meta"):
        model = models.create_model(name)
    s = summary(model, models.default_input_size(name), measure_memory=False)
    assert s.uncounted_ops == {}
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert sum(r.flops_backward for r in s.rows if r.is_leaf) == s.flops_backward
    # dX and dW of every layer, except the first layer's dX (the input needs no gradient)
    first = next(r for r in s.rows if r.is_leaf and r.macs)
    assert s.macs_backward == 2 * s.total_macs - first.macs


class ItemInForward(nn.Module):
    """.item() has no meta kernel: summary counts on the real device instead."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) * float(x.abs().max().item() >= 0)


def test_falls_back_to_real_device_when_meta_cannot_run() -> None:
    s = one(ItemInForward(), (3,), batch=2)
    assert s.total_macs == 2 * 9


def test_model_left_unchanged() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model[2].train()  # a mix of modes comes back as it was
    summary(model, (1, 8, 8), batch_size=4, optimizer="adamw")
    assert [m.training for m in model] == [False, False, True] and not model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())


def test_bad_arguments_raise_config_error() -> None:
    with pytest.raises(ConfigError, match="optimizer"):
        summary(nn.Linear(2, 2), (2,), optimizer="lion")
    with pytest.raises(ConfigError, match="input_size"):
        summary(nn.Linear(2, 2), (0, 2))
    with torch.device("meta"):
        m = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="measure_memory=False"):
        summary(m, (2,))


# -- memory -----------------------------------------------------------------------------------

def test_activation_estimate_counts_each_saved_storage_once() -> None:
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5))
    s = one(model, (10,), batch=4)
    # relu saves its output; the second linear saves the same tensor; the input is not counted
    assert s.memory.activations == 4 * 20 * 4
    s = one(nn.Sequential(nn.Conv2d(1, 2, 1), nn.MaxPool2d(2)), (1, 4, 4), batch=1)
    # max-pool saves its input (float32) and its argmax indices (int64)
    assert s.memory.activations == 2 * 16 * 4 + 2 * 4 * 8


@pytest.mark.parametrize(("opt", "momentum", "factor"),
                         [("sgd", 0.0, 0), ("sgd", 0.9, 1), ("adamw", 0.0, 2)])
def test_optimizer_state(opt: str, momentum: float, factor: int) -> None:
    model = nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 5))
    s = summary(model, (10,), optimizer=opt, momentum=momentum, measure_memory=False)
    n = 10 * 20 + 20 + 20 * 5 + 5
    assert s.memory.params == s.memory.grads == 4 * n
    assert s.memory.optimizer_state == factor * 4 * n + (16 if opt == "adamw" else 0)
    # what torch actually allocates agrees
    net = nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 5))
    o = make_optimizer(net.parameters(), opt, lr=0.01, momentum=momentum)  # the engine's
    net(torch.randn(3, 10)).sum().backward()
    o.step()
    real = sum(t.numel() * t.element_size() for st in o.state.values() for t in st.values()
               if isinstance(t, torch.Tensor))
    assert real == s.memory.optimizer_state


def test_cpu_peak_replays_allocation_events() -> None:
    def fn() -> torch.Tensor:
        a = torch.empty(250_000)  # 1 MB
        del a
        b = torch.empty(500_000)  # 2 MB, while a is already gone
        c = torch.empty(125_000)  # 0.5 MB, on top of b
        return b, c

    assert memory._cpu_peak_of(fn) == 2_500_000


def test_measured_peak_is_close_to_the_estimate() -> None:
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    s = summary(model, (3, 32, 32), batch_size=16, optimizer="sgd", momentum=0.9)
    m = s.measured
    assert m is not None and m.device == "cpu"
    assert m.resident == s.memory.params + s.memory.buffers + s.memory.input
    assert 0.7 * s.memory.total < m.peak < 2.0 * s.memory.total
    assert "Measured peak of one step" in str(s)


# -- rendering --------------------------------------------------------------------------------

def test_renderings() -> None:
    s = summary(resnet_ref((1, 1, 1, 1), False), (3, 64, 64), measure_memory=False)
    text = str(s)
    assert f"Total params: {s.total_params:,}" in text
    assert "1 MAC = 2 FLOPs" in text
    md = s.to_markdown().splitlines()
    table = [line for line in md if line.startswith("|")]
    assert len(table) == len(s.rows) + 2 and all(line.count("|") == 8 for line in table)
    d = json.loads(s.to_json())
    assert d["total_macs"] == s.total_macs and len(d["rows"]) == len(s.rows)
    assert d["memory"]["total"] == s.memory.total
    for depth in (None, 1, 2):
        rows = summary(resnet_ref((1, 1, 1, 1), False), (3, 64, 64), measure_memory=False,
                       depth=depth).rows
        assert depth is None or max(r.depth for r in rows) == depth
        for key in ("macs", "flops_forward", "flops_backward", "activation_bytes"):
            leaves = sum(getattr(r, key) for r in rows if r.is_leaf)
            total = {"macs": s.total_macs, "flops_forward": s.flops_forward,
                     "flops_backward": s.flops_backward,
                     "activation_bytes": s.memory.activations}[key]
            assert leaves == total, (depth, key)


# -- the chapter's exercises --------------------------------------------------------------------

@pytest.mark.parametrize(("ci", "co", "h", "w", "k", "pad", "stride"),
                         [(3, 8, 12, 10, 3, 1, 1), (2, 4, 9, 9, 5, 2, 2), (4, 6, 7, 11, 1, 0, 3)])
def test_conv2d_cost_matches_counted_and_real_tensors(ci: int, co: int, h: int, w: int, k: int,
                                                      pad: int, stride: int) -> None:
    c = conv2d_cost(ci, co, h, w, k, k, 2 * pad, 2 * pad, stride, stride, batch_size=2)
    x = torch.randn(2, ci, h, w, requires_grad=True)
    weight = torch.randn(co, ci, k, k, requires_grad=True)
    bias = torch.randn(co, requires_grad=True)
    with FlopCounterMode(display=False) as fwd:
        y = F.conv2d(x, weight, bias, stride, pad)
    with FlopCounterMode(display=False) as bwd:
        y.backward(torch.ones_like(y))
    assert c.output_hw == tuple(y.shape[2:])
    assert 2 * c.forward_mults == fwd.get_total_flops()
    assert 2 * c.backward_mults == bwd.get_total_flops()
    assert c.forward_adds == y.numel() * (ci * k * k)  # (ci*k*k - 1) accumulations + bias
    assert c.forward_memory == x.numel() + weight.numel() + bias.numel() + y.numel()
    grads = x.grad.numel() + weight.grad.numel() + bias.grad.numel() + y.numel()
    assert c.backward_memory == c.forward_memory + grads
    assert c.bytes(4)["forward"] == 4 * c.forward_memory
    # the book's formula for the forward multiplications (one example)
    one_ex = conv2d_cost(ci, co, h, w, k, k, 2 * pad, 2 * pad, stride, stride)
    mh, mw = one_ex.output_hw
    assert one_ex.forward_mults == ci * co * k * k * mh * mw


def test_conv2d_cost_rejects_a_kernel_that_does_not_fit() -> None:
    with pytest.raises(ShapeError, match="does not fit"):
        conv2d_cost(1, 1, 3, 3, 5, 5)


def test_alexnet_vs_vgg_comparison() -> None:
    c = compare_models("alexnet", "vgg11", (1, 224, 224))
    assert (c.a.model, c.b.model) == ("alexnet", "vgg11")
    # exercise 8.2.2: VGG is slower (many more MACs) and holds far more activations
    assert c.ratios["macs"] > 5 and c.ratios["activations"] > 3
    assert c.ratios["macs"] == c.b.total_macs / c.a.total_macs
    # exercise 8.2.3: at 96x96 the convolutions' work drops by about (224/96)^2
    small = compare_models("alexnet", "vgg11", (1, 96, 96))
    conv_ratio = c.b.total_macs / small.b.total_macs
    assert 4.0 < conv_ratio < (224 / 96) ** 2 + 0.5
    assert "ratio" in str(c) and "vgg11" in str(c)


# --- the memory guard: will a whole run fit? -------------------------------------------------

def test_run_memory_counts_on_meta_and_scales_with_the_input() -> None:
    with torch.device("meta"):
        small = models.create_model("lenet_modern", input_size=(28, 28))
        huge = models.create_model("lenet_modern", input_size=(3000, 3000))
    a = memory.run_memory(small, (1, 28, 28), batch_size=128, eval_batch_size=1024)
    # The same counting pass as summary(): the step's estimate is the same figure.
    s = summary(small, (1, 28, 28), batch_size=128, measure_memory=False)
    assert a.model + a.train_step == s.memory.total + 128 * 28 * 28 * 4  # + the batch prepared
    assert a.eval_batch > 1024 * 28 * 28 * 4 * 2  # the evaluation batch and its largest layer
    b = memory.run_memory(huge, (1, 3000, 3000), batch_size=128, eval_batch_size=1024)
    assert b.total > 100e9 > 1e9 > a.total  # ~525 GB: nothing of it was allocated
    with torch.device("meta"):
        lazy = nn.Sequential(nn.LazyLinear(3))
    assert memory.run_memory(lazy, (4,), batch_size=2, eval_batch_size=2) is None


def test_check_fits_refuses_in_one_line_with_the_estimate() -> None:
    need = memory.RunMemory(model=2 * 10**9, train_step=10**9, eval_batch=5 * 10**9,
                            data=10**8, batch_size=128, eval_batch_size=1024)
    assert need.total == 7.1e9
    memory.check_fits(need, 8 * 10**9, "m", "cpu")  # fits: nothing happens
    memory.check_fits(need, None, "m", "cpu")  # unknown: nothing happens
    with pytest.raises(ConfigError) as err:
        memory.check_fits(need, 4 * 10**9, "lenet at 96x96", "cuda:0")
    assert str(err.value).startswith(
        "lenet at 96x96 needs about 7.1 GB of memory (model and optimizer 2.0 GB, training batch "
        "of 128 1.0 GB, evaluation batch of 1024 5.0 GB, data 100 MB) but 4.0 GB is available "
        "on cuda:0; lower resize, batch_size or eval_batch_size")


def test_check_run_fits_is_the_engines_preflight(monkeypatch, tmp_path) -> None:
    from _trainkit import make_dataset

    from cnnlab.train import TrainConfig, train

    ds = make_dataset(64, 32)
    cfg = TrainConfig(model="lenet_modern", epochs=1, batch_size=32, progress="none",
                      plot=False, tensorboard=False)
    monkeypatch.setenv("CNNLAB_AVAILABLE_MEMORY", "10G")
    need = memory.check_run_fits(cfg.replace(resize=(28, 28)), ds, torch.device("cpu"))
    assert 1e6 < need.total < 1e9 and need.data == 0  # on the CPU the data is already loaded
    cuda = memory.check_run_fits(cfg.replace(resize=(28, 28)), ds, torch.device("cuda"))
    assert cuda.data == ds.train.images.nbytes + ds.test.images.nbytes + 96 * 8
    monkeypatch.setenv("CNNLAB_AVAILABLE_MEMORY", "1M")
    with pytest.raises(ConfigError, match=r"lenet_modern at 28x28 needs about \d+ MB .* but 1 MB "
                                          "is available on cpu"):
        train("lenet_modern", ds, cfg, out_dir=tmp_path / "run", preflight=memory.check_run_fits)
    assert not (tmp_path / "run").exists()  # refused before the run folder was made
