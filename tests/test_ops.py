"""cnnlab.ops against torch.nn.functional in float64: values and gradients, swept with hypothesis.

Tolerance: values and gradients agree to 1e-10 (relative and absolute) in float64.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from cnnlab import ops
from cnnlab.errors import CnnlabError, ConfigError, ShapeError

TOL = dict(rtol=1e-10, atol=1e-10)
SWEEP = settings(max_examples=25, deadline=None, derandomize=True)
f64 = torch.float64


def _grads(fn, *tensors):
    """Value of fn(*tensors) and the gradients of a random projection of it w.r.t. each tensor."""
    leaves = [t.detach().clone().requires_grad_() if t is not None else None for t in tensors]
    y = fn(*leaves)
    g = torch.randn(y.shape, dtype=y.dtype, generator=torch.Generator().manual_seed(1))
    y.backward(g)
    return y.detach(), [t.grad if t is not None else None for t in leaves]


def assert_same_op(ours, theirs, *tensors):
    """ours and theirs agree in value and in every input's gradient."""
    y1, g1 = _grads(ours, *tensors)
    y2, g2 = _grads(theirs, *tensors)
    assert y1.shape == y2.shape
    torch.testing.assert_close(y1, y2, **TOL)
    for a, b in zip(g1, g2):
        if b is not None:
            torch.testing.assert_close(a, b, **TOL)


def rand(*shape, seed=0):
    return torch.randn(*shape, dtype=f64, generator=torch.Generator().manual_seed(seed))


# --- corr2d family (sections 7.2 and 7.4) --------------------------------------------------------


def test_corr2d_book_example_both_versions():
    X = torch.arange(9.0).reshape(3, 3)
    K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    expected = torch.tensor([[19.0, 25.0], [37.0, 43.0]])
    torch.testing.assert_close(ops.corr2d(X, K), expected)
    torch.testing.assert_close(ops.corr2d_loop(X, K), expected)


def test_corr2d_edge_detection_example():
    X = torch.ones(6, 8)
    X[:, 2:6] = 0
    Y = ops.corr2d(X, torch.tensor([[1.0, -1.0]]))
    expected = torch.zeros(6, 7)
    expected[:, 1], expected[:, 5] = 1.0, -1.0
    torch.testing.assert_close(Y, expected)
    assert ops.corr2d(X.t(), torch.tensor([[1.0, -1.0]])).abs().sum() == 0  # vertical edges only


@SWEEP
@given(h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4))
def test_corr2d_matches_loop_and_torch_with_grads(h, w, kh, kw):
    assume(kh <= h and kw <= w)
    X, K = rand(h, w), rand(kh, kw, seed=1)
    torch.testing.assert_close(ops.corr2d(X, K), ops.corr2d_loop(X, K), **TOL)
    assert_same_op(ops.corr2d, lambda x, k: F.conv2d(x[None, None], k[None, None])[0, 0], X, K)
    assert_same_op(ops.corr2d_loop, ops.corr2d, X, K)


def test_corr2d_broadcasts_leading_dims():
    X, K = rand(2, 3, 7, 6), rand(3, 2, 2, seed=1)
    Y = ops.corr2d(X, K)
    assert Y.shape == (2, 3, 6, 5)
    torch.testing.assert_close(Y[1, 2], ops.corr2d_loop(X[1, 2], K[2]), **TOL)


def test_corr2d_kernel_too_large():
    with pytest.raises(ShapeError, match=r"kernel 4x2 is larger than the input 3x5"):
        ops.corr2d(torch.zeros(3, 5), torch.zeros(4, 2))
    with pytest.raises(ShapeError, match="2-D"):
        ops.corr2d_loop(torch.zeros(1, 3, 5), torch.zeros(2, 2))


