"""Where this process stands in a ``torchrun`` job, read from the environment torchrun sets
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``). No torch import: stages ask
"am I rank 0?" before any training code loads (and light stages never load torch at all).
Without torchrun: world size 1, rank 0. The process group itself: simgan.core.distributed.
"""

from __future__ import annotations

import os

from simgan.core.errors import UserError


class DistributedError(UserError):
    """The torchrun environment or the params do not fit data-parallel training."""


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise DistributedError(f"{name}={raw!r} is not an integer (torchrun sets it)") from None


def env_ranks() -> tuple[int, int, int]:
    """(world_size, rank, local_rank) from torchrun's environment; (1, 0, 0) without it."""
    world = env_int("WORLD_SIZE", 1)
    rank, local = env_int("RANK", 0), env_int("LOCAL_RANK", 0)
    if world < 1 or not 0 <= rank < world or local < 0:
        raise DistributedError(f"inconsistent torchrun environment: WORLD_SIZE={world}, "
                               f"RANK={rank}, LOCAL_RANK={local}")
    return world, rank, local


def is_main_process() -> bool:
    """Rank 0 (or no torchrun): the one process that writes outputs, checkpoints and MLflow."""
    return env_ranks()[1] == 0


def local_world_size() -> int:
    """How many ranks share this machine (for splitting its cores between them)."""
    return max(1, env_int("LOCAL_WORLD_SIZE", 1))
