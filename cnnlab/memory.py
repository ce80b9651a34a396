"""Memory of one training step: an analytic estimate and a measured peak.

The estimate adds up what a step must hold at once: parameters, buffers, one gradient per
trainable parameter, the optimizer's state, the input batch, the output, and the activations
autograd saves for the backward (recorded tensor by tensor through saved-tensor hooks, each
storage once, so ``x`` saved by both a ReLU and the next conv counts once and max-pool's int64
indices count at their real size). The measurement runs one real step (forward, loss,
backward, optimizer step) on a copy of the model, its optimizer state created inside the step:
on CUDA from the allocator's peak (``torch.cuda.max_memory_allocated``), on
the CPU from ``torch.profiler`` allocation events (``profile_memory=True``), replayed in order
to find the highest point. Both are reported because they differ: the measurement includes
the kernels' workspaces and temporaries that no formula sees.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parameter import is_lazy

from cnnlab.errors import ConfigError
from cnnlab.opcount import ModuleTracker, OpCounts, count_step, one_value_per_channel_allowed
from cnnlab.train_config import make_optimizer


def _unique_tensors(tensors: Any) -> list[torch.Tensor]:
    seen: set[int] = set()
    out = []
    for t in tensors:
        if isinstance(t, torch.Tensor) and id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def _nbytes(tensors: Any) -> int:
    """Bytes of the distinct storages behind ``tensors`` (a view or tied weight counts once)."""
    storages: dict[int, int] = {}
    for t in _unique_tensors(tensors):
        s = t.untyped_storage()
        storages[s._cdata] = s.nbytes()
    return sum(storages.values())


@dataclass
class MemoryEstimate:
    """Analytic memory of one training step, in bytes."""

    params: int
    buffers: int
    grads: int
    optimizer_state: int
    input: int
    output: int
    activations: int  # saved by autograd for the backward (excluding params and the input)

    @property
    def total(self) -> int:
        """Everything the step holds at its highest point, summed (an upper-bound style sum)."""
        return (self.params + self.buffers + self.grads + self.optimizer_state + self.input
                + self.output + self.activations)

    def to_dict(self) -> dict[str, int]:
        """Plain dict of the components and the total."""
        return {**asdict(self), "total": self.total}


@dataclass
class MeasuredMemory:
    """Peak memory measured over one real training step, in bytes."""

    peak: int  # resident at the start of the step + the highest point of its allocations
    resident: int  # params, buffers and the batch, alive before the step
    device: str
    method: str
    batch_size: int  # the batch the step ran at

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields."""
        return asdict(self)


def optimizer_state_bytes(params: list[nn.Parameter], optimizer: str, momentum: float = 0.0,
                          element_size: int | None = None) -> int:
    """Bytes of optimizer state for ``params`` (SGD: none, 1 buffer with momentum; AdamW: 2 + step).

    ``optimizer`` and ``momentum`` as in TrainConfig; ``element_size`` overrides the parameters'
    own (the dtype the step will run in).
    """
    trainable = [p for p in _unique_tensors(params) if p.requires_grad]
    one = sum(p.numel() * (element_size or p.element_size()) for p in trainable)
    if optimizer == "sgd":
        return one if momentum else 0
    # AdamW: exp_avg and exp_avg_sq like the parameter, plus a float32 scalar `step` each.
    return 2 * one + 4 * len(trainable)