def test_corr2d_multi_in_book_example():
    X = torch.tensor([[[0.0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1.0, 2, 3], [4, 5, 6], [7, 8, 9]]])
    K = torch.tensor([[[0.0, 1], [2, 3]], [[1.0, 2], [3, 4]]])
    torch.testing.assert_close(ops.corr2d_multi_in(X, K),
                               torch.tensor([[56.0, 72.0], [104.0, 120.0]]))
    K3 = torch.stack((K, K + 1, K + 2), 0)  # (3, 2, 2, 2), as in section 7.4.2
    Y = ops.corr2d_multi_in_out(X, K3)
    assert Y.shape == (3, 2, 2)
    torch.testing.assert_close(Y[0], ops.corr2d_multi_in(X, K))
    torch.testing.assert_close(Y[2], ops.corr2d_multi_in(X, K + 2))


@SWEEP
@given(ci=st.integers(1, 4), co=st.integers(1, 4), k=st.integers(1, 3), batch=st.booleans())
def test_multi_channel_corr_matches_conv2d(ci, co, k, batch):
    X = rand(2, ci, 6, 5) if batch else rand(ci, 6, 5)
    K = rand(co, ci, k, k, seed=1)
    assert_same_op(ops.corr2d_multi_in_out, F.conv2d, X, K)
    assert_same_op(ops.corr2d_multi_in, lambda x, kk: F.conv2d(x, kk[None]).squeeze(-3),
                   X, K[0])
    K1 = rand(co, ci, 1, 1, seed=2)
    assert_same_op(ops.corr2d_multi_in_out_1x1, ops.corr2d_multi_in_out, X, K1)
    assert_same_op(ops.corr2d_multi_in_out_1x1, F.conv2d, X, K1)


def test_multi_channel_shape_errors():
    with pytest.raises(ShapeError, match="same Ci"):
        ops.corr2d_multi_in(torch.zeros(3, 5, 5), torch.zeros(2, 2, 2))
    with pytest.raises(ShapeError, match=r"\(Co, Ci, 1, 1\)"):
        ops.corr2d_multi_in_out_1x1(torch.zeros(3, 5, 5), torch.zeros(2, 3, 3, 3))


# --- padding ------------------------------------------------------------------------------------


