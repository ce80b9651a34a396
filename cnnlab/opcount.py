"""Operation counting for one training step, attributed to the module that ran each op.

Units: a MAC is one multiply-accumulate; a FLOP is one floating-point operation; 1 MAC = 2 FLOPs.

Convolutions and matrix products (``aten.convolution``, ``mm``, ``addmm``, ``bmm``,
``baddbmm``, attention) are counted by the formulas of ``torch.utils.flop_counter`` (the registry
behind ``FlopCounterMode``); those, halved, are the MACs. ``convolution_backward`` uses torch's
``conv_flop_count`` too, but counts each requested gradient (dX, dW) as one forward's products:
torch's own backward formula ignores ``groups`` for dW and over-counts grouped and depthwise
convs g-fold. Every other op is counted by the table below, per element of the tensor named in the
"per" column (out = the op's output, in = its input, grad = the incoming gradient). One FLOP is
one arithmetic operation, comparison, or elementary function (exp, log, sqrt, tanh, erf).
Per-channel O(C) terms (running-statistics updates, per-channel reciprocals) are neglected.

    op (forward / backward)                        FLOPs per element        per
    ---------------------------------------------  -----------------------  --------------
    conv / linear bias add (not in torch's count)  1                        out
    conv bias gradient (sum over N, H, W)          1                        grad
    add sub mul div neg abs, relu threshold        1                        out
    clamp hardtanh maximum minimum where           1                        out
    leaky_relu elu (and their backward), *_backward of relu/hardtanh  1 (2 for elu)  out
    exp log sqrt rsqrt reciprocal pow tanh erf     1                        out
    sigmoid 1/(1+exp(-x))                          4                        out
    sigmoid / tanh backward                        3                        out
    silu x*sigmoid(x) / backward                   5 / 7                    out
    gelu 0.5x(1+erf(x/sqrt 2)) / backward          5 / 8                    out
    dropout: mask draw, scale / backward           2 / 2                    out
    batch/layer/group norm, training: statistics   7 / 9                    out
      (sum, squared deviations: 4), normalize and
      affine (3) / backward (x-hat 2, sums 3, combine 4)
    batch norm, eval (folded scale and shift)      2 / 6                    out
    max pool k_h x k_w / backward                  k_h*k_w - 1 / 1          out
    avg pool k_h x k_w / backward                  k_h*k_w / k_h*k_w        out
    adaptive avg pool / backward                   1 (+1 per output)        in
    sum, mean (reductions)                         1 (+1 per output: mean)  in
    softmax, log_softmax / backward                5 / 4                    out
    nll_loss / backward                            1                        target
    views, copies, cat, padding, fill, indexing    0 (data movement)        -

An op outside both tables is counted as zero and listed in ``uncounted`` so that a summary
says what it did not count rather than hiding it.

Attribution: forward ops go to the innermost module whose ``forward`` is running, named by its
call path (a module shared by two parents gets one row per path; a module called twice on one
path sums both calls). Backward ops go to the module that created the autograd node running
them (nodes are labelled as the forward creates them, through a ``TorchFunctionMode``), so
functional ops (``F.relu``, ``torch.cat``, residual ``+``) inside a ``forward`` are counted
where they happen, forward and backward. The gradient sum at a fan-out (the engine adds the
branches' gradients) is attributed to the module whose backward ran just before it.
"""

from __future__ import annotations

import contextlib
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import conv_flop_count, flop_registry

aten = torch.ops.aten

ROOT = ""  # the call path of the model itself


def _numel(x: Any) -> int:
    return x.numel() if isinstance(x, torch.Tensor) else 0


def _out_numel(out: Any) -> int:
    leaves, _ = tree_flatten(out)
    return sum(_numel(t) for t in leaves)


def _first_out(out: Any) -> int:
    return _numel(out[0] if isinstance(out, (tuple, list)) else out)


def _per_out(c: float) -> Callable[..., float]:
    return lambda args, kwargs, out: c * _first_out(out)


def _pool_kernel(args: tuple, kwargs: dict, pos: int = 1) -> int:
    k = kwargs.get("kernel_size", args[pos] if len(args) > pos else None)
    k = [k] if isinstance(k, int) else list(k)
    return math.prod(k) if len(k) > 1 else k[0] ** 2


def _conv_bias(args: tuple, kwargs: dict, out: Any) -> float:
    bias = args[2] if len(args) > 2 else kwargs.get("bias")
    return _first_out(out) if bias is not None else 0


