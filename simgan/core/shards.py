"""How an engine cuts a :class:`simgan.core.task.ShardPlan` into ranges.

A producer offers its work as a ``ShardPlan`` (defined next to ``SplitPlan`` in
:mod:`simgan.core.task`, which every stage already imports). Why that shape: a Dask (or Ray)
cluster, driven by a Prefect flow, should spread decoding and refinement over machines while
the dataset stays one memory-mapped file whose bytes do not depend on how it was cut. So a
producer splits its work along one axis (input files for ingestion, image rows for
refinement) into independent ranges, and keeps everything that depends on *order* (bad-input
counting, row numbering, regrouping into writer chunks) on the writer's side, where
``ShardPlan.chunks`` replays the single-process code path over the shard results in range
order. The engine (``flows/sharded.py``) only runs ``ShardPlan.work`` somewhere and hands the
results back in order; nothing here knows about Dask or Prefect.
"""

from __future__ import annotations

import numpy as np

MAX_SHARD_UNITS = 4096
"""Largest default shard: bounds a worker's result in memory and the work a retry repeats."""
SHARDS_PER_WORKER = 4
"""Default shards per worker: lets a fast worker take over a slow or lost worker's share."""


def shard_ranges(size: int, shard_size: int, align: int = 1) -> list[tuple[int, int]]:
    """``[lo, hi)`` ranges covering ``[0, size)`` in order, each ``shard_size`` units rounded
    up to a multiple of ``align`` (the last one shorter). Empty for ``size == 0``."""
    if size < 0 or shard_size < 1 or align < 1:
        raise ValueError(f"need size >= 0, shard_size >= 1, align >= 1 (got {size}, "
                         f"{shard_size}, {align})")
    step = -(-shard_size // align) * align
    return [(lo, min(lo + step, size)) for lo in range(0, size, step)]


def default_shard_size(size: int, workers: int) -> int:
    """``SHARDS_PER_WORKER`` shards per worker, at most ``MAX_SHARD_UNITS`` units each."""
    per = -(-size // max(1, workers * SHARDS_PER_WORKER))
    return int(np.clip(per, 1, MAX_SHARD_UNITS))