@SWEEP
@given(h=st.integers(1, 6), w=st.integers(1, 6), pads=st.tuples(*[st.integers(0, 5)] * 4),
       mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
def test_pad2d_matches_torch(h, w, pads, mode):
    top, bottom, left, right = pads
    if mode == "reflect":
        assume(max(top, bottom) < h and max(left, right) < w)
    if mode == "circular":
        assume(max(top, bottom) <= h and max(left, right) <= w)
    torch_mode = "constant" if mode == "zeros" else mode
    X = rand(2, 3, h, w)
    assert_same_op(lambda x: ops.pad2d(x, pads, mode),
                   lambda x: F.pad(x, (left, right, top, bottom), mode=torch_mode), X)


def test_pad2d_negative_crops_and_bad_mode():
    X = rand(1, 1, 5, 5)
    torch.testing.assert_close(ops.pad2d(X, (-1, 0, -2, 1)), F.pad(X, (-2, 1, -1, 0)))
    with pytest.raises(ConfigError, match="padding_mode 'mirror'"):
        ops.conv2d(X, rand(1, 1, 3, 3), padding=1, padding_mode="mirror")
    with pytest.raises(ShapeError, match="reflect padding .* smaller than the input size 5"):
        ops.pad2d(X, (5, 5, 0, 0), "reflect")


# --- conv2d (im2col) ----------------------------------------------------------------------------


def torch_conv(padding_mode, stride, padding, dilation, groups):
    """The reference: F.conv2d, after F.pad for the non-zero padding modes (as nn.Conv2d does)."""
    def conv(x, w, b):
        if padding_mode == "zeros":
            return F.conv2d(x, w, b, stride, padding, dilation, groups)
        ph, pw = padding
        return F.conv2d(F.pad(x, (pw, pw, ph, ph), mode=padding_mode), w, b, stride, 0,
                        dilation, groups)
    return conv


@settings(max_examples=70, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 2), groups=st.integers(1, 3), cg=st.integers(1, 3), cog=st.integers(1, 3),
    h=st.integers(1, 9), w=st.integers(1, 9), k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding_mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
    bias=st.booleans(),
)
def test_conv2d_matches_torch(n, groups, cg, cog, h, w, k, stride, padding, dilation,
                              padding_mode, bias):
    if padding_mode == "reflect":
        assume(padding[0] < h and padding[1] < w)
    if padding_mode == "circular":
        assume(padding[0] <= h and padding[1] <= w)
    span = [dilation[a] * (k[a] - 1) + 1 for a in range(2)]
    assume(h + 2 * padding[0] >= span[0] and w + 2 * padding[1] >= span[1])
    X = rand(n, groups * cg, h, w)
    Wt = rand(groups * cog, cg, *k, seed=1)
    b = rand(groups * cog, seed=2) if bias else None
    ours = lambda x, wt, bb: ops.conv2d(x, wt, bb, stride, padding, dilation, groups, padding_mode)
    assert_same_op(ours, torch_conv(padding_mode, stride, padding, dilation, groups), X, Wt, b)
    Y = ops.conv2d(X, Wt, b, stride, padding, dilation, groups, padding_mode)
    assert Y.shape[-2:] == ops.conv2d_output_shape((h, w), k, stride, padding, dilation)
    assert Y.is_contiguous()


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("k,d", [((2, 4), (1, 1)), ((3, 2), (2, 3)), ((1, 1), (1, 1))])
def test_conv2d_same_and_valid_padding(k, d):
    X, Wt, b = rand(2, 4, 7, 6), rand(6, 2, *k, seed=1), rand(6, seed=2)
    for pad in ("same", "valid"):
        assert_same_op(lambda x, w, bb, pad=pad: ops.conv2d(x, w, bb, 1, pad, d, 2),
                       lambda x, w, bb, pad=pad: F.conv2d(x, w, bb, 1, pad, d, 2), X, Wt, b)
    assert ops.conv2d(X, Wt, b, padding="same", dilation=d, groups=2).shape[-2:] == (7, 6)


def test_conv2d_unbatched_input_and_gradcheck():
    X, Wt, b = rand(3, 6, 5), rand(4, 3, 3, 2, seed=1), rand(4, seed=2)
    torch.testing.assert_close(ops.conv2d(X, Wt, b, stride=2, padding=1),
                               F.conv2d(X, Wt, b, stride=2, padding=1), **TOL)
    for mode in ("zeros", "reflect", "circular"):
        args = [t.clone().requires_grad_() for t in (rand(1, 2, 5, 4), rand(2, 1, 2, 3), rand(2))]
        fn = lambda x, w, bb, mode=mode: ops.conv2d(x, w, bb, (2, 1), (1, 2), (2, 1), 2, mode)
        assert torch.autograd.gradcheck(fn, args)
    # The hand-written col2im is itself differentiable, so second derivatives work too.
    args = [t.clone().requires_grad_() for t in (rand(1, 2, 4, 4), rand(2, 2, 2, 2))]
    assert torch.autograd.gradgradcheck(lambda x, w: ops.conv2d(x, w, padding=1), args)
    args = [t.clone().requires_grad_() for t in (rand(1, 2, 6, 5), rand(2, 1, 2, 3))]
    assert torch.autograd.gradgradcheck(
        lambda x, w: ops.conv2d(x, w, stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2),
        args)


