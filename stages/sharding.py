"""Which engine writes a stage's datasets: this process (the default) or Dask shards.

``SIMGAN_SHARDS=dask`` makes ``render``/``real`` (file sources) and ``refine`` compute their
datasets as shards on a Dask cluster (``flows/sharded.py``; settings ``SIMGAN_DASK_*``). It is
an environment variable, not a params key, because where the work runs belongs to the
machine, not to the experiment: the bytes are the same either way, so it must change no DVC
params dependency, no params hash and no meta.json. Unset (or ``local``), nothing changes:
Prefect and Dask are not even imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from simgan.core.task import ShardPlan

T = TypeVar("T")
ENGINE_ENV = "SIMGAN_SHARDS"
ENGINES = ("local", "dask")


def engine() -> str:
    """The engine ``SIMGAN_SHARDS`` asks for (``local`` when unset); other values raise,
    naming the variable and the allowed ones."""
    value = os.environ.get(ENGINE_ENV, "").strip().lower() or "local"
    if value not in ENGINES:
        raise ValueError(f"{ENGINE_ENV}={value!r}: allowed values are {' | '.join(ENGINES)}")
    return value


def write_maybe_sharded(shards: ShardPlan | None, local: Callable[[], Iterator[Any]],
                        write: Callable[[Iterator[Any]], T], label: str) -> T:
    """``write(chunks)``, the chunks computed in shards on Dask when ``SIMGAN_SHARDS=dask``
    and the producer offers shards, else ``write(local())``."""
    if engine() == "local":
        return write(local())
    if shards is None:
        print(f"[simgan] {label}: this source has no shards (procedural sources render in "
              "this process); writing it here", file=sys.stderr)
        return write(local())
    from flows.sharded import DaskSettings, run_sharded

    return run_sharded(shards, write, DaskSettings.from_env(), label)
