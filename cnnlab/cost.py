"""What a model costs: per-layer shapes, parameters, MACs and FLOPs (forward and backward), memory.

``summary(model, (C, H, W))`` runs one training step (forward, then backward) on the meta
device, where no arithmetic happens and any batch size is free, and counts every op it
dispatches (see ``cnnlab.opcount`` for the one table of formulas and how ops are attributed to
layers). 1 MAC (multiply-accumulate) = 2 FLOPs; ``total_macs`` counts the multiply-accumulates of
convolutions and matrix products, the figure papers and torchvision quote, while the FLOP totals
add every other op (bias adds, norms, activations, pools, residual adds, ...). Memory comes as
an analytic estimate and, with ``measure_memory=True``, a measured peak of one real step
(``cnnlab.memory``).

The chapter's cost exercises are here too: ``conv2d_cost`` (exercise 7.4: multiplications,
memory of the forward and the backward, backward cost) and ``compare_models`` (exercises 8.2.1-3:
AlexNet against VGG, or any two registered models, at any input size).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.parameter import is_lazy

from cnnlab.errors import ConfigError, ShapeError
from cnnlab.memory import MeasuredMemory, MemoryEstimate, estimate, measure_step
from cnnlab.opcount import ROOT, ModuleTracker, OpCounts, count_step, modes_restored
from cnnlab.train_config import OPTIMIZERS

__all__ = ["Row", "Summary", "summary", "ConvCost", "conv2d_cost", "ModelComparison",
           "compare_models", "format_si"]


@dataclass
class Row:
    """One layer call path. Figures include the layer's children and cover all its calls."""

    name: str  # call path, e.g. "layer1.0.conv1"; "(ops)" rows are ops run in a forward itself
    type: str
    depth: int
    calls: int
    output_shape: list[list[int]]
    params: int
    macs: int
    flops_forward: int
    flops_backward: int
    output_bytes: int
    activation_bytes: int  # saved by autograd for the backward
    is_leaf: bool


@dataclass
class Summary:
    """The cost of one training step of a model at one input size."""

    model: str
    input_size: tuple[int, ...]
    batch_size: int
    dtype: str
    device: str
    optimizer: str
    total_params: int
    trainable_params: int
    total_macs: int  # forward multiply-accumulates of conv/linear/matmul
    macs_backward: int
    flops_forward: int  # every forward op, 1 MAC = 2 FLOPs
    flops_backward: int
    rows: list[Row]
    memory: MemoryEstimate
    measured: MeasuredMemory | None = None
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    momentum: float = 0.0  # SGD momentum (one state buffer per parameter when not 0)

    @property
    def flops_step(self) -> int:
        """Forward plus backward FLOPs of one training step (the optimizer update excluded)."""
        return self.flops_forward + self.flops_backward

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every figure and row."""
        d = asdict(self)
        d["input_size"] = list(self.input_size)
        d["flops_step"] = self.flops_step
        d["memory"] = self.memory.to_dict()
        d["measured"] = self.measured.to_dict() if self.measured else None
        return d

    def to_json(self, indent: int | None = 2) -> str:
        """The dict as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    def _table(self) -> tuple[list[str], list[list[str]]]:
        head = ["Layer (type)", "Output shape", "Params", "MACs", "FLOPs fwd", "FLOPs bwd",
                "Saved act."]
        si = format_si
        body = []
        for r in self.rows:
            shape = ", ".join(str(list(s)) for s in r.output_shape) or "-"
            body.append(["  " * (r.depth - 1) + f"{r.name} ({r.type})"
                         + (f" x{r.calls}" if r.calls > 1 else ""),
                         shape, f"{r.params:,}", si(r.macs), si(r.flops_forward),
                         si(r.flops_backward), si(r.activation_bytes, "B")])
        return head, body

    def _footer(self) -> list[str]:
        m, si = self.memory, format_si
        lines = [
            f"Input: ({self.batch_size}, {', '.join(map(str, self.input_size))}) {self.dtype}, "
            f"optimizer {self.optimizer}"
            + (f" (momentum {self.momentum:g})" if self.momentum else ""),
            f"Total params: {self.total_params:,} (trainable {self.trainable_params:,})",
            f"Forward MACs: {self.total_macs:,} ({si(self.total_macs, 'MAC')}); backward MACs: "
            f"{self.macs_backward:,} ({si(self.macs_backward, 'MAC')})  [1 MAC = 2 FLOPs]",
            f"FLOPs: forward {si(self.flops_forward)}, backward {si(self.flops_backward)}, "
            f"step {si(self.flops_step)} (conv/matmul + norms, activations, pools, adds)",
            f"Memory estimate: {si(m.total, 'B')} = params {si(m.params, 'B')} + buffers "
            f"{si(m.buffers, 'B')} + grads {si(m.grads, 'B')} + optimizer "
            f"{si(m.optimizer_state, 'B')} + input {si(m.input, 'B')} + output "
            f"{si(m.output, 'B')} + saved activations {si(m.activations, 'B')}",
        ]
        if self.measured is not None:
            ratio = self.measured.peak / m.total if m.total else float("nan")
            lines.append(f"Measured peak of one step at batch {self.measured.batch_size}: "
                         f"{si(self.measured.peak, 'B')} on {self.measured.device} "
                         f"({ratio:.2f}x the estimate; {self.measured.method})")
        if self.uncounted_ops:
            ops = ", ".join(f"{k} x{v}" for k, v in sorted(self.uncounted_ops.items()))
            lines.append(f"Counted as zero (no formula): {ops}")
        return lines

    def __str__(self) -> str:
        head, body = self._table()
        widths = [max(len(x) for x in col) for col in zip(head, *body)]

        def line(cells: list[str]) -> str:
            return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "=" * len(line(head))
        out = [f"{self.model}", rule, line(head), rule, *map(line, body), rule,
               *self._footer(), rule]
        return "\n".join(out)

    def to_markdown(self) -> str:
        """The table as GitHub markdown, figures in the footer as a list."""
        head, body = self._table()
        esc = lambda s: s.replace("|", "\\|").replace("  ", "&nbsp;&nbsp;")  # noqa: E731
        out = [f"**{self.model}**", "", "| " + " | ".join(head) + " |",
               "|" + "|".join([":---", ":---"] + ["---:"] * (len(head) - 2)) + "|"]
        out += ["| " + " | ".join(esc(c) for c in row) + " |" for row in body]
        out += [""] + [f"- {x}" for x in self._footer()]
        return "\n".join(out)


