"""What of the S+U state belongs to one rank under DDP, and how a checkpoint carries it.

Shared by all ranks (identical on each, saved once): R, D, their optimisers, the mini-batch
index stream (every rank draws the same global batch, then trains on its share), the step
and the records. Per rank: the history buffer (each rank keeps ``history_size / world_size``
of its own refined images and samples D's history half-batch from them; together they hold
``history_size`` images, as the single-process buffer does) and the random streams of the
refiner's noise inputs and of the buffer.

Rank 0 gathers the per-rank parts into the checkpoint (``"ranks"``: one entry per rank), so a
restart with the same number of processes continues every rank exactly. With another number
of processes the shared state still continues exactly; the saved buffers are pooled and dealt
out again over the new ranks and the per-rank streams are reseeded from (seed, rank, step),
with a WARNING: the run continues correctly but is not bit-identical to an uninterrupted one.
A single-process checkpoint has no ``"ranks"`` entry (its layout is unchanged) and counts as
one rank.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

from simgan.core.distributed import Ranks, gather_to_main, rank_seed, share

log = logging.getLogger(__name__)

RANKS_KEY = "ranks"


def local_state(buffer: Any, rngs: Any) -> dict[str, Any]:
    return {"buffer": buffer.state_dict(), "rngs": rngs.state_dict()}


def with_rank_states(state: dict[str, Any], local: Callable[[], dict[str, Any]],
                     ranks: Ranks) -> dict[str, Any] | None:
    """The checkpoint to write: ``state`` plus every rank's ``local()`` part on rank 0 (None
    on the other ranks, which write nothing); ``state`` unchanged for a single process."""
    if not ranks.active:
        return state
    gathered = gather_to_main(local(), ranks)
    if gathered is None:
        return None
    return {**state, RANKS_KEY: gathered}


def for_this_rank(saved: dict[str, Any], ranks: Ranks, seed: int, history_size: int,
                  device: torch.device) -> dict[str, Any]:
    """``saved`` with its ``buffer`` and ``rngs`` replaced by this rank's (see module doc)."""
    saved = dict(saved)
    parts = saved.pop(RANKS_KEY, None) or [{"buffer": saved["buffer"], "rngs": saved["rngs"]}]
    if len(parts) == ranks.world_size:
        saved.update(parts[ranks.rank])
        return saved
    step = int(saved["step"])
    if ranks.is_main:
        log.warning("the checkpoint was written by %d process(es), this run has %d: the nets, "
                    "optimisers, batch stream and records continue exactly; the history "
                    "buffers are pooled and dealt out again and the per-rank noise streams "
                    "are reseeded (not bit-identical to an uninterrupted run)",
                    len(parts), ranks.world_size)
    pooled = torch.cat([p["buffer"]["data"] for p in parts])
    mine = pooled[ranks.rank :: ranks.world_size][: share(history_size, ranks)]
    torch_gen = torch.Generator().manual_seed(rank_seed(seed, ranks.rank, step))
    buffer_gen = torch.Generator().manual_seed(rank_seed(seed + 3, ranks.rank, step))
    cuda = None
    if device.type == "cuda":
        torch.cuda.manual_seed(rank_seed(seed, ranks.rank, step))
        cuda = torch.cuda.get_rng_state_all()
    saved["buffer"] = {"data": mine, "count": int(mine.shape[0])}
    saved["rngs"] = {"torch": torch_gen.get_state(), "cuda": cuda,
                     "numpy": parts[0]["rngs"]["numpy"], "buffer": buffer_gen.get_state()}
    return saved
