"""What a dataset producer offers to be computed in shards by an engine it does not know.

Why this shape: a Dask (or Ray) cluster, driven by a Prefect flow, should spread decoding and
refinement over machines while the dataset stays one memory-mapped file whose bytes do not
depend on how it was cut. So a producer splits its work along one axis (input files for
ingestion, image rows for refinement) into independent ranges, and keeps everything that
depends on *order* (bad-input counting, row numbering, regrouping into writer chunks) on the
writer's side, where :meth:`ShardPlan.chunks` replays the single-process code path over the
shard results in range order. The engine (``flows/sharded.py``) only runs :meth:`ShardPlan.work`
somewhere and hands the results back in order; nothing here knows about Dask or Prefect.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd

Chunks = Iterator[tuple[np.ndarray, pd.DataFrame]]

MAX_SHARD_UNITS = 4096
"""Largest default shard: bounds a worker's result in memory and the work a retry repeats."""
SHARDS_PER_WORKER = 4
"""Default shards per worker: lets a fast worker take over a slow or lost worker's share."""


class ShardPlan(ABC):
    """Work along an axis of ``size`` units that can be computed as ranges ``[lo, hi)``.

    ``work(lo, hi)`` is built where the plan lives (the writer's process) and runs anywhere: it
    must pickle small (it carries the range's inputs by name, never the whole plan), and it
    reads its inputs from paths the workers can see. ``chunks(results)`` turns the results of
    consecutive ranges covering ``[0, size)`` into exactly the chunks the plan's single-process
    run yields, so the dataset written from them has the same bytes.
    """

    #: units along the sharded axis (files, image rows)
    size: int
    #: range boundaries are multiples of this (a refiner batch: batches stay whole)
    align: int = 1

    @abstractmethod
    def work(self, lo: int, hi: int) -> Callable[[], Any]:
        """A picklable zero-argument callable computing the range ``[lo, hi)``."""

    @abstractmethod
    def chunks(self, results: Iterable[Any]) -> Chunks:
        """The plan's writer chunks, from the range results in range order."""


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