def format_si(x: float, unit: str = "", spec: str = ".2f") -> str:
    """1234567 -> '1.23 M' with SI prefixes (k, M, G, T, P; bytes too: 1 MB = 10^6 B).

    The one formatter of large figures: summaries, the report's cards, the README's tables.
    """
    for div, p in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:{spec}} {p}{unit}"
    return f"{x:.0f} {unit}".rstrip()


def _check_args(input_size: Any, batch_size: int, optimizer: str,
                momentum: float) -> tuple[int, ...]:
    try:
        size = tuple(int(s) for s in input_size)
    except (TypeError, ValueError):
        raise ConfigError(f"input_size must be a tuple of ints like (3, 224, 224), "
                          f"got {input_size!r}") from None
    if not size or any(s <= 0 for s in size):
        raise ConfigError(f"input_size must be positive, like (3, 224, 224), got {size}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if optimizer not in OPTIMIZERS:  # the engine's: TrainConfig's optimizer and momentum
        raise ConfigError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    if not 0 <= momentum < 1 or (momentum and optimizer != "sgd"):
        raise ConfigError(f"momentum={momentum} must be in [0, 1), and 0 unless optimizer='sgd'")
    return size


def _shape_error(model: nn.Module, tracker: ModuleTracker, x_shape: tuple[int, ...],
                 exc: Exception) -> ShapeError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = tracker.failing_call()
    if where is None:
        return ShapeError(f"{type(model).__name__} cannot take input {list(x_shape)}: {first}")
    path, kind, shapes = where
    name = path or type(model).__name__
    got = ", ".join(str(list(s)) for s in shapes) or "no tensors"
    hint = ("use batch_size >= 2 or a larger input (a training step needs more than one value "
            "per channel)" if "more than 1 value per channel" in first
            else "use an input size this model accepts")
    return ShapeError(f"layer '{name}' ({kind}) failed on input {got} (model input "
                      f"{list(x_shape)}): {first}; {hint}")


def _materialize(model: nn.Module, size: tuple[int, ...]) -> None:
    """Run one no-grad forward at batch 1 so Lazy modules take their shapes."""
    p = next(iter(model.parameters()), None)
    dev = p.device if p is not None and not is_lazy(p) else torch.device("cpu")
    x = torch.zeros((1, *size), device=dev)
    tracker = ModuleTracker(model, OpCounts())
    try:
        with modes_restored(model), torch.no_grad(), tracker:
            model.eval()  # batch 1 in train mode would trip BatchNorm; eval takes any shape
            model(x)
    except (RuntimeError, ValueError, IndexError) as exc:
        raise _shape_error(model, tracker, x.shape, exc) from exc


def _meta_unsupported(exc: Exception) -> bool:
    """True when the meta device, not the model, is to blame (no meta kernel, .item(), ...)."""
    return isinstance(exc, NotImplementedError) or "meta" in str(exc).lower()


def _subtree(d: dict[str, float], path: str) -> float:
    if path == ROOT:
        return sum(d.values())
    return sum(v for k, v in d.items() if k == path or k.startswith(path + "."))


def _rows(model: nn.Module, tracker: ModuleTracker, counts: OpCounts,
          depth: int | None) -> list[Row]:
    calls = tracker.calls
    paths = [p for p in calls if p != ROOT]
    if not paths and ROOT in calls:  # the model is a single layer: one row for it
        rec = calls[ROOT]
        rec.depth, paths = 1, [ROOT]
    with_children = {calls[p].parent for p in paths}

    def own_work(p: str) -> bool:
        return any(d.get(p) for d in (counts.flops_fwd, counts.flops_bwd, counts.saved_bytes))

    def ops_entry(p: str, d: int) -> tuple[str, str, str, int, Any, bool]:
        ops = ", ".join(sorted(counts.own_ops.get(p, ())))
        name = f"{p}.(ops)" if p else "(ops)"
        return name, p, "functional: " + ops if ops else "functional", d, calls[p], True

    # (name, counts key, type, depth, call record, own ops only)
    entries: list[tuple[str, str, str, int, Any, bool]] = []
    if paths != [ROOT] and ROOT in with_children and own_work(ROOT):
        entries.append(ops_entry(ROOT, 1))
    for p in paths:
        rec = calls[p]
        entries.append((p or type(model).__name__, p, type(rec.module).__name__, rec.depth, rec,
                        False))
        if p and p in with_children and own_work(p):
            entries.append(ops_entry(p, rec.depth + 1))
    if depth is not None:
        entries = [e for e in entries if e[3] <= depth]
    rows = []
    for i, (name, key, kind, d, rec, own_only) in enumerate(entries):
        nxt = entries[i + 1][0] if i + 1 < len(entries) else ""
        if own_only:  # ops run directly in the parent's forward: only that path's own counts
            rows.append(Row(
                name, kind, d, rec.calls, [],
                sum(p.numel() for p in rec.module.parameters(recurse=False)),
                round(counts.macs_fwd.get(key, 0)), round(counts.flops_fwd.get(key, 0)),
                round(counts.flops_bwd.get(key, 0)), 0, int(counts.saved_bytes.get(key, 0)),
                True))
            continue
        rows.append(Row(
            name=name, type=kind, depth=d, calls=rec.calls,
            output_shape=[list(s) for s in rec.output_shapes],
            params=sum(p.numel() for p in rec.module.parameters()),
            macs=round(_subtree(counts.macs_fwd, key)),
            flops_forward=round(_subtree(counts.flops_fwd, key)),
            flops_backward=round(_subtree(counts.flops_bwd, key)),
            output_bytes=rec.output_bytes,
            activation_bytes=int(_subtree(counts.saved_bytes, key)),
            is_leaf=not nxt.startswith(name + ".")))
    return rows


def summary(model: nn.Module, input_size: tuple[int, ...], *, batch_size: int = 1,
            device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
            optimizer: str = "sgd", momentum: float = 0.0, measure_memory: bool = True,
            depth: int | None = None) -> Summary:
    """Per-layer and total parameters, MACs, FLOPs and memory of one training step.

    ``optimizer`` and ``momentum`` are TrainConfig's: the optimizer state is costed as the
    engine's optimizer holds it.
    """
    size = _check_args(input_size, batch_size, optimizer, momentum)
    device = torch.device(device)
    if measure_memory and any(p.is_meta for p in model.parameters()):
        raise ConfigError("the model lives on the meta device, so a real step cannot be "
                          "measured; pass measure_memory=False (counts and estimates still work)")
    if any(is_lazy(p) for p in model.parameters()):
        _materialize(model, size)
    shape = (batch_size, *size)
    tracker = ModuleTracker(model, OpCounts())
    try:
        out_bytes = count_step(model, torch.zeros(shape, dtype=dtype, device="meta"), tracker)
    except (RuntimeError, ValueError, IndexError, NotImplementedError) as exc:
        if not _meta_unsupported(exc):
            raise _shape_error(model, tracker, shape, exc) from exc
        tracker = ModuleTracker(model, OpCounts())  # count again, for real, on `device`
        try:
            out_bytes = count_step(model, torch.zeros(shape, dtype=dtype, device=device),
                                   tracker)
        except (RuntimeError, ValueError, IndexError) as exc2:
            raise _shape_error(model, tracker, shape, exc2) from exc2
    counts = tracker.counts
    params = list(model.parameters())  # torch already lists a tied parameter once
    elem = torch.empty((), dtype=dtype).element_size()
    mem = estimate(model, dtype, optimizer, input_bytes=batch_size * _prod(size) * elem,
                   output_bytes=out_bytes, activation_bytes=sum(counts.saved_bytes.values()),
                   momentum=momentum)
    measured = None
    if measure_memory:
        try:
            measured = measure_step(model, size, batch_size, device, dtype, optimizer, momentum)
        except (RuntimeError, ValueError) as exc:  # out of memory, BatchNorm at batch 1, ...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            hint = ("use batch_size >= 2" if "more than 1 value per channel" in first
                    else "use a smaller batch_size")
            raise ShapeError(f"one real training step of {type(model).__name__} at "
                             f"{list(shape)} failed: {first}; {hint}, or pass "
                             f"measure_memory=False for the counts alone") from exc
    return Summary(
        model=type(model).__name__, input_size=size, batch_size=batch_size,
        dtype=str(dtype).removeprefix("torch."), device=str(device), optimizer=optimizer,
        total_params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        total_macs=round(sum(counts.macs_fwd.values())),
        macs_backward=round(sum(counts.macs_bwd.values())),
        flops_forward=round(sum(counts.flops_fwd.values())),
        flops_backward=round(sum(counts.flops_bwd.values())),
        rows=_rows(model, tracker, counts, depth), memory=mem, measured=measured,
        uncounted_ops=dict(counts.uncounted), momentum=momentum)