def _conv_bwd_bias(args: tuple, kwargs: dict, out: Any) -> float:
    mask = args[10] if len(args) > 10 else kwargs.get("output_mask", (True, True, True))
    return _numel(args[0]) if mask[2] else 0


def _conv_backward_flops(args: tuple, kwargs: dict) -> int:
    """dX and dW each take exactly the forward's products, groups included.

    torch's formula counts a grouped conv's weight gradient as if groups were 1 (g times too
    many); here each gradient asked for by ``output_mask`` costs one forward.
    """
    grad_out, x, w = args[0], args[1], args[2]
    transposed = args[7] if len(args) > 7 else kwargs["transposed"]
    mask = args[10] if len(args) > 10 else kwargs["output_mask"]
    fwd = conv_flop_count(list(x.shape), list(w.shape), list(grad_out.shape),
                          transposed=transposed)
    return fwd * (int(bool(mask[0])) + int(bool(mask[1])))


def _bn_fwd(train_pos: int) -> Callable[..., float]:
    def f(args: tuple, kwargs: dict, out: Any) -> float:
        training = args[train_pos] if len(args) > train_pos else kwargs.get("training", True)
        return (7 if training else 2) * _first_out(out)

    return f


def _bn_bwd(args: tuple, kwargs: dict, out: Any) -> float:
    training = args[7] if len(args) > 7 else kwargs.get("train", True)
    return (9 if training else 6) * _numel(args[0])


def _reduce(extra_per_out: int) -> Callable[..., float]:
    return lambda args, kwargs, out: _numel(args[0]) + extra_per_out * _first_out(out)


def _nll(args: tuple, kwargs: dict, out: Any) -> float:
    return _numel(args[1] if len(args) > 1 else kwargs.get("target"))


def _nll_bwd(args: tuple, kwargs: dict, out: Any) -> float:
    return _numel(args[2] if len(args) > 2 else kwargs.get("target"))


# Extra FLOPs on top of torch's registry for the ops it counts (bias adds it leaves out).
_EXTRA: dict[Any, Callable[..., float]] = {
    aten.convolution: _conv_bias,
    aten._convolution: _conv_bias,
    aten.convolution_backward: _conv_bwd_bias,
    aten.addmm: lambda args, kwargs, out: _first_out(out),
    aten.baddbmm: lambda args, kwargs, out: _first_out(out),
}

# Our formulas for the ops torch's registry counts as zero (see the table in the docstring).
_FORMULAS: dict[Any, Callable[..., float]] = {}


def _register(ops: list[str], fn: Callable[..., float]) -> None:
    for name in ops:
        packet = getattr(aten, name, None)
        if packet is not None:  # an op missing from an older torch is simply not counted
            _FORMULAS[packet] = fn


_register(["add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "abs",
           "relu", "relu_", "threshold", "threshold_", "threshold_backward", "clamp", "clamp_",
           "clamp_min", "clamp_min_", "clamp_max", "hardtanh", "hardtanh_", "hardtanh_backward",
           "maximum", "minimum", "where", "leaky_relu", "leaky_relu_", "leaky_relu_backward",
           "exp", "log", "sqrt", "rsqrt", "reciprocal", "pow", "tanh", "tanh_", "erf",
           "bernoulli_", "addcmul_", "addcdiv_", "lerp_", "masked_fill", "masked_fill_",
           "sign", "square"], _per_out(1))
_register(["elu", "elu_", "elu_backward"], _per_out(2))
_register(["sigmoid", "sigmoid_"], _per_out(4))
_register(["sigmoid_backward", "tanh_backward"], _per_out(3))
_register(["silu", "silu_"], _per_out(5))
_register(["silu_backward"], _per_out(7))
_register(["gelu", "gelu_"], _per_out(5))
_register(["gelu_backward"], _per_out(8))
_register(["native_dropout", "native_dropout_backward"], _per_out(2))
_register(["native_batch_norm", "_native_batch_norm_legit_functional"], _bn_fwd(5))
_register(["_native_batch_norm_legit"], _bn_fwd(5))
_register(["_native_batch_norm_legit_no_training"], _per_out(2))
_register(["native_batch_norm_backward"], _bn_bwd)
_register(["native_layer_norm", "native_group_norm"], _per_out(7))
_register(["native_layer_norm_backward", "native_group_norm_backward"],
          lambda args, kwargs, out: 9 * _numel(args[0]))
_register(["max_pool2d_with_indices", "max_pool3d_with_indices"],
          lambda args, kwargs, out: (_pool_kernel(args, kwargs) - 1) * _first_out(out))