def _loss(out: Any) -> torch.Tensor:
    """Cross-entropy on random labels for (N, K) logits; the mean of the outputs otherwise."""
    if isinstance(out, torch.Tensor) and out.dim() == 2 and out.is_floating_point():
        target = torch.randint(0, out.shape[1], (out.shape[0],), device=out.device)
        return F.cross_entropy(out, target)
    leaves = [t for t in torch.utils._pytree.tree_flatten(out)[0]
              if isinstance(t, torch.Tensor) and t.is_floating_point()]
    return sum(t.float().mean() for t in leaves)


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the block: C++ prints that Python cannot catch."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _cpu_peak_of(fn: Any) -> int:
    """Highest point of the allocations ``fn()`` makes on the CPU, from profiler events."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
    with _stderr_silenced():  # kineto prints "USDT: ... profiler_start" on fd 2
        prof.__enter__()
    try:
        fn()
    finally:
        with _stderr_silenced():  # ... and "profiler_stop"
            prof.__exit__(None, None, None)
    events = []
    todo = list(prof.profiler.kineto_results.experimental_event_tree())
    while todo:
        node = todo.pop()
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            events.append((node.start_time_ns, node.extra_fields.alloc_size))
        todo.extend(node.children)
    # The event tree nests allocations under ops; time order is what the allocator saw.
    level = peak = 0
    for _, size in sorted(events, key=lambda e: e[0]):
        level += size
        peak = max(peak, level)
    return peak


def measure_step(model: nn.Module, input_size: tuple[int, ...], batch_size: int,
                 device: torch.device, dtype: torch.dtype, optimizer: str,
                 momentum: float = 0.0) -> MeasuredMemory:
    """Measure the peak memory of one training step on a copy of ``model`` (it is not changed)."""
    net = copy.deepcopy(model).to(device=device, dtype=dtype).train()
    for p in net.parameters():
        p.grad = None
    # The engine's own optimizer (the learning rate changes no memory).
    opt = make_optimizer([p for p in net.parameters() if p.requires_grad], optimizer, lr=0.01,
                         momentum=momentum)
    x = torch.randn((batch_size, *input_size), device=device, dtype=dtype)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with one_value_per_channel_allowed():  # BatchNorm at batch 1: degenerate, still a step
            _loss(net(x)).backward()
        opt.step()

    # No warm-up step: the optimizer state the first step creates is allocated inside the
    # measured step, where it counts as it would in every later step (it outlives the step).
    resident = _nbytes([*net.parameters(), *net.buffers(), x])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        extra = torch.cuda.max_memory_allocated(device) - base
        method = "torch.cuda.max_memory_allocated over one step"
    else:
        extra = _cpu_peak_of(step)
        method = "torch.profiler allocation events over one step"
    return MeasuredMemory(peak=resident + max(extra, 0), resident=resident, device=str(device),
                          method=method, batch_size=batch_size)


def estimate(model: nn.Module, dtype: torch.dtype, optimizer: str, input_bytes: int,
             output_bytes: int, activation_bytes: int, momentum: float = 0.0) -> MemoryEstimate:
    """The analytic estimate, given what the counting pass recorded for the batch."""
    size = torch.empty((), dtype=dtype).element_size()

    def cast(t: torch.Tensor) -> int:  # floating tensors move to `dtype`, others keep theirs
        return t.numel() * (size if t.is_floating_point() else t.element_size())

    params = _unique_tensors(model.parameters())
    trainable = [p for p in params if p.requires_grad]
    return MemoryEstimate(
        params=sum(cast(p) for p in params),
        buffers=sum(cast(b) for b in _unique_tensors(model.buffers())),
        grads=sum(cast(p) for p in trainable),
        optimizer_state=optimizer_state_bytes(trainable, optimizer, momentum, size),
        input=input_bytes,
        output=output_bytes,
        activations=activation_bytes,
    )


# --- will a whole run fit? --------------------------------------------------------------------

@dataclass
class RunMemory:
    """What a training run holds at its highest point, in bytes: the memory guard's figures."""

    model: int  # parameters, buffers, gradients and optimizer state: alive the whole run
    train_step: int  # the batch being prepared, its input, output and saved activations
    eval_batch: int  # an evaluation batch: its input and the largest layer's input and output
    data: int  # the dataset's own copy on the device (0 on the CPU: it is already in memory)
    batch_size: int
    eval_batch_size: int

    @property
    def total(self) -> int:
        """The highest point: training and evaluation take turns, the rest stays."""
        return self.model + max(self.train_step, self.eval_batch) + self.data