def _prod(xs: tuple[int, ...]) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


# -- the chapter's exercises --------------------------------------------------------------------

@dataclass
class ConvCost:
    """Exercise 7.4: cost of one 2-D convolution, counted by hand (elements, not bytes)."""

    output_hw: tuple[int, int]  # (m_h, m_w)
    forward_mults: int  # c_i * c_o * k_h * k_w * m_h * m_w (per example)
    forward_adds: int  # accumulations, plus the bias adds
    forward_memory: int  # elements held: input + weights (+ bias) + output
    backward_mults: int  # grad of the input and of the weights, each as many as the forward
    backward_adds: int
    backward_memory: int  # forward memory + grad of output, input, weights (+ bias)

    def bytes(self, element_size: int = 4) -> dict[str, int]:
        """Forward and backward memory in bytes for ``element_size``-byte elements."""
        return {"forward": self.forward_memory * element_size,
                "backward": self.backward_memory * element_size}


def conv2d_cost(c_i: int, c_o: int, h: int, w: int, k_h: int, k_w: int, p_h: int = 0,
                p_w: int = 0, s_h: int = 1, s_w: int = 1, bias: bool = True,
                batch_size: int = 1) -> ConvCost:
    """Exercise 7.4: multiplications, additions and memory of a conv's forward and backward.

    Padding ``p_h``/``p_w`` is the total added to each dimension, as the book counts it.
    """
    m_h = (h - k_h + p_h + s_h) // s_h
    m_w = (w - k_w + p_w + s_w) // s_w
    if m_h < 1 or m_w < 1:
        raise ShapeError(f"a {k_h}x{k_w} kernel does not fit a {h}x{w} input with padding "
                         f"({p_h}, {p_w}); use a smaller kernel or more padding")
    n, outs, b = batch_size, c_o * m_h * m_w, int(bias)
    mults = n * c_i * k_h * k_w * outs
    # each output sums c_i*k_h*k_w products: one add fewer, plus one for the bias
    adds = n * outs * (c_i * k_h * k_w - 1 + b)
    x, wt, y = n * c_i * h * w, c_o * c_i * k_h * k_w + b * c_o, n * outs
    # backward: dX (a transposed conv) and dW (X correlated with dY) each repeat every forward
    # product once; each input element / weight sums its products (one add fewer than terms,
    # every input covered when stride <= kernel); the bias gradient sums dY per channel.
    grad_x_adds = max(mults - x, 0)
    grad_w_adds = mults - c_o * c_i * k_h * k_w
    return ConvCost(
        output_hw=(m_h, m_w), forward_mults=mults, forward_adds=adds, forward_memory=x + wt + y,
        backward_mults=2 * mults,
        backward_adds=grad_x_adds + grad_w_adds + b * (y - c_o),
        backward_memory=x + wt + y + y + x + wt)