def test_conv2d_shape_errors():
    X = torch.zeros(2, 6, 5, 5)
    with pytest.raises(ShapeError, match="groups=4 must divide both input channels 6"):
        ops.conv2d(X, torch.zeros(4, 1, 3, 3), groups=4)
    with pytest.raises(ShapeError, match=r"6 channels but weight \(4, 1, 3, 3\) expects 1 x"):
        ops.conv2d(X, torch.zeros(4, 1, 3, 3), groups=2)
    with pytest.raises(ShapeError, match=r"conv2d: kernel 8 .* padded input 7 .input 5, padding 1"):
        ops.conv2d(X, torch.zeros(4, 6, 8, 3), padding=1)
    with pytest.raises(ShapeError, match=r"bias \(3,\) must be \(4,\)"):
        ops.conv2d(X, torch.zeros(4, 6, 3, 3), torch.zeros(3))
    with pytest.raises(ShapeError, match=r"\(N, C, H, W\)"):
        ops.conv2d(torch.zeros(5, 5), torch.zeros(1, 1, 3, 3))
    with pytest.raises(ConfigError, match="padding='same' needs stride 1"):
        ops.conv2d(X, torch.zeros(4, 6, 3, 3), stride=2, padding="same")
    with pytest.raises(ConfigError, match="stride=.* must be a positive int"):
        ops.conv2d(X, torch.zeros(4, 6, 3, 3), stride=0)


# --- conv_transpose2d ---------------------------------------------------------------------------


@settings(max_examples=50, deadline=None, derandomize=True)
@given(
    n=st.integers(1, 2), groups=st.integers(1, 2), cg=st.integers(1, 3), cog=st.integers(1, 3),
    h=st.integers(1, 5), w=st.integers(1, 5), k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    output_padding=st.tuples(st.integers(0, 2), st.integers(0, 2)), bias=st.booleans(),
)
def test_conv_transpose2d_matches_torch(n, groups, cg, cog, h, w, k, stride, padding, dilation,
                                        output_padding, bias):
    for a in range(2):
        assume(output_padding[a] < max(stride[a], dilation[a]))
    size = [(n_ - 1) * stride[a] - 2 * padding[a] + dilation[a] * (k[a] - 1)
            + output_padding[a] + 1 for a, n_ in enumerate((h, w))]
    assume(min(size) >= 1)
    X = rand(n, groups * cg, h, w)
    Wt = rand(groups * cg, cog, *k, seed=1)
    b = rand(groups * cog, seed=2) if bias else None
    args = (stride, padding, output_padding, groups, dilation)
    assert_same_op(lambda x, wt, bb: ops.conv_transpose2d(x, wt, bb, *args),
                   lambda x, wt, bb: F.conv_transpose2d(x, wt, bb, *args), X, Wt, b)


def test_conv_transpose2d_is_stride_one_half_upsampling():
    # Exercise 7.3.6: a stride-2 transposed conv doubles the resolution; with a 2x2 kernel of
    # ones it is nearest-neighbour upsampling, each input pixel copied into a 2x2 block.
    X = rand(1, 1, 3, 4)
    Y = ops.conv_transpose2d(X, torch.ones(1, 1, 2, 2, dtype=f64), stride=2)
    torch.testing.assert_close(Y, X.repeat_interleave(2, -2).repeat_interleave(2, -1))
    # kernel 4, stride 2, padding 1 (the usual "learned upsampling" layer) also doubles the size.
    assert ops.conv_transpose2d(rand(2, 3, 5, 7), rand(3, 2, 4, 4), stride=2, padding=1).shape \
        == (2, 2, 10, 14)
    # It is the adjoint of the strided conv: <conv(x), y> == <x, conv_transpose(y)>.
    x, y, k = rand(1, 2, 8, 8), rand(1, 3, 4, 4, seed=1), rand(3, 2, 3, 3, seed=2)
    lhs = (ops.conv2d(x, k, stride=2, padding=1) * y).sum()
    rhs = (x * ops.conv_transpose2d(y, k, stride=2, padding=1, output_padding=1)).sum()
    torch.testing.assert_close(lhs, rhs, **TOL)


