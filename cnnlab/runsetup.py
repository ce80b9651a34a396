"""Everything a training run stands on before its first step: the device and the processes, the
precision, the process-wide torch settings, its inputs (cnnlab.inputs) and loaders, the model
(channels_last, DDP, compile), the optimizer and the loss scaler.

    setup = set_up(config, "lenet", None, settings)    # settings: an ExitStack the run closes
    setup.loader, setup.model, setup.optimizer, setup.config (resolved: what config.json records)
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnlab import distributed as ddp
from cnnlab.device import (
    PRECISION_NAMES,
    pick_device,
    precision_dtype,
    resolve_precision,
    run_settings,
)
from cnnlab.errors import ConfigError, ShapeError
from cnnlab.inputs import RunInputs
from cnnlab.progress import plural
from cnnlab.runlog import environment
from cnnlab.train_config import TrainConfig, make_optimizer

__all__ = ["RunSetup", "set_up"]


@dataclass
class RunSetup:
    """A run, set up: what the training loop reads (see set_up)."""

    config: TrainConfig  # resolved: the precision, device, dataset, model and resize it uses
    device: torch.device
    dist: Any  # cnnlab.distributed.DistInfo
    amp: torch.dtype | None  # the autocast dtype (None: float32)
    thread_policy: Any  # the load-aware ThreadPolicy (threads=0 on a CPU), else None
    inputs: RunInputs
    dataset: Any
    loader: Any  # the training batches (this rank's shard)
    val_loader: Any
    test_loader: Any  # the val_loader itself when the run validates on the test split
    val_is_test: bool
    normalize: Any
    n_train: int
    raw_model: nn.Module
    model: nn.Module  # raw_model, wrapped by DDP and torch.compile when asked
    optimizer: Any
    scaler: Any
    notes: list[str] = field(default_factory=list)  # said once before training starts
    kept_threads: int = 0  # a resumed run's thread count, as it chose it at its start

    def describe(self, steps: int, epochs: int) -> str:
        """'lenet on fashion-mnist: 60,000 train samples, 469 steps/epoch, ...': the run's
        first line."""
        cfg = self.config
        where = f"device {self.device}" + (f" x{self.dist.world_size}" if self.dist.enabled
                                             else "")
        if self.device.type == "cpu":
            where += f", {self._threads_text()}"
        return (f"{cfg.model or type(self.raw_model).__name__} on {cfg.dataset}: "
                f"{plural(self.n_train, 'train sample')}, {plural(steps, 'step')}/epoch, "
                f"{plural(epochs, 'epoch')}, {where}, {PRECISION_NAMES[cfg.amp]}"
                + (", validating on the test split" if self.val_is_test and cfg.eval_every
                   else ""))

    def _threads_text(self) -> str:
        n = plural(torch.get_num_threads(), "thread")
        if self.thread_policy is not None:
            return n + " (chosen from the CPU's load now, kept for the whole run)"
        if self.kept_threads and not self.config.threads:
            return n + " (as the run chose at its start)"
        return n

    def environment(self) -> dict[str, Any]:
        """config.json's "environment": the machine, and the CPU threads the run uses (threads=0:
        chosen from the load as it started, then kept; a resume keeps that count)."""
        env = environment(self.device)  # cpu_threads: the count in force
        if self.thread_policy is not None:
            env["cpu_thread_policy"] = "chosen from the load at the start, then kept"
        elif self.kept_threads and not self.config.threads:
            env["cpu_thread_policy"] = "kept from the run's start (resumed)"
        return env


def set_up(config: TrainConfig, model: nn.Module | str, data: Any,
           settings: contextlib.ExitStack, *, model_kwargs: dict[str, Any] | None = None,
           preflight: Callable[..., None] | None = None,
           on_start: Callable[[TrainConfig], None] | None = None,
           kept_threads: int = 0) -> RunSetup:
    """Set a run up. The process-wide settings enter `settings` (the caller closes it when the
    run ends); preflight (the memory guard) and on_start hear the resolved config before any
    data is copied to the device or any model is built. kept_threads: a resumed run's thread
    count, as it chose it at its start (used when config.threads is 0)."""
    cfg = config
    device = pick_device(cfg.device)
    dist = ddp.setup(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if cfg.batch_size % dist.world_size:
        raise ConfigError(f"batch_size={cfg.batch_size} must divide evenly among "
                          f"{dist.world_size} processes")
    # The precision is resolved here, once, and recorded as the word it resolved to.
    precision = resolve_precision(cfg.amp, device)
    notes: list[str] = []
    if cfg.amp == "fast" and precision == "off" and device.type == "cpu":
        notes.append("this CPU has no native bf16 (avx512_bf16/AMX): training in "
                     "float32, where emulated bf16 would be slower")
    cfg = cfg.replace(amp=precision)
    # Threads, deterministic kernels, cuDNN autotuning, the seed: put back when the run ends.
    policy = settings.enter_context(run_settings(
        device, threads=cfg.threads or kept_threads, deterministic=cfg.deterministic,
        seed=cfg.seed))
    # Recorded as used, never as "auto": the device type.
    cfg = cfg.replace(device=device.type if cfg.device == "auto" else cfg.device)

    name = model if isinstance(model, str) else None
    inputs = RunInputs.load(cfg, data, model=name)
    ds = inputs.dataset
    if getattr(ds, "note", ""):  # e.g. a subset of MNIST: say so before comparing accuracies
        notes.append(f"{ds.name}: {ds.note}")
    cfg = inputs.config = cfg.replace(dataset=ds.name, model=name or cfg.model,
                                      resize=inputs.resize)
    if preflight is not None:  # before any copy to the device or any model is built
        try:  # the memory guard builds the network for the loader's size
            preflight(cfg, ds, device, dict(model_kwargs or {}))
        except ShapeError as e:
            raise _too_small(e, cfg, inputs) from None
    if on_start is not None:
        on_start(cfg)

    train_split, val_split, test_split = inputs.splits()
    common = dict(device=device, channels_last=cfg.channels_last)
    loader = inputs.loader(train_split, cfg.batch_size // dist.world_size, shuffle=True,
                           seed=cfg.seed, augment=inputs.augment(), rank=dist.rank,
                           world_size=dist.world_size, **common)
    # Evaluation is sharded by stride without padding: every sample is counted exactly once.
    r, w = dist.rank, dist.world_size
    val_loader = inputs.loader(_shard(val_split, r, w), cfg.eval_batch_size, **common)
    test_loader = val_loader if inputs.val_is_test else inputs.loader(
        _shard(test_split, r, w), cfg.eval_batch_size, **common)
    if len(loader) == 0:
        raise ConfigError(f"batch_size={cfg.batch_size} leaves no batch from "
                          f"{len(train_split)} training samples; lower it")

    try:
        raw, wrapped = _model(cfg, model, inputs, device, dist, model_kwargs or {}, notes)
    except ShapeError as e:
        raise _too_small(e, cfg, inputs) from None
    params = [p for p in raw.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg.optimizer, cfg.lr, cfg.momentum, cfg.nesterov,
                               cfg.weight_decay)
    amp = precision_dtype(precision)
    # fp16 needs loss scaling to keep small gradients; bf16 has float32's range and does not.
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)
    return RunSetup(cfg, device, dist, amp, policy, inputs, ds, loader, val_loader, test_loader,
                    inputs.val_is_test, inputs.normalize, len(train_split), raw, wrapped,
                    optimizer, scaler, notes, kept_threads)


def _too_small(err: ShapeError, cfg: TrainConfig, inputs: RunInputs) -> ShapeError:
    """A zoo model's "needs inputs of at least S" said with the flags that fix it: --image-size
    for a class folder read at a small size (its smallest image sets it), else --resize."""
    need = getattr(err, "min_size", None)
    if need is None or not isinstance(cfg.model, str) or not cfg.model:
        return err
    from cnnlab.data import is_folder_dataset

    h, w = inputs.size
    if is_folder_dataset(inputs.dataset.name) and cfg.resize is None:
        how = f"give --image-size {need} or more"
        if not cfg.image_size:
            how = (f"the class folder is read at the shorter side of its smallest image; {how} "
                   "(every image is resized to it), or remove the small images")
    else:
        how = f"give --resize {need} or more"
    return ShapeError(f"{cfg.model} needs inputs of at least {need}x{need}, got {h}x{w}: {how}")


def _model(cfg: TrainConfig, model: nn.Module | str, inputs: RunInputs, device: torch.device,
           dist: Any, model_kwargs: dict[str, Any], notes: list[str]
           ) -> tuple[nn.Module, nn.Module]:
    """(the network on the device, what the loop calls: wrapped by DDP and compile if asked)."""
    if isinstance(model, str):
        torch.manual_seed(cfg.seed)  # zoo models initialize from the run's seed
        model = inputs.build_model(model, model_kwargs)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"model must be an nn.Module or a zoo name, "
                          f"got {type(model).__name__}")
    raw = model.to(device)
    if cfg.channels_last:
        raw = raw.to(memory_format=torch.channels_last)
    wrapped = raw
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        wrapped = DistributedDataParallel(raw, device_ids=ids)
    if cfg.compile and device.type == "cpu" and not _cxx_compiler():
        # Inductor builds C++ kernels on the CPU; without a compiler it fails at the first
        # step. Train eagerly instead and say so: a recipe's speed knob must not break it.
        notes.append("torch.compile needs a C++ compiler (g++, clang++ or $CXX) on the "
                     "CPU and none was found: training without compile")
    elif cfg.compile:
        wrapped = torch.compile(wrapped)
    return raw, wrapped


def _cxx_compiler() -> str | None:
    """Path of the C++ compiler torch.compile would use on the CPU, or None."""
    import shutil

    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        path = shutil.which(name) if name else None
        if path:
            return path
    return None


def _shard(split: Any, rank: int, world_size: int) -> Any:
    if world_size == 1:
        return split
    return split.subset(torch.arange(rank, len(split), world_size))

