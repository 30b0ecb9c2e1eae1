"""Data-parallel training under ``torchrun`` (PyTorch DDP), and nothing at all without it.

``torchrun`` starts one process per rank and sets ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``;
:func:`setup` reads them, joins the process group (gloo on CPU, nccl on CUDA, one GPU per
local rank) and returns the :class:`Ranks` the training loops consult. With ``WORLD_SIZE``
unset (or 1) it only picks the device: no process group, no wrapper, no extra collective,
so a single-process run computes exactly what it computed before (same bytes).

Conventions shared by every loop (docs/scale.md, "Data-parallel training"):

* ``batch_size`` is the GLOBAL batch. Every rank draws the same global batch of indices from
  the same seeded stream and trains on its contiguous share (:func:`shard`); DDP averages the
  gradients, so a step equals the single-process step on the whole batch (up to float
  summation order). Learning rates are therefore not rescaled.
* Only rank 0 writes: checkpoints, MLflow, outputs. Resume state is read by rank 0 and
  broadcast (:func:`from_main`), so ranks on other nodes need no shared file system.
* A rank that dies ends the job: ``torchrun`` stops the other workers of a failed group, gloo
  collectives fail at once when a peer's socket closes, and every collective is bounded by
  ``SIMGAN_DIST_TIMEOUT`` seconds (default 600) for a rank that hangs instead of dying.
"""

from __future__ import annotations

import atexit
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from simgan.core.images import pick_device
from simgan.core.launch import (  # re-exported: one import for the training loops
    DistributedError,
    env_int,
    env_ranks,
    is_main_process,
    local_world_size,
)

T = TypeVar("T")

#: seconds any collective may wait for the other ranks before the job fails
TIMEOUT_ENV = "SIMGAN_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 600


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job: ``world_size`` 1 means a plain single-process run."""

    device: torch.device
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def active(self) -> bool:
        """True under torchrun with more than one rank: the loops then shard and reduce."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, outputs and MLflow records; the others only train."""
        return self.rank == 0


def timeout() -> timedelta:
    """The bound on every collective (``SIMGAN_DIST_TIMEOUT`` seconds)."""
    seconds = env_int(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)
    if not 1 <= seconds <= 86_400:
        raise DistributedError(f"{TIMEOUT_ENV}={seconds}: allowed 1..86400 seconds")
    return timedelta(seconds=seconds)


def setup(device_name: str = "auto") -> Ranks:
    """The device and, under torchrun, the joined process group (once per process).

    ``device_name`` is the params' ``device`` (auto | cpu | cuda): with several ranks on
    CUDA each takes the GPU of its ``LOCAL_RANK`` and the backend is nccl; on CPU, gloo."""
    world, rank, local = env_ranks()
    device = pick_device(device_name)
    if world == 1:
        return Ranks(device)
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise DistributedError(f"LOCAL_RANK={local} but this node has "
                                   f"{torch.cuda.device_count()} GPUs: start at most that many "
                                   "processes per node (torchrun --nproc-per-node)")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise DistributedError(f"device {device.type!r}: data-parallel training runs on cpu "
                               "(gloo) or cuda (nccl)")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist = torch.distributed
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timeout())
        atexit.register(_teardown)
    elif dist.get_backend() != backend:
        raise DistributedError(f"the process group uses {dist.get_backend()}, this training "
                               f"needs {backend}: use one device for every stage of a process")
    return Ranks(device, world, rank, local)


def _teardown() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def wrap(module: nn.Module, ranks: Ranks) -> nn.Module:
    """``module`` itself for one rank; DDP around it for several (gradients averaged over
    ranks during backward, weights broadcast from rank 0 once). Modules that hold the
    weights (optimisers, checkpoints, selection) keep using the unwrapped module."""
    if not ranks.active:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [ranks.device.index] if ranks.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def check_divisible(key: str, batch_size: int, ranks: Ranks) -> None:
    """Equal shares keep a DDP step equal to the single-process step on the global batch."""
    if batch_size % ranks.world_size:
        raise DistributedError(f"{key}={batch_size} is the global batch; it must be a multiple "
                               f"of the number of processes ({ranks.world_size})")


def shard(rows: np.ndarray, ranks: Ranks) -> np.ndarray:
    """This rank's contiguous share of a global batch (sorted rows stay sorted)."""
    if not ranks.active:
        return rows
    return np.array_split(rows, ranks.world_size)[ranks.rank]


def rank_seed(seed: int, rank: int, counter: int = 0) -> int:
    """A 63-bit seed for one rank's own random stream (noise inputs, history buffer,
    augmentation), independent across (seed, rank, counter); ``counter`` is e.g. the epoch."""
    state = np.random.SeedSequence([seed, rank, counter]).generate_state(2, np.uint64)
    return int(state[0] >> 1)


def share(total: int, ranks: Ranks) -> int:
    """This rank's part of a capacity split over the ranks (rounded up, at least 1)."""
    return max(1, -(-total // ranks.world_size))


def all_sum(values: list[float], ranks: Ranks) -> list[float]:
    """Element-wise sum over ranks (float64, one collective); ``values`` as is for one rank."""
    if not ranks.active:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_comm_device(ranks))
    torch.distributed.all_reduce(t)
    return [float(v) for v in t.cpu()]


def average(metrics: dict[str, float], ranks: Ranks) -> dict[str, float]:
    """The mean of each metric over ranks (every rank must log the same keys)."""
    if not ranks.active:
        return metrics
    keys = sorted(metrics)
    sums = all_sum([float(metrics[k]) for k in keys], ranks)
    return {k: s / ranks.world_size for k, s in zip(keys, sums, strict=True)}


def from_main(load: Callable[[], T], ranks: Ranks) -> T:
    """``load()`` run by rank 0 alone and its result sent to every rank: one reader of a
    checkpoint (which may also move damaged files aside), no shared file system needed."""
    if not ranks.active:
        return load()
    box: list[Any] = [load() if ranks.is_main else None]
    torch.distributed.broadcast_object_list(box, src=0, device=_comm_device(ranks))
    return box[0]


def gather_to_main(obj: T, ranks: Ranks) -> list[T] | None:
    """Every rank's ``obj``, in rank order, on rank 0 (None on the others); [obj] alone."""
    if not ranks.active:
        return [obj]
    out: list[Any] | None = [None] * ranks.world_size if ranks.is_main else None
    torch.distributed.gather_object(obj, out, dst=0)
    return out


def _comm_device(ranks: Ranks) -> torch.device:
    """nccl moves tensors (also pickled objects) through the GPU; gloo through the CPU."""
    return ranks.device if ranks.device.type == "cuda" else torch.device("cpu")


__all__ = ["DistributedError", "Ranks", "all_sum", "average", "check_divisible", "env_ranks",
           "from_main", "gather_to_main", "is_main_process", "local_world_size", "rank_seed",
           "setup",
           "shard", "share", "timeout", "wrap"]