def test_conv_transpose2d_errors():
    with pytest.raises(ConfigError, match="output_padding .* smaller than stride"):
        ops.conv_transpose2d(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), output_padding=1)
    with pytest.raises(ShapeError, match=r"output would be -2x-2 for input 2x2, kernel 1x1"):
        ops.conv_transpose2d(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 1, 1), padding=2)
    with pytest.raises(ShapeError, match="input has 2 channels"):
        ops.conv_transpose2d(torch.zeros(1, 2, 3, 3), torch.zeros(3, 1, 3, 3))


# --- pool2d -------------------------------------------------------------------------------------


def torch_pool(mode, k, s, p, ceil_mode, count_include_pad, d):
    if mode == "avg":
        return lambda x: F.avg_pool2d(x, k, s, p, ceil_mode, count_include_pad)
    if mode == "max":
        return lambda x: F.max_pool2d(x, k, s, p, d, ceil_mode)
    return lambda x: -F.max_pool2d(-x, k, s, p, d, ceil_mode)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    batched=st.booleans(), h=st.integers(1, 9), w=st.integers(1, 9),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.none() | st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    mode=st.sampled_from(["max", "avg", "min"]), ceil_mode=st.booleans(),
    count_include_pad=st.booleans(),
)
def test_pool2d_matches_torch(batched, h, w, k, stride, padding, dilation, mode, ceil_mode,
                              count_include_pad):
    assume(padding[0] <= k[0] // 2 and padding[1] <= k[1] // 2)
    if mode == "avg":
        dilation = (1, 1)
    span = [dilation[a] * (k[a] - 1) + 1 for a in range(2)]
    assume(h + 2 * padding[0] >= span[0] and w + 2 * padding[1] >= span[1])
    X = rand(2, 3, h, w) if batched else rand(3, h, w)
    ours = lambda x: ops.pool2d(x, k, stride, padding, mode, ceil_mode, count_include_pad,
                                dilation)
    theirs = torch_pool(mode, k, stride, padding, ceil_mode, count_include_pad, dilation)
    # With dilation a window can hold only padding (torch gives +-inf there, and its backward
    # then corrupts memory): leave those out; the values test below still covers them.
    ref = theirs(X)
    torch.testing.assert_close(ours(X), ref, **TOL)
    assume(torch.isfinite(ref).all())
    assert_same_op(ours, theirs, X)
    assert ours(X).shape[-2:] == ops.pool2d_output_shape((h, w), k, stride, padding, dilation,
                                                         ceil_mode)


def test_pool2d_book_examples():
    X = torch.arange(9.0).reshape(1, 3, 3)
    torch.testing.assert_close(ops.pool2d(X, 2, 1), torch.tensor([[[4.0, 5.0], [7.0, 8.0]]]))
    torch.testing.assert_close(ops.pool2d(X, 2, 1, mode="avg"),
                               torch.tensor([[[2.0, 3.0], [5.0, 6.0]]]))
    X = torch.arange(16.0).reshape(1, 1, 4, 4)
    torch.testing.assert_close(ops.pool2d(X, 3, padding=1, stride=2),
                               torch.tensor([[[[5.0, 7.0], [13.0, 15.0]]]]))
    # Max padding is -inf, not 0: an all-negative input keeps negative maxima at the border.
    assert (ops.pool2d(-1 - X, 3, 2, 1) < 0).all()


def test_pool2d_errors():
    X = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ShapeError, match=r"pool2d: padding \(2, 2\) must be at most half the"):
        ops.pool2d(X, 3, padding=2)
    with pytest.raises(ConfigError, match="mode 'median'"):
        ops.pool2d(X, 2, mode="median")
    with pytest.raises(ConfigError, match="no dilation"):
        ops.pool2d(X, 2, mode="avg", dilation=2)
    with pytest.raises(ShapeError, match="larger than the padded input 4"):
        ops.pool2d(X, 5)


# --- output shapes ------------------------------------------------------------------------------