@dataclass
class ModelComparison:
    """Exercises 8.2.1-8.2.3: two models side by side at one input size."""

    input_size: tuple[int, ...]
    a: Summary
    b: Summary

    @property
    def ratios(self) -> dict[str, float]:
        """b / a for parameters, MACs, saved activations and the memory estimate."""
        def r(x: float, y: float) -> float:
            return y / x if x else float("inf")

        return {"params": r(self.a.total_params, self.b.total_params),
                "macs": r(self.a.total_macs, self.b.total_macs),
                "activations": r(self.a.memory.activations, self.b.memory.activations),
                "memory": r(self.a.memory.total, self.b.memory.total)}

    def __str__(self) -> str:
        head = f"{'':<22}{self.a.model:>16}{self.b.model:>16}{'ratio':>10}"
        lines = [f"input {list(self.input_size)}", head]
        for key, fa, fb, unit in (
                ("params", self.a.total_params, self.b.total_params, ""),
                ("macs", self.a.total_macs, self.b.total_macs, "MAC"),
                ("activations", self.a.memory.activations, self.b.memory.activations, "B"),
                ("memory", self.a.memory.total, self.b.memory.total, "B")):
            lines.append(f"{key:<22}{format_si(fa, unit):>16}{format_si(fb, unit):>16}"
                         f"{self.ratios[key]:>9.2f}x")
        return "\n".join(lines)


