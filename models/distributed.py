"""Data-parallel training across processes with ``torch.distributed`` (gloo on CPU, NCCL on GPU).

A run started by ``torchrun`` (or ``headstart build --nproc N``, which calls torch's own
launcher) has ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and a rendezvous in its environment;
:func:`init_from_env` joins the group. Without them everything here is the identity and a run
is the plain one-process one.

Every rank draws the same shuffled order and the same random numbers from the same seed, and
each global batch is cut into ``world.size`` contiguous slices, one per rank. The sum of the
ranks' per-slice gradients is therefore the one-process gradient of the whole global batch,
which is what makes N processes reproduce one (within float rounding).
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from models.errors import ConfigError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes checkpoints, exports, logs and progress bars."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    def part(self, total: int) -> tuple[int, int]:
        """``(start, stop)`` of this rank's contiguous slice of ``total`` rows."""
        base, extra = divmod(total, self.size)
        start = self.rank * base + min(self.rank, extra)
        return start, start + base + (1 if self.rank < extra else 0)

    def local(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch (all of it in one process)."""
        if not self.parallel:
            return batch
        start, stop = self.part(len(batch))
        return batch[start:stop]


def world() -> World:
    """The current process group as a :class:`World` (one process when there is none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(
        rank=dist.get_rank(),
        size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process in the group."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: torch.device) -> World:
    """Join the process group torchrun described; gloo on CPU, NCCL on CUDA."""
    if not launched() or dist.is_initialized():
        return world()
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; run with one process")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return world()


def shutdown() -> None:
    """Leave the group once every rank is done with it.

    Without the barrier a rank that finished first tears its gloo connections down while a
    peer may still be closing the same pairs, and the C++ side aborts that process at exit.
    The collection first frees the ``DistributedDataParallel`` wrappers that training left
    in reference cycles while the group and the interpreter are alive; freed during the
    interpreter's own exit instead, one in ten two-process runs aborted there ("terminate
    called without an active exception", SIGABRT) after all their work was done.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """On CUDA each local rank has its own GPU; on CPU they share the host."""
    if device.type == "cuda" and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def all_sum_(tensors: Iterable[torch.Tensor]) -> None:
    """Sum ``tensors`` over every rank, in place (nothing in one process)."""
    if not world().parallel:
        return
    for tensor in tensors:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def total(value: float, device: torch.device | None = None) -> float:
    """The sum of a per-rank number over every rank (a loss total, a count)."""
    if not world().parallel:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return float(tensor.item())


def barrier() -> None:
    if world().parallel:
        dist.barrier()


def data_parallel(module: torch.nn.Module) -> torch.nn.Module:
    """Wrap ``module`` in ``DistributedDataParallel`` when there is more than one process.

    DDP averages gradients over ranks; :func:`loss_share` scales each rank's loss so the
    average is the whole global batch's gradient even when the slices differ in size.
    """
    if not world().parallel:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device = next(module.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    # Every rank starts from the same seed, so DDP's start-up broadcast changes nothing; it
    # still guards against a rank that drifted.
    return DistributedDataParallel(module, device_ids=ids)


def loss_share(local_rows: int, global_rows: int) -> float:
    """Factor turning a mean over this rank's rows into its share of the global mean.

    DDP divides the summed gradients by the number of ranks, so a rank's mean loss is
    weighted by ``size * local / global``; with equal slices the factor is 1.
    """
    w = world()
    return w.size * local_rows / global_rows if w.parallel else 1.0


def gather_rows(local: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's rows in rank order, keeping the autograd graph.

    Used where a loss couples the rows of a batch (NT-Xent's negatives): each rank then
    computes the whole global batch's loss and back-propagates into its own rows.
    """
    w = world()
    if not w.parallel:
        return local
    from torch.distributed.nn.functional import all_gather

    # Slices may differ by one row; all_gather needs equal shapes, so pad and cut back.
    counts = torch.tensor([local.shape[0]], device=local.device)
    every = [torch.zeros_like(counts) for _ in range(w.size)]
    dist.all_gather(every, counts)
    longest = max(int(c) for c in every)
    pad = longest - local.shape[0]
    padded = torch.cat([local, local.new_zeros(pad, *local.shape[1:])]) if pad else local
    parts = all_gather(padded)  # type: ignore[no-untyped-call]
    return torch.cat([p[: int(c)] for p, c in zip(parts, every, strict=True)])
