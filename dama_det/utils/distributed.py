"""torchrun-compatible data parallelism, shared by pretraining and classification
(no-ops in a single process).

``torchrun --nproc_per_node G -m dama_det pretrain|classify ...`` (or any launcher
that sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``)
starts one process per GPU; :func:`init_distributed` joins the process group (NCCL
on CUDA, Gloo on CPU, unless a backend is named) and pins the local GPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.parallel import DataParallel, DistributedDataParallel


@dataclass
class DistInfo:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and prints."""
        return self.rank == 0


def init_distributed(device: torch.device, backend: str = "auto") -> tuple[DistInfo, torch.device]:
    """Join the process group when ``WORLD_SIZE > 1``.

    Args:
        device: the device picked for a single process; with CUDA and several
            processes each process gets ``cuda:LOCAL_RANK``.
        backend: ``"nccl"``, ``"gloo"`` or ``"auto"`` (NCCL on CUDA, else Gloo).

    Returns:
        ``(info, device)``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo(), device
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank), device


def barrier(info: DistInfo) -> None:
    """Wait for every process (no-op in a single process)."""
    if info.enabled:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over processes in place (no-op in a single process)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def cleanup(info: DistInfo) -> None:
    """Leave the process group if this module joined one."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``DistributedDataParallel`` / ``DataParallel`` wrapper (or the
    model itself)."""
    return model.module if isinstance(model, (DistributedDataParallel, DataParallel)) else model
