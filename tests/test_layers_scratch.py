"""The book's from-scratch/exercise layers equal the torch operations they imitate (float64)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cnnlab import ops
from cnnlab.errors import ShapeError
from cnnlab.layers import AvgPoolConv, Conv2D, MinPool2d, ReLUMaxPool2d

TOL = dict(rtol=1e-10, atol=1e-10)
SWEEP = settings(max_examples=30, deadline=None, derandomize=True)
f64 = torch.float64

pairs = lambda lo, hi: st.tuples(st.integers(lo, hi), st.integers(lo, hi))


def rand(*shape, seed=0):
    return torch.randn(*shape, dtype=f64, generator=torch.Generator().manual_seed(seed))


def value_and_input_grad(fn, X):
    x = X.clone().requires_grad_()
    y = fn(x)
    y.backward(rand(*y.shape, seed=7))
    return y.detach(), x.grad


def assert_same(fn_a, fn_b, X):
    ya, ga = value_and_input_grad(fn_a, X)
    yb, gb = value_and_input_grad(fn_b, X)
    torch.testing.assert_close(ya, yb, **TOL)
    torch.testing.assert_close(ga, gb, **TOL)


# --- Conv2D (section 7.2) -----------------------------------------------------------------------


def edge_data():
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    return X, ops.corr2d(X, torch.tensor([[1.0, -1.0]]))


@pytest.mark.parametrize("bias", [False, True])
def test_conv2d_learns_the_edge_kernel(bias):
    """Section 7.2.4: gradient descent on (X, Y) recovers the kernel [1, -1] (and a zero bias)."""
    torch.manual_seed(0)
    X, Y = edge_data()
    conv = Conv2D((1, 2), bias=bias)
    # The book's lr 3e-2 with a summed loss; a bias sees all 42 outputs, so it needs a smaller one.
    lr = 1e-2 if bias else 3e-2
    for _ in range(400):
        loss = ((conv(X) - Y) ** 2).sum()
        conv.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in conv.parameters():
                p -= lr * p.grad
    torch.testing.assert_close(conv.weight.detach(), torch.tensor([[1.0, -1.0]]),
                               atol=1e-3, rtol=0)
    if bias:
        assert abs(conv.bias.item()) < 1e-3
    assert loss.item() < 1e-5


@SWEEP
@given(lead=st.sampled_from([(), (3,), (2, 2)]), h=st.integers(2, 8), w=st.integers(2, 8),
       k=pairs(1, 3), stride=pairs(1, 3), padding=pairs(0, 2), bias=st.booleans())
def test_conv2d_layer_equals_torch_conv(lead, h, w, k, stride, padding, bias):
    assume(h + 2 * padding[0] >= k[0] and w + 2 * padding[1] >= k[1])
    torch.manual_seed(0)
    conv = Conv2D(k, stride, padding, bias=bias).double()
    X = rand(*lead, h, w)

    def reference(x):
        planes = x.reshape(-1, 1, h, w)
        y = F.conv2d(planes, conv.weight[None, None], conv.bias, stride, padding)
        return y.reshape(*lead, *y.shape[-2:])

    assert_same(conv, reference, X)
    # and the parameter gradients
    g = rand(*conv(X).shape, seed=3)
    grads = [torch.autograd.grad((f(X) * g).sum(), conv.weight)[0] for f in (conv, reference)]
    torch.testing.assert_close(grads[0], grads[1], **TOL)


def test_conv2d_layer_repr_and_book_init():
    torch.manual_seed(0)
    conv = Conv2D(3, padding=1)
    assert conv.weight.shape == (3, 3) and (conv.weight >= 0).all() and (conv.weight < 1).all()
    assert conv.bias.item() == 0.0
    assert "kernel_size=(3, 3)" in repr(conv) and "padding=(1, 1)" in repr(conv)
    assert Conv2D(2, bias=False).bias is None


# --- AvgPoolConv (exercise 7.5.1) ---------------------------------------------------------------


@SWEEP
@given(batched=st.booleans(), h=st.integers(1, 9), w=st.integers(1, 9), k=pairs(1, 4),
       stride=st.none() | pairs(1, 3), padding=pairs(0, 2))
def test_avgpoolconv_equals_avg_pool2d(batched, h, w, k, stride, padding):
    assume(padding[0] <= k[0] // 2 and padding[1] <= k[1] // 2)  # torch's avg_pool2d rule
    assume(h + 2 * padding[0] >= k[0] and w + 2 * padding[1] >= k[1])
    X = rand(2, 3, h, w) if batched else rand(3, h, w)
    assert_same(AvgPoolConv(k, stride, padding),
                lambda x: F.avg_pool2d(x, k, stride, padding, count_include_pad=True), X)


def test_avgpoolconv_has_no_parameters_and_is_a_conv():
    layer = AvgPoolConv(2)
    assert list(layer.parameters()) == []
    X = torch.arange(16.0).reshape(1, 1, 4, 4)
    # Same as convolving with a 2x2 kernel of 1/4 at stride 2 (the exercise's construction).
    torch.testing.assert_close(layer(X), F.conv2d(X, torch.full((1, 1, 2, 2), 0.25), stride=2))
    assert layer(X.float()).dtype == torch.float32


# --- ReLUMaxPool2d (exercise 7.5.3) -------------------------------------------------------------


@SWEEP
@given(batched=st.booleans(), h=st.integers(1, 9), w=st.integers(1, 9), k=pairs(1, 4),
       stride=st.none() | pairs(1, 3), padding=pairs(0, 2), shift=st.sampled_from([0.0, -50.0]))
def test_relumaxpool_equals_max_pool2d(batched, h, w, k, stride, padding, shift):
    assume(padding[0] <= k[0] // 2 and padding[1] <= k[1] // 2)
    assume(h + 2 * padding[0] >= k[0] and w + 2 * padding[1] >= k[1])
    # shift=-50: all-negative inputs, where zero padding would wrongly win without care.
    X = (rand(2, 3, h, w) if batched else rand(3, h, w)) + shift
    assert_same(ReLUMaxPool2d(k, stride, padding), lambda x: F.max_pool2d(x, k, stride, padding),
                X)


def test_relumaxpool_uses_only_relu_and_convs():
    """The forward pass calls no max/amax/maximum: torch's max ops are poisoned while it runs."""
    X = rand(2, 3, 6, 6)
    expected = F.max_pool2d(X, 3, 2, 1)
    originals = {name: getattr(torch, name) for name in ("max", "amax", "maximum")}

    def banned(*args, **kwargs):
        raise AssertionError("ReLUMaxPool2d used a max op")

    try:
        for name in originals:
            setattr(torch, name, banned)
        Y = ReLUMaxPool2d(3, 2, 1)(X)
    finally:
        for name, fn in originals.items():
            setattr(torch, name, fn)
    torch.testing.assert_close(Y, expected, **TOL)