_register(["max_pool2d_with_indices_backward", "max_pool3d_with_indices_backward"],
          lambda args, kwargs, out: _numel(args[0]))
_register(["avg_pool2d", "avg_pool3d"],
          lambda args, kwargs, out: _pool_kernel(args, kwargs) * _first_out(out))
_register(["avg_pool2d_backward", "avg_pool3d_backward"],
          lambda args, kwargs, out: _pool_kernel(args, kwargs, 2) * _numel(args[0]))
_register(["_adaptive_avg_pool2d", "_adaptive_avg_pool3d"], _reduce(1))
_register(["_adaptive_avg_pool2d_backward", "_adaptive_avg_pool3d_backward"],
          lambda args, kwargs, out: _numel(args[1]) + _numel(args[0]))
_register(["sum", "prod", "amax", "amin", "max", "min", "var", "std"], _reduce(0))
_register(["mean"], _reduce(1))
_register(["_softmax", "_log_softmax"], _per_out(5))
_register(["_softmax_backward_data", "_log_softmax_backward_data"], _per_out(4))
_register(["nll_loss_forward", "nll_loss2d_forward"], _nll)
_register(["nll_loss_backward", "nll_loss2d_backward"], _nll_bwd)

# Ops that move or create data without arithmetic: zero FLOPs by definition, not "uncounted".
_ZERO = {getattr(aten, n) for n in (
    "view", "_unsafe_view", "reshape", "_reshape_alias", "t", "transpose", "permute", "expand",
    "detach", "clone", "copy_", "_to_copy", "cat", "stack", "split", "split_with_sizes", "slice",
    "select", "squeeze", "unsqueeze", "flatten", "empty", "empty_like", "empty_strided",
    "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "fill_", "zero_",
    "new_empty", "new_zeros", "new_ones", "new_full", "new_empty_strided", "as_strided", "alias",
    "constant_pad_nd", "reflection_pad2d", "replication_pad2d", "contiguous", "index_select",
    "gather", "scatter", "index", "lift_fresh", "lift_fresh_copy", "scalar_tensor", "unbind",
    "narrow", "chunk", "unfold", "im2col", "col2im", "_unsafe_index", "max_unpool2d",
    "upsample_nearest2d", "upsample_nearest2d_backward", "embedding", "roll", "flip",
    "channel_shuffle", "pixel_shuffle", "pixel_unshuffle", "random_", "uniform_", "normal_",
    "masked_select", "nonzero", "_local_scalar_dense", "resize_", "set_", "sym_size",
    "_unsafe_view", "unsqueeze_", "squeeze_", "transpose_", "t_", "_assert_tensor_metadata",
) if hasattr(aten, n)}


def _degenerate_batch_norm(packet: Any, args: tuple) -> Any:
    """Outputs of a training-mode batch norm over one value per channel, on the meta device.

    The meta kernel divides by n - 1 for the unbiased running variance and fails for n = 1
    (batch 1 at 1x1, or BatchNorm1d at batch 1); the real kernel returns NaNs. Counting needs
    only the shapes, which are those of any batch norm.
    """
    x = args[0]
    if not (x.is_meta and packet in (aten.native_batch_norm, aten._native_batch_norm_legit,
                                     aten._native_batch_norm_legit_functional)):
        raise ZeroDivisionError(f"{packet} divided by zero")
    c = x.shape[1]
    stats = [x.new_empty((c,)) for _ in range(2)]
    if packet is aten._native_batch_norm_legit_functional:
        return (torch.empty_like(x), *stats, x.new_empty((c,)), x.new_empty((c,)))
    return (torch.empty_like(x), *stats)


