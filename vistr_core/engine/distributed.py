"""Data-parallel training over processes started by ``torchrun`` (or one process without it).

``torchrun --nproc_per_node N [--nnodes M ...] -m vistr_cli train ...`` sets ``RANK``,
``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`init_distributed` reads them, joins the process group
(NCCL for CUDA, gloo for CPU) and gives each rank its device (``cuda:LOCAL_RANK``). Without those
variables everything here is a no-op and the same code runs in a single process.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..errors import ConfigError
from .device import select_device

PROCESS_GROUP_TIMEOUT_MINUTES = 120


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the job.

    Attributes:
        rank: global rank (0 in a single process).
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: this rank's device.
        owns_group: this context joined the process group (and so should leave it).
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, reports progress and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device_spec: str = "auto") -> DistContext:
    """Join the process group when launched by torchrun; else a single-process context.

    With CUDA each rank uses ``cuda:LOCAL_RANK`` (``device_spec`` only chooses CUDA vs CPU).
    """
    device = select_device(device_spec)
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistContext(0, 1, 0, device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s); "
                "use --nproc_per_node at most the number of GPUs"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns_group = not dist.is_initialized()
    if owns_group:
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            rank=rank,
            world_size=world,
            # rank 0 evaluates alone during --eval-every while the others wait at a barrier
            timeout=datetime.timedelta(minutes=PROCESS_GROUP_TIMEOUT_MINUTES),
            **({"device_id": device} if device.type == "cuda" else {}),
        )
    return DistContext(rank, world, local_rank, device, owns_group)


def cleanup_distributed(ctx: DistContext) -> None:
    """Leave the process group if ``ctx`` joined it (one set up by the caller stays)."""
    if ctx.owns_group and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def global_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` over all ranks (itself in a single process); no gradient flows."""
    if not is_distributed():
        return value.detach()
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def global_any(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is True on any rank (e.g. a stop request)."""
    if not is_distributed():
        return flag
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
