"""PyTorch distributed plumbing for the trainer (torchrun / torch.distributed.run).

Under ``torchrun`` the environment carries ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
:func:`init_distributed` reads them, picks NCCL on CUDA and gloo on CPU, and binds each process
to its local GPU. Multi-node runs need nothing here: torchrun's rendezvous flags
(``--nnodes``, ``--node_rank``, ``--rdzv_endpoint`` ...) fill in the same variables.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator, List, Optional

import torch
import torch.distributed as dist
from torch.utils.data import Dataset, DistributedSampler

__all__ = ['DistInfo', 'init_distributed', 'cleanup_distributed', 'barrier', 'all_gather_object',
           'broadcast_object', 'all_reduce_mean', 'ResumableSampler']


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, its ``local_rank`` and device."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device('cpu')

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, '') else int(value)


def resolve_device(name: Optional[str] = None) -> torch.device:
    """``name`` as a :class:`torch.device`; by default CUDA when available, else the CPU."""
    return torch.device(name or ('cuda' if torch.cuda.is_available() else 'cpu'))


def init_distributed(device: Optional[str] = None, timeout_s: float = 1800) -> DistInfo:
    """Initialise the default process group when launched by torchrun (``WORLD_SIZE`` > 1).

    ``device``: ``'cuda'``, ``'cpu'`` or ``None`` (CUDA when available). The backend is NCCL for
    CUDA and gloo for CPU. Idempotent: an existing process group is reused."""
    world_size = _env_int('WORLD_SIZE', 1)
    rank, local_rank = _env_int('RANK', 0), _env_int('LOCAL_RANK', 0)
    use_cuda = torch.cuda.is_available() if device is None else torch.device(device).type == 'cuda'
    if use_cuda and not torch.cuda.is_available():
        raise RuntimeError('device "cuda" was requested but CUDA is not available; use device="cpu"')
    if use_cuda:
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dev = torch.device('cuda', torch.cuda.current_device())
    else:
        dev = torch.device('cpu')
    if world_size > 1 and not (dist.is_available() and dist.is_initialized()):
        backend = 'nccl' if use_cuda else 'gloo'
        kwargs = {'device_id': dev} if use_cuda else {}
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s), **kwargs)
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def cleanup_distributed() -> None:
    """Destroy the default process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """``dist.barrier()`` when distributed, else nothing."""
    if _active():
        dist.barrier()


def all_gather_object(obj: Any) -> List[Any]:
    """Every rank's ``obj`` (a list of one when not distributed)."""
    if not _active():
        return [obj]
    out: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of a tensor over ranks (a detached copy; the input is left alone)."""
    value = value.detach().clone()
    if _active():
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value


class ResumableSampler(DistributedSampler):
    """torch's ``DistributedSampler`` (shuffle seeded by ``seed + epoch``, shard per rank; also
    fine with one process) that can start part-way through an epoch.

    ``set_epoch(epoch, start=k)`` skips the first ``k`` samples of this rank's shard, so a run
    resumed mid-epoch sees exactly the samples the interrupted run had not seen yet."""

    def __init__(self, dataset: Dataset, rank: int = 0, world_size: int = 1, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False) -> None:
        super().__init__(dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                         drop_last=drop_last)
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:  # type: ignore[override]
        super().set_epoch(epoch)
        if not 0 <= start <= self.num_samples:
            raise ValueError(f'start {start} is outside this shard of {self.num_samples} samples')
        self.start = start

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start