@dataclass
class OpCounts:
    """What one training step executed, per module call path."""

    macs_fwd: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    flops_fwd: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    macs_bwd: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    flops_bwd: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # the op names each path ran outside any child module ("functional" ops), forward
    own_ops: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    uncounted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    saved_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class _CountMode(TorchDispatchMode):
    """Counts every aten op into the path the tracker names as current."""

    def __init__(self, tracker: ModuleTracker, counts: OpCounts) -> None:
        super().__init__()
        self.tracker = tracker
        self.counts = counts

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        packet = func._overloadpacket
        known = packet in flop_registry or packet in _FORMULAS or packet in _ZERO
        if not known:
            # A composite op may decompose into ops we know (what FlopCounterMode does too).
            with self:
                r = func.decompose(*args, **kwargs)
            if r is not NotImplemented:
                return r
        try:
            out = func(*args, **kwargs)
        except ZeroDivisionError:
            out = _degenerate_batch_norm(packet, args)
        bwd = self.tracker.in_backward
        path = self.tracker.backward_path if bwd else self.tracker.forward_path
        macs = 0.0
        flops = 0.0
        if packet is aten.convolution_backward:
            mm = _conv_backward_flops(args, kwargs)
            macs = mm / 2
            flops = mm + _conv_bwd_bias(args, kwargs, out)
        elif packet in flop_registry:
            mm = flop_registry[packet](*args, **kwargs, out_val=out)
            macs = mm / 2
            flops = mm + (_EXTRA[packet](args, kwargs, out) if packet in _EXTRA else 0)
        elif packet in _FORMULAS:
            # integer arithmetic (BatchNorm's num_batches_tracked += 1) is not a FLOP
            first = out[0] if isinstance(out, (tuple, list)) else out
            if not isinstance(first, torch.Tensor) or first.is_floating_point():
                flops = float(_FORMULAS[packet](args, kwargs, out))
        elif packet not in _ZERO:
            self.counts.uncounted[str(packet).removeprefix("aten.")] += 1
        if bwd:
            self.counts.macs_bwd[path] += macs
            self.counts.flops_bwd[path] += flops
        else:
            self.counts.macs_fwd[path] += macs
            self.counts.flops_fwd[path] += flops
            if flops:
                self.counts.own_ops[path].add(str(packet).removeprefix("aten."))
        return out


class _LabelMode(TorchFunctionMode):
    """Labels each autograd node, as the forward creates it, with the current module path."""

    def __init__(self, tracker: ModuleTracker) -> None:
        super().__init__()
        self.tracker = tracker

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        out = func(*args, **(kwargs or {}))
        self.tracker.label_from(out)
        return out


@dataclass
class CallRecord:
    """One module call path: its module, how often it ran, its first output."""

    path: str
    module: nn.Module
    parent: str | None  # the calling path (None for the model itself)
    depth: int  # 0 for the model, 1 for what its forward calls, ...
    calls: int = 0
    output_shapes: list[tuple[int, ...]] = field(default_factory=list)
    output_bytes: int = 0


class ModuleTracker:
    """Names module calls by their path, labels autograd nodes, and knows the current path.

    Unlike ``torch.utils.module_tracker`` it names a shared module by the path it was called
    through, and attributes backward work through the autograd nodes themselves.
    """

    def __init__(self, model: nn.Module, counts: OpCounts) -> None:
        self.model = model
        self.counts = counts
        self.canonical: dict[int, str] = {}
        self._relative: dict[tuple[int, int], str] = {}
        for n, m in model.named_modules(remove_duplicate=False):
            self.canonical.setdefault(id(m), n)
        self.stack: list[tuple[nn.Module, str, tuple[tuple[int, ...], ...]]] = []
        self.calls: dict[str, CallRecord] = {}
        self.labels: dict[Any, str] = {}
        self.in_backward = False
        self.backward_path = ROOT
        self._handles: list[Any] = []
        self._saved_seen: set[int] = set()
        # storages that are not activations (parameters, buffers, the input): never counted
        self.excluded_storages: set[int] = set()

    # -- forward: which module is running ------------------------------------------------
    @property
    def forward_path(self) -> str:
        return self.stack[-1][1] if self.stack else ROOT

    def _path_of(self, module: nn.Module) -> str:
        if module is self.model and not self.stack:
            return ROOT
        if self.stack:
            parent, ppath, _ = self.stack[-1]
            key = (id(parent), id(module))
            rel = self._relative.get(key)
            if rel is None:
                # A direct child first; else a descendant reached through a container that is
                # never called itself (ModuleList, ModuleDict): its first path under the caller.
                rel = next((n for n, c in parent._modules.items() if c is module), None)
                if rel is None:
                    rel = next((n for n, c in parent.named_modules(remove_duplicate=False)
                                if c is module and n), "")
                self._relative[key] = rel
            if rel:
                return f"{ppath}.{rel}" if ppath else rel
        name = self.canonical.get(id(module))
        return name if name is not None else f"<{type(module).__name__}>"

    def _pre(self, module: nn.Module, args: Any) -> None:
        self.label_from(args)  # what the caller computed before this call is the caller's
        shapes = tuple(tuple(t.shape) for t in tree_flatten(args)[0]
                       if isinstance(t, torch.Tensor))
        path = self._path_of(module)
        parent = self.calls[self.stack[-1][1]] if self.stack else None
        self.stack.append((module, path, shapes))
        rec = self.calls.get(path)
        if rec is None:
            rec = self.calls[path] = CallRecord(
                path, module, parent.path if parent else None,
                parent.depth + 1 if parent else 0)
        rec.calls += 1

    def _post(self, module: nn.Module, args: Any, out: Any) -> None:
        self.label_from(out)
        _, path, _ = self.stack.pop()
        rec = self.calls[path]
        tensors = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if rec.calls == 1:
            rec.output_shapes = [tuple(t.shape) for t in tensors]
        rec.output_bytes += sum(t.numel() * t.element_size() for t in tensors)

    # -- autograd nodes: who created them -------------------------------------------------
    def label_from(self, out: Any) -> None:
        """Label the not-yet-labelled autograd nodes behind ``out`` with the current path."""
        path = self.forward_path
        todo = [t.grad_fn for t in tree_flatten(out)[0]
                if isinstance(t, torch.Tensor) and t.grad_fn is not None]
        while todo:
            node = todo.pop()
            if node is None or node in self.labels:
                continue
            self.labels[node] = path
            self._handles.append(node.register_prehook(self._enter_node(path)))
            todo.extend(n for n, _ in node.next_functions)

    def _enter_node(self, path: str) -> Callable[..., None]:
        def hook(grad_outputs: Any) -> None:
            self.backward_path = path

        return hook

    # -- saved tensors: the activation memory the backward keeps -------------------------
    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in self._saved_seen and key not in self.excluded_storages:
            self._saved_seen.add(key)
            self.counts.saved_bytes[self.forward_path] += storage.nbytes()
        return t

    def __enter__(self) -> ModuleTracker:
        self._handles += [register_module_forward_pre_hook(self._pre),
                          register_module_forward_hook(self._post)]
        self._saved = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._saved.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._saved.__exit__(*exc)
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def failing_call(self) -> tuple[str, str, tuple[tuple[int, ...], ...]] | None:
        """(path, type, input shapes) of the innermost module running when a forward raised."""
        if not self.stack:
            return None
        module, path, shapes = self.stack[-1]
        return path, type(module).__name__, shapes