def test_relumaxpool_rejects_wide_padding():
    with pytest.raises(ShapeError, match=r"padding \(2, 2\) must be at most half"):
        ReLUMaxPool2d(3, padding=2)


# --- MinPool2d (exercise 7.5.6) -----------------------------------------------------------------


@SWEEP
@given(batched=st.booleans(), h=st.integers(1, 9), w=st.integers(1, 9), k=pairs(1, 4),
       stride=st.none() | pairs(1, 3), padding=pairs(0, 2), dilation=pairs(1, 2),
       ceil_mode=st.booleans())
def test_minpool_equals_negated_max_pool(batched, h, w, k, stride, padding, dilation, ceil_mode):
    assume(padding[0] <= k[0] // 2 and padding[1] <= k[1] // 2)
    assume(h + 2 * padding[0] >= dilation[0] * (k[0] - 1) + 1)
    assume(w + 2 * padding[1] >= dilation[1] * (k[1] - 1) + 1)
    X = rand(2, 3, h, w) if batched else rand(3, h, w)
    reference = lambda x: -F.max_pool2d(-x, k, stride, padding, dilation, ceil_mode)
    layer = MinPool2d(k, stride, padding, dilation, ceil_mode)
    ref = reference(X)
    torch.testing.assert_close(layer(X), ref, **TOL)
    assume(torch.isfinite(ref).all())  # all-padding windows: torch's backward is unsafe there
    assert_same(layer, reference, X)


def test_minpool_book_style_example():
    X = torch.arange(9.0).reshape(1, 1, 3, 3)
    torch.testing.assert_close(MinPool2d(2, 1)(X), torch.tensor([[[[0.0, 1.0], [3.0, 4.0]]]]))
    assert "ceil_mode=False" in repr(MinPool2d(2))