def compare_models(name_a: str, name_b: str, input_size: tuple[int, ...] | None = None, *,
                   num_classes: int = 10, batch_size: int = 1) -> ModelComparison:
    """Parameters, MACs and memory of two registered models at one input size (default: a's)."""
    from cnnlab.models import create_model, default_input_size

    size = tuple(input_size) if input_size is not None else default_input_size(name_a)
    out = []
    for name in (name_a, name_b):
        # On the meta device: counting needs shapes only, so no weights are initialised.
        with torch.device("meta"):
            try:  # zoo classifiers sized by a flatten are built for the input size
                model = create_model(name, num_classes=num_classes, in_channels=size[0],
                                     input_size=tuple(size[1:]))
            except TypeError:
                model = create_model(name, num_classes=num_classes, in_channels=size[0])
        out.append(summary(model, size, batch_size=batch_size, measure_memory=False))
        out[-1].model = name
    return ModelComparison(size, out[0], out[1])


# What the weight initializers do to a tensor's data; a meta tensor has none.
_INIT_OPS = frozenset(("uniform_", "normal_", "zero_", "fill_", "erfinv_", "mul_", "add_",
                       "clamp_", "copy_", "random_"))


def model_rows(pattern: str | None = None) -> list[tuple[str, str, int]]:
    """(name, 'C,H,W', parameters) per zoo model, built on the meta device (no memory, no time)."""
    import torch
    from torch.overrides import TorchFunctionMode

    from cnnlab.models import create_model, default_input_size, list_models

    class SkipMetaInit(TorchFunctionMode):
        """In-place ops on meta tensors (the weight init: uniform_, zero_, ...) change nothing;
        skipping them saves most of the time of building 28 models."""

        def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            if (getattr(func, "__name__", "") in _INIT_OPS and args
                    and isinstance(args[0], torch.Tensor) and args[0].is_meta):
                return args[0]
            return func(*args, **(kwargs or {}))

    rows = []
    for name in list_models(pattern):
        c, h, w = default_input_size(name)
        with torch.device("meta"), SkipMetaInit():
            model = create_model(name, in_channels=c)
        rows.append((name, f"{c},{h},{w}", sum(p.numel() for p in model.parameters())))
    return rows