def run_memory(model: nn.Module, input_size: tuple[int, ...], *, batch_size: int,
               eval_batch_size: int, optimizer: str = "sgd", momentum: float = 0.0,
               data_bytes: int = 0) -> RunMemory | None:
    """Estimate a run's peak memory by counting one training step on the meta device.

    Nothing is allocated (the model's tensors are swapped for meta ones), so this is instant at
    any input size. None when the model cannot be counted there (Lazy layers that have not run,
    an op without a meta kernel, a shape the model rejects: the run will say so itself).
    """
    if any(is_lazy(p) for p in model.parameters()):
        return None
    tracker = ModuleTracker(model, OpCounts())
    x = torch.zeros((batch_size, *input_size), dtype=torch.float32, device="meta")
    try:
        out_bytes = count_step(model, x, tracker, torch.float32)
    except (RuntimeError, ValueError, IndexError, NotImplementedError):
        return None
    sample = x[0].numel() * 4  # one float32 input
    step = estimate(model, torch.float32, optimizer, batch_size * sample, out_bytes,
                    sum(tracker.counts.saved_bytes.values()), momentum)
    # An inference forward holds one layer's input and output at a time (plus the batch).
    largest = max((rec.output_bytes / max(rec.calls, 1) for rec in tracker.calls.values()
                   if not any(True for _ in rec.module.children())), default=0) / batch_size
    return RunMemory(
        model=step.params + step.buffers + step.grads + step.optimizer_state,
        train_step=step.input + step.output + step.activations + batch_size * sample,
        eval_batch=int(eval_batch_size * 2 * (sample + largest)),
        data=data_bytes, batch_size=batch_size, eval_batch_size=eval_batch_size)


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def check_fits(need: RunMemory, available: int | None, what: str, where: str) -> None:
    """ConfigError, before any work, when `need` exceeds the `available` bytes (None: unknown)."""
    if available is None or need.total <= available:
        return
    parts = [f"model and optimizer {_size(need.model)}",
             f"training batch of {need.batch_size} {_size(need.train_step)}",
             f"evaluation batch of {need.eval_batch_size} {_size(need.eval_batch)}"]
    if need.data:
        parts.append(f"data {_size(need.data)}")
    raise ConfigError(f"{what} needs about {_size(need.total)} of memory ({', '.join(parts)}) "
                      f"but {_size(available)} is available on {where}; lower resize, batch_size "
                      "or eval_batch_size (or set CNNLAB_AVAILABLE_MEMORY to go ahead anyway)")


def check_run_fits(config: Any, dataset: Any, device: torch.device,
                   model_kwargs: dict[str, Any] | None = None) -> RunMemory | None:
    """Refuse (ConfigError, one line with the estimate) a run of the zoo model `config.model`
    on `dataset` whose model, batches and data will not fit in `device`'s available memory.

    A `train(preflight=...)` check: it runs once the engine has resolved the config and before
    any work, and builds the model on the meta device, so a run that would need 500 GB is
    refused in a second instead of being killed by the kernel minutes later. Returns the
    estimate (None when it cannot be made: a custom nn.Module, Lazy layers).
    """
    from cnnlab.device import available_memory
    from cnnlab.inputs import RunInputs

    if not config.model:
        return None
    inputs = RunInputs(config, dataset)
    channels, h, w = inputs.shape.chw
    world = int(os.environ.get("WORLD_SIZE", "1"))
    with torch.device("meta"):
        net = inputs.build_model(config.model, model_kwargs)
    # The loader copies each split to the device once; on the CPU it is the copy just loaded.
    data = 0 if device.type == "cpu" else sum(
        s.images.nbytes + s.labels.nbytes for s in (dataset.train, dataset.test))
    need = run_memory(net, (channels, h, w), batch_size=max(config.batch_size // world, 1),
                      eval_batch_size=config.eval_batch_size, optimizer=config.optimizer,
                      momentum=config.momentum, data_bytes=data)
    if need is None:
        return None
    available = available_memory(device)
    if available is not None and device.type != "cuda":
        available //= int(os.environ.get("LOCAL_WORLD_SIZE", world))  # processes share the host
    check_fits(need, available, f"{config.model} at {h}x{w}", str(device))
    return need
