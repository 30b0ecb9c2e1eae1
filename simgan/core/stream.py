"""The streaming toolkit every dataset producer shares: one ordered worker pool, one regrouper
of ``(images, labels)`` pieces into writer chunks, and the index-range reader of block-seeded
renderers built from the two.

Why one of each: the procedural renderers (threads, since numpy releases the GIL) and the file
readers (spawned processes, since decoders hold the GIL) need the same guarantees, and the
dataset bytes depend on them:

- *order*: results are consumed in submission order, whatever finishes first, so the bytes do
  not depend on the number of workers;
- *bounded memory*: at most ``in_flight`` results wait to be consumed, and the regrouper holds
  at most one chunk plus one piece;
- *exact chunks*: the writer gets chunks of exactly ``chunk_size`` rows (the last one shorter),
  whatever the producers' piece sizes.

Processes are started with ``spawn``: a fork of a process holding torch or MLflow threads can
deadlock, and spawn behaves the same on every platform (functions and items must pickle).
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from itertools import islice
from typing import Literal, TypeVar

import numpy as np
import pandas as pd

T = TypeVar("T")
R = TypeVar("R")
Piece = tuple[np.ndarray, pd.DataFrame]
PoolKind = Literal["thread", "process"]


# ----------------------------------------------------------------------------- ordered pool


def _executor(kind: PoolKind, workers: int) -> Executor:
    if kind == "thread":
        return ThreadPoolExecutor(workers)
    if kind == "process":
        return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    raise ValueError(f"kind must be 'thread' or 'process', got {kind!r}")


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    kind: PoolKind = "thread",
    in_flight: int | None = None,
) -> Iterator[R]:
    """``fn(item)`` for every item, yielded in the order of ``items``.

    ``workers`` threads or spawned processes (0: call ``fn`` here, one item at a time);
    ``in_flight``: the most items submitted but not yet yielded (default ``2 * workers``), so
    a slow consumer bounds memory; ``items`` is pulled lazily. The first exception of ``fn``
    (in item order) propagates to the consumer; pending work is then cancelled.
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (got {workers})")
    if workers == 0:
        yield from map(fn, items)
        return
    limit = 2 * workers if in_flight is None else in_flight
    if limit < 1:
        raise ValueError(f"in_flight must be >= 1 (got {limit})")
    pool = _executor(kind, workers)
    try:
        todo = iter(items)
        pending = deque(pool.submit(fn, item) for item in islice(todo, limit))
        while pending:
            result = pending.popleft().result()
            for item in islice(todo, 1):  # refill with the next item, if any
                pending.append(pool.submit(fn, item))
            yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ----------------------------------------------------------------------------- regrouping


def _join(images: list[np.ndarray], labels: list[pd.DataFrame]) -> Piece:
    if len(images) == 1:
        return images[0], labels[0].reset_index(drop=True)
    return np.concatenate(images), pd.concat(labels, ignore_index=True)


def regroup(pieces: Iterable[Piece], chunk_size: int) -> Iterator[Piece]:
    """The rows of ``pieces`` (images (k, ...) with a k-row label table each, in order) as
    chunks of exactly ``chunk_size`` rows, the last one shorter; empty pieces are dropped.

    Every piece must have the label columns of the first one (a silent union would fill the
    writer's table with NaN). Chunk labels have a fresh 0-based index; chunk images are
    C-contiguous.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0 (got {chunk_size})")
    images: list[np.ndarray] = []
    labels: list[pd.DataFrame] = []
    columns: list[str] | None = None
    have = 0
    for img, lab in pieces:
        if img.shape[0] != len(lab):
            raise ValueError(f"a piece has {img.shape[0]} images but {len(lab)} label rows")
        if columns is None:
            columns = list(lab.columns)
        elif list(lab.columns) != columns:
            raise ValueError(f"label columns differ between pieces: {columns} vs "
                             f"{list(lab.columns)}")
        if img.shape[0] == 0:
            continue
        images.append(img)
        labels.append(lab)
        have += img.shape[0]
        if have < chunk_size:
            continue
        all_img, all_lab = _join(images, labels)
        full = have - have % chunk_size
        for lo in range(0, full, chunk_size):
            yield (np.ascontiguousarray(all_img[lo : lo + chunk_size]),
                   all_lab.iloc[lo : lo + chunk_size].reset_index(drop=True))
        images, labels, have = [all_img[full:]], [all_lab.iloc[full:]], have - full
        if have == 0:
            images, labels = [], []
    if have:
        img, lab = _join(images, labels)
        yield np.ascontiguousarray(img), lab


# ----------------------------------------------------------------------------- block ranges


def block_range(
    render_block: Callable[[int], Piece],
    block_size: int,
    start: int,
    n: int,
    chunk_size: int,
    threads: int = 0,
) -> Iterator[Piece]:
    """Rows ``start .. start+n`` of a stream made of fixed blocks (block ``b`` holds rows
    ``b*block_size ..`` and is ``render_block(b)``), in chunks of ``chunk_size`` rows.

    For renderers that seed each block on its own: a row's bytes then depend neither on the
    range nor on the chunking, and blocks can be rendered by ``threads`` threads (0: here).
    Peak memory: one chunk plus ``2 * threads`` (at least one) blocks.
    """
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0 (got n={n}, start={start})")
    if n == 0:
        return
    blocks = range(start // block_size, (start + n - 1) // block_size + 1)
    rendered = ordered_map(render_block, blocks, workers=threads, kind="thread")

    def clipped() -> Iterator[Piece]:
        for b, (images, labels) in zip(blocks, rendered, strict=True):
            lo = max(start - b * block_size, 0)
            hi = min(start + n - b * block_size, block_size)
            yield images[lo:hi], labels.iloc[lo:hi]

    yield from regroup(clipped(), chunk_size)