# -- the public entry points ------------------------------------------------------------------

@contextlib.contextmanager
def one_value_per_channel_allowed() -> Iterator[None]:
    """Within the block, BatchNorm in training mode accepts one value per channel.

    torch refuses it (batch 1 at 1x1, BatchNorm1d at batch 1) because the batch statistics are
    degenerate; the step's cost and memory are not, so counting and measuring it is sound. The
    check is torch's private ``F._verify_batch_size``: it is swapped only for the block and put
    back on the way out, also when the block raises.
    """
    verify = F._verify_batch_size
    F._verify_batch_size = lambda size: None
    try:
        yield
    finally:
        F._verify_batch_size = verify


@contextlib.contextmanager
def modes_restored(model: nn.Module) -> Iterator[None]:
    """Put back each module's own train/eval flag after the block (a frozen BatchNorm stays)."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def count_step(model: nn.Module, x: torch.Tensor, tracker: ModuleTracker,
               dtype: torch.dtype | None = None) -> int:
    """Count one training step of ``model`` on ``x`` (forward, then backward) into ``tracker``.

    The model's parameters and buffers are swapped for zeros of ``dtype`` on ``x.device`` (the
    meta device counts without arithmetic), so the model itself is never touched: running
    statistics stay as they were. Returns the bytes of the outputs; ``tracker.counts`` holds the
    figures and, when the step raises, ``tracker.failing_call()`` names the layer.
    """
    dtype = dtype or x.dtype

    def like(t: torch.Tensor, grad: bool) -> torch.Tensor:
        dt = dtype if t.is_floating_point() else t.dtype
        return torch.zeros(t.shape, dtype=dt, device=x.device).requires_grad_(grad)

    tensors = {n: like(p, p.requires_grad) for n, p in model.named_parameters()}
    tensors.update({n: like(b, False) for n, b in model.named_buffers()})
    tracker.excluded_storages = {t.untyped_storage()._cdata for t in [*tensors.values(), x]}
    with modes_restored(model), one_value_per_channel_allowed():
        model.train()  # the step being costed is a training step (BatchNorm: batch statistics)
        with torch.enable_grad(), tracker, _LabelMode(tracker), _CountMode(tracker,
                                                                            tracker.counts):
            out = torch.func.functional_call(model, tensors, (x,))
            tracker.label_from(out)
            leaves = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            grads = [t for t in leaves if t.requires_grad]
            tracker.in_backward = True
            if grads:
                torch.autograd.backward(grads, [torch.ones_like(t) for t in grads])
    return sum(t.numel() * t.element_size() for t in leaves)
