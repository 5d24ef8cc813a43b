"""Data-parallel training on torch.distributed: `torchrun --nproc_per_node N -m ipvae.cli train ...`.

Every process holds the whole model and a slice of each global batch (``batch_size / world_size`` rows);
DistributedDataParallel averages the gradients, so one optimisation step is the step of the global
batch. The sampling noise of the whole global batch is drawn on every rank from the shared generator
and sliced (``ipvae.train.distributions.BatchShard``; the relaxed Poisson sampler's later arrival
noise, drawn for the active neurons only, is sliced by every rank's active count, one all-gather of
an integer per draw), so the draws, the generator state and therefore the weights do not depend on
the number of processes (up to float rounding of the gradient average, and until such rounding moves
a neuron across the sampler's activity threshold; see ``draw_active_arrival_noise``).
Backend: NCCL with one GPU per process when CUDA is available, else gloo on the CPU.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from ipvae.errors import IpvaeError
from ipvae.train.distributions import BatchShard

# torchrun exports these; a process started any other way trains alone.
WORLD_SIZE_VARIABLE = "WORLD_SIZE"
LOCAL_RANK_VARIABLE = "LOCAL_RANK"


@dataclass(frozen=True)
class DataParallel:
    """This process's place in the group (rank 0 of 1 when training alone)."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, metrics and progress."""
        return self.rank == 0

    def local_batch_size(self, global_batch_size: int) -> int:
        if global_batch_size % self.world_size:
            raise IpvaeError(
                f"batch size {global_batch_size} is not divisible by the {self.world_size} processes; "
                "the global batch is split evenly"
            )
        return global_batch_size // self.world_size

    def shard(self, global_batch_size: int) -> BatchShard | None:
        """This rank's rows of a global batch (None when training alone: nothing to slice)."""
        if self.world_size == 1:
            return None
        return BatchShard(
            start=self.rank * self.local_batch_size(global_batch_size),
            global_size=global_batch_size,
            exchange_counts=self.gather_counts,
        )

    def gather_counts(self, count: int) -> list[int]:
        """Every rank's ``count``, in rank order (one all-gather of an integer)."""
        if self.world_size == 1:
            return [count]
        gathered = [torch.zeros(1, dtype=torch.int64, device=self.device) for _ in range(self.world_size)]
        dist.all_gather(gathered, torch.tensor([count], dtype=torch.int64, device=self.device))
        return [int(value) for value in gathered]

    def wrap(self, module: nn.Module) -> nn.Module:
        """DistributedDataParallel around ``module`` (gradients averaged in backward), or ``module`` alone."""
        if self.world_size == 1:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def mean(self, values: Tensor) -> Tensor:
        """Average of ``values`` over the ranks (every rank gets it)."""
        if self.world_size == 1:
            return values
        averaged = values.clone()
        dist.all_reduce(averaged, op=dist.ReduceOp.SUM)
        return averaged / self.world_size


SINGLE_PROCESS = DataParallel(rank=0, world_size=1, device=torch.device("cpu"))


@contextmanager
def data_parallel_from_environment() -> Iterator[DataParallel]:
    """The process group torchrun describes (joined here and left at exit), one already initialised by
    the caller (kept), or a single process."""
    if dist.is_available() and dist.is_initialized():
        yield _describe_group()
        return
    if int(os.environ.get(WORLD_SIZE_VARIABLE, "1")) <= 1:
        yield SINGLE_PROCESS
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get(LOCAL_RANK_VARIABLE, "0")))
    dist.init_process_group(backend=backend)
    try:
        yield _describe_group()
    finally:
        dist.destroy_process_group()


def _describe_group() -> DataParallel:
    if dist.get_backend() == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    else:
        device = torch.device("cpu")
    return DataParallel(rank=dist.get_rank(), world_size=dist.get_world_size(), device=device)
