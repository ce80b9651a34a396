"""Data-parallel plumbing for runs launched by torchrun: process group, rank, all-reduce.

Launch (CPU, 2 processes):  torchrun --nproc_per_node 2 -m cnnlab train lenet --out runs/ddp
torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them everything
here is a no-op and training runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0  # global rank of this process
    world_size: int = 1  # number of processes
    local_rank: int = 0  # rank on this machine (picks the GPU)
    owns_group: bool = False  # True when we created the process group and must destroy it

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files, checkpoints and progress."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """More than one process."""
        return self.world_size > 1


def is_rank0() -> bool:
    """True in the process that speaks for the job: rank 0 under torchrun, or a lone process.

    Works before the process group exists (torchrun's RANK), so the CLI can ask it first thing.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return os.environ.get("RANK", "0") == "0"


def launched_by_torchrun() -> bool:
    """True when the environment describes a multi-process job."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device_type: str) -> DistInfo:
    """Join the process group torchrun described (gloo on CPU, nccl on CUDA); no-op otherwise."""
    if dist.is_available() and dist.is_initialized():  # the caller set it up already
        return DistInfo(dist.get_rank(), dist.get_world_size(),
                        int(os.environ.get("LOCAL_RANK", "0")), owns_group=False)
    if not launched_by_torchrun():
        return DistInfo()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=True)


def teardown(info: DistInfo) -> None:
    """Leave the process group if we created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over all processes (in place; returned for chaining)."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj: object, info: DistInfo) -> object:
    """Rank 0's value of a small picklable object on every rank."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    """Wait for every process (e.g. until rank 0 has written a checkpoint)."""
    if info.enabled:
        dist.barrier()