def test_output_shapes_book_examples():
    assert ops.conv2d_output_shape(8, 3, padding=1) == 8
    assert ops.conv2d_output_shape((8, 8), (5, 3), padding=(2, 1)) == (8, 8)
    assert ops.conv2d_output_shape(8, 3, stride=2, padding=1) == 4
    assert ops.conv2d_output_shape((8, 8), (3, 5), stride=(3, 4), padding=(0, 1)) == (2, 2)
    assert ops.conv2d_output_shape(28, 5, padding="same") == 28
    assert ops.conv2d_output_shape(10, 3, dilation=2) == 6
    assert ops.pool2d_output_shape(96, 3, 2, 1) == 48
    assert ops.pool2d_output_shape(5, 2, ceil_mode=True) == 3
    assert ops.pool2d_output_shape(5, 2) == 2
    assert ops.pool2d_output_shape((6, 7), 3, 2, ceil_mode=True) == (3, 3)
    with pytest.raises(ShapeError, match="kernel 5 .* larger than the padded input 3"):
        ops.conv2d_output_shape(3, 5)
    with pytest.raises(ConfigError, match="kernel_size='3' must be a positive int or a pair"):
        ops.conv2d_output_shape(3, "3")


# --- receptive field ----------------------------------------------------------------------------


def test_receptive_field_known_values():
    two_3x3 = nn.Sequential(nn.Conv2d(1, 1, 3), nn.ReLU(), nn.Conv2d(1, 1, 3))
    assert ops.receptive_field(two_3x3, 32).size == (5, 5)  # the VGG argument
    rf = ops.receptive_field(nn.Sequential(
        nn.Conv2d(1, 64, 7, 2, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
        nn.Sequential(nn.Conv2d(64, 64, 3, padding=1), nn.Conv2d(64, 64, 3, padding=1)),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(64, 10)), (1, 96, 96))
    assert [r.name for r in rf.layers] == ["", "0", "1", "2", "3", "4.0", "4.1", "5", "6", "7"]
    by_name = {r.name: r for r in rf.layers}
    assert by_name["3"].output_size == (24, 24) and by_name["3"].jump == (4, 4)
    assert by_name["3"].receptive_field == (11, 11)
    assert by_name["4.1"].receptive_field == (27, 27)
    assert rf.output_size == (1, 1) and rf.size == (27 + 23 * 4,) * 2
    text = str(rf)
    assert text.splitlines()[0].split() == ["layer", "type", "output", "jump", "receptive",
                                            "field", "start"]
    assert "MaxPool2d" in text and "24x24" in text
    assert rf.to_dict()[1]["kind"] == "Conv2d"


layer_st = st.one_of(
    st.tuples(st.just("conv"), st.integers(1, 4), st.integers(1, 2), st.integers(0, 2),
              st.integers(1, 2)),
    st.tuples(st.just("avg"), st.integers(1, 3), st.integers(1, 2), st.integers(0, 1),
              st.just(1)),
    st.tuples(st.just("pad"), st.integers(0, 2), st.just(1), st.just(0), st.just(1)),
)


def build(specs):
    layers = []
    for kind, k, s, p, d in specs:
        if kind == "conv":
            layers += [nn.Conv2d(1, 1, k, s, p, d, bias=False), nn.ReLU()]
        elif kind == "avg":
            layers.append(nn.AvgPool2d(k, s, min(p, k // 2)))
        else:
            layers.append(nn.ZeroPad2d((k, 0, 0, k)))  # asymmetric on purpose
    return nn.Sequential(*layers)


@settings(max_examples=40, deadline=None, derandomize=True)
@given(specs=st.lists(layer_st, min_size=1, max_size=5), oi=st.floats(0, 1), oj=st.floats(0, 1))
def test_receptive_field_matches_gradient_footprint(specs, oi, oj):
    """Backprop from one output through all-positive weights: the input pixels it reaches lie in
    the predicted window (start + i*jump +- (rf-1)/2); without padding they span all of it."""
    model = build(specs).double()
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 1.0)
    H, W = 23, 19
    try:
        rf = ops.receptive_field(model, (H, W))
    except ShapeError:
        assume(False)
    out = rf.output_size
    x = torch.ones(1, 1, H, W, dtype=f64, requires_grad=True)
    y = model(x)
    assert y.shape[-2:] == out
    i, j = int(oi * (out[0] - 1)), int(oj * (out[1] - 1))
    y[0, 0, i, j].backward()
    padded = any(kind == "pad" or p > 0 for kind, _, _, p, _ in specs)
    for a, idx in enumerate((i, j)):
        hits = x.grad[0, 0].abs().sum(1 - a).nonzero().flatten()
        centre = rf.layers[-1].start[a] + idx * rf.jump[a]
        lo, hi = centre - (rf.size[a] - 1) / 2, centre + (rf.size[a] - 1) / 2
        if hits.numel():
            assert lo <= hits.min() and hits.max() <= hi
        if not padded:  # every window is real pixels: its extreme taps are reached
            assert (hits.min(), hits.max()) == (lo, hi)


def test_receptive_field_understands_cnnlab_layers_and_rejects_branches():
    from cnnlab.layers import AvgPoolConv, Conv2D, MinPool2d, ReLUMaxPool2d

    rf = ops.receptive_field(nn.Sequential(Conv2D(3, padding=1), ReLUMaxPool2d(2),
                                           AvgPoolConv(3, 1, 1), MinPool2d(2)), 28)
    assert [r.receptive_field for r in rf.layers[1:]] == [(3, 3), (4, 4), (8, 8), (10, 10)]
    assert rf.output_size == (7, 7)

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 5)

    class BookStyle(nn.Module):  # the book's models keep their layers in self.net
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 1, 5, padding=2), nn.AvgPool2d(2), Branchy())

        def forward(self, x):
            return self.net(x)

    with pytest.raises(CnnlabError, match=r"cannot tell how net.2 \(Branchy\)"):
        ops.receptive_field(BookStyle(), 28)
    book_ok = BookStyle()
    book_ok.net = book_ok.net[:2]
    assert [r.name for r in ops.receptive_field(book_ok, 28).layers] == ["", "net.0", "net.1"]
    with pytest.raises(CnnlabError, match=r"cannot tell how 0 \(Branchy\)"):
        ops.receptive_field(nn.Sequential(Branchy()), 16)
    with pytest.raises(CnnlabError, match="upsamples"):
        ops.receptive_field(nn.Sequential(nn.ConvTranspose2d(1, 1, 2, 2)), 16)
    with pytest.raises(ShapeError, match=r"receptive_field: 1 \(Conv2d\): kernel 5"):
        ops.receptive_field(nn.Sequential(nn.MaxPool2d(4), nn.Conv2d(1, 1, 5)), 16)


@pytest.mark.parametrize("bad", [0, (28,), (28, 0), (2.5, 3), "28", True, (True, 3)])
def test_one_hw_rule_for_every_size_argument(bad: object) -> None:
    """Kernel sizes, input sizes and resize all go through cnnlab.shapes.pair."""
    from cnnlab import d2l
    from cnnlab.loader import Loader, Split
    from cnnlab.models import create_model

    split = Split(torch.zeros(4, 8, 8, dtype=torch.uint8), torch.zeros(4, dtype=torch.int64))
    calls = {"resize": [lambda: Loader(split, 2, resize=bad),
                        lambda: d2l.FashionMNIST(resize=bad)],
             "input_size": [lambda: create_model("resnet18", input_size=bad)],
             "kernel_size": [lambda: ops.conv2d_output_shape(28, bad)]}
    for name, fns in calls.items():
        for fn in fns:
            with pytest.raises(ConfigError, match=rf"^{name}=.* must be a positive int or a pair "
                                                  r"of positive ints \(h, w\)"):
                fn()
    assert Loader(split, 2, resize=[6, 4]).size == (6, 4)  # a list (JSON's) is a pair too
    assert Loader(split, 2, resize=torch.tensor(5).item()).size == (5, 5)

