"""The streaming driver shared by all readers: decode work units (files) in a process pool,
in order, and regroup the results into ``(images, labels)`` chunks for
:func:`simgan.core.dataset.write_dataset`.

Why this shape:
- *Streaming*: at most ``workers * IN_FLIGHT`` batches of decoded files plus one output chunk
  are alive at any time, so 1.2M UnityEyes files take the memory of a few thousand.
- *Deterministic*: results are consumed in submission order, so the dataset bytes do not depend
  on the number of workers (0 = decode in this process, for tests and debugging).
- *Bad inputs never vanish*: a unit that fails raises :class:`IngestError` (file, field,
  problem); with ``skip_bad`` it is counted in an :class:`IngestReport` instead, whose
  deterministic part goes to meta.json.

The pool and the regrouping are :mod:`simgan.core.stream`'s (spawned processes: see there).
A reader supplies a *unit sequence* (anything with ``len`` and slicing; units must pickle and
may carry ``samples``, the rows they would give) and a module-level
``decode(unit, options, skip_bad) -> (images, label columns, bad inputs)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from simgan.core.ingest.common import BadInput, IngestError, IngestReport
from simgan.core.stream import Piece, ordered_map, regroup
from simgan.core.task import ShardPlan, SplitPlan

Decoded = tuple[np.ndarray, dict[str, np.ndarray], list[BadInput]]
DecodeFn = Callable[[Any, Any, bool], Decoded]

IN_FLIGHT = 3
"""Batches queued per worker: enough to keep workers busy while the consumer writes."""
MAX_TASK_UNITS = 64
"""Units per pool task at most: amortises inter-process overhead on small files."""


@dataclass
class BatchResult:
    """What a worker sends back for a batch of units: per unit either its BadInput (the unit
    failed) or (rows it gave, problems inside it); the rows of all units concatenated once,
    so a batch pickles as a few arrays rather than one small array per label per file."""

    items: list[BadInput | tuple[int, list[BadInput]]]
    images: np.ndarray | None
    cols: dict[str, np.ndarray] | None


def run_batch(decode: DecodeFn, units: Sequence[Any], options: Any, skip_bad: bool
              ) -> BatchResult:
    """Decode units one by one (in a worker); a unit's IngestError becomes a BadInput.

    The error is returned, not raised, so the consumer decides (raise or count) in order.
    Any other exception is a bug and propagates with its traceback.
    """
    items: list[BadInput | tuple[int, list[BadInput]]] = []
    images, cols = [], []
    for unit in units:
        try:
            img, lab, bad = decode(unit, options, skip_bad)
        except IngestError as exc:
            items.append(BadInput.from_error(exc, int(getattr(unit, "samples", 1))))
            continue
        items.append((int(img.shape[0]), bad))
        if img.shape[0]:
            images.append(img)
            cols.append(lab)
    if not images:
        return BatchResult(items, None, None)
    return BatchResult(items, np.concatenate(images), _concat(cols))


def _task_size(n_units: int, workers: int) -> int:
    if workers <= 0:
        return MAX_TASK_UNITS
    return int(np.clip(-(-n_units // (workers * 8)), 1, MAX_TASK_UNITS))


def _batches(units: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for lo in range(0, len(units), size):
        yield units[lo : lo + size]


def _concat(cols: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    keys = list(cols[0])
    for c in cols[1:]:
        if list(c) != keys:
            raise RuntimeError(f"label columns differ between units: {keys} vs {list(c)}")
    return {k: np.concatenate([c[k] for c in cols]) for k in keys}


@dataclass(frozen=True)
class _Decoding:
    """How a run decodes: the reader's function and options, the pool and its task size."""

    decode: DecodeFn
    options: Any
    out_shape: tuple[int, int]
    workers: int
    skip_bad: bool
    task_size: int | None

    def batches(self, units: Sequence[Any]) -> Iterator[BatchResult]:
        """Batch results in unit order (decoded here with workers=0, else in processes)."""
        size = self.task_size or _task_size(len(units), self.workers)
        work = partial(run_batch, self.decode, options=self.options, skip_bad=self.skip_bad)
        return ordered_map(work, _batches(units, size), workers=self.workers, kind="process",
                           in_flight=max(self.workers, 1) * IN_FLIGHT)


def batch_pieces(batches: Iterable[BatchResult], report: IngestReport, *, skip_bad: bool,
                 out_shape: tuple[int, int]) -> Iterator[Piece]:
    """Count every unit of ``batches`` (in order) in ``report``, raising the first bad one
    without ``skip_bad``, and yield the rows of each batch as a piece."""
    for batch in batches:
        for item in batch.items:
            report.units += 1
            if isinstance(item, BadInput):
                if not skip_bad:
                    raise item.error()
                report.skip(item)
                continue
            for b in item[1]:
                report.skip(b)
        if batch.images is None:
            continue
        if batch.images.shape[1:] != tuple(out_shape) or batch.images.dtype != np.uint8:
            raise RuntimeError(f"decoder gave {batch.images.dtype} {batch.images.shape[1:]}, "
                               f"expected uint8 {tuple(out_shape)}")
        yield batch.images, pd.DataFrame(batch.cols)


def stream_chunks(
    units: Sequence[Any],
    decode: DecodeFn,
    options: Any,
    *,
    out_shape: tuple[int, int],
    workers: int,
    chunk_size: int,
    skip_bad: bool,
    report: IngestReport,
    known_bad: Sequence[BadInput] = (),
    task_size: int | None = None,
    number_rows: str | None = None,
    source: str = "input",
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Decode ``units`` and yield ``(images (k, H, W) uint8, labels)`` chunks of ``chunk_size``
    rows (the last one shorter), in unit order.

    ``known_bad``: problems found while indexing (e.g. a labels.csv row naming no file),
    counted first. Without ``skip_bad`` the first bad input raises its IngestError.
    ``task_size``: units per pool task (default: sized from the units and workers).
    ``number_rows``: a label column to insert first, numbering the rows written 0, 1, ...
    (for sources whose rows have no id of their own).
    A split that was offered inputs but kept no row (all bad, with ``skip_bad``) raises an
    IngestError naming ``source``: an empty dataset is never a success.
    """
    decoding = _Decoding(decode, options, out_shape, workers, skip_bad, task_size)
    return chunks_from_batches(
        decoding.batches(units), out_shape=out_shape, chunk_size=chunk_size, skip_bad=skip_bad,
        report=report, known_bad=known_bad, number_rows=number_rows, source=source)


def chunks_from_batches(
    batches: Iterable[BatchResult],
    *,
    out_shape: tuple[int, int],
    chunk_size: int,
    skip_bad: bool,
    report: IngestReport,
    known_bad: Sequence[BadInput] = (),
    number_rows: str | None = None,
    source: str = "input",
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """The chunks of :func:`stream_chunks` from batch results in unit order, wherever they
    were decoded (this process's pool, or shards on a cluster: :class:`IngestShards`): the
    one place that counts, numbers and regroups, so both give the same bytes."""
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0 (got {chunk_size})")
    t0 = time.perf_counter()
    try:
        for bad in known_bad:
            if not skip_bad:
                raise bad.error()
            report.skip(bad)
        pieces = batch_pieces(batches, report, skip_bad=skip_bad, out_shape=out_shape)
        for images, labels in regroup(pieces, chunk_size):
            k = images.shape[0]
            if number_rows is not None:
                labels.insert(0, number_rows, np.arange(report.rows, report.rows + k,
                                                        dtype=np.int64))
            report.rows += k
            yield images, labels
        if report.rows == 0 and (report.units or report.skipped):
            raise nothing_usable(source, report)
    finally:
        report.seconds = time.perf_counter() - t0


def nothing_usable(source: str, report: IngestReport) -> IngestError:
    """The error of a split whose every input was bad (skipped with ``skip_bad``)."""
    first = f"; first: {report.examples[0]}" if report.examples else ""
    return IngestError(source, "rows", (
        f"no usable row: {report.skipped} bad input(s) skipped, none kept (by field "
        f"{dict(sorted(report.by_field.items()))}{first}). Fix or remove the bad inputs: "
        "skip_bad drops some bad inputs, it cannot make a dataset of none"))


class IngestShards(ShardPlan):
    """An ingest plan as ranges of its units, for a cluster (:mod:`simgan.core.shards`).

    A range's work is :func:`run_batch` over its units (the units travel by value, the files
    they name are read where the work runs); :meth:`chunks` feeds the results, in order,
    through :func:`chunks_from_batches`, as the single-process run does, and records the
    run's report in the plan's :class:`IngestRun`, so meta.json is the same too."""

    def __init__(self, units: Sequence[Any], decode: DecodeFn, options: Any, run: IngestRun,
                 **chunking: Any) -> None:
        self.units, self.decode, self.options, self.run = units, decode, options, run
        self.chunking = chunking  # out_shape, chunk_size, skip_bad, known_bad, number_rows, source
        self.size = len(units)

    def work(self, lo: int, hi: int) -> Callable[[], BatchResult]:
        return partial(run_batch, self.decode, list(self.units[lo:hi]), self.options,
                       self.chunking["skip_bad"])

    def chunks(self, results: Iterable[BatchResult]) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        self.run.report = IngestReport()
        return chunks_from_batches(results, report=self.run.report, **self.chunking)


class IngestRun:
    """The ``late_meta`` of an ingest plan: holds the report of the latest ``chunks()`` run
    (``.report``, with timings for MLflow) and returns its deterministic counts when called."""

    def __init__(self) -> None:
        self.report = IngestReport()

    def __call__(self) -> dict[str, Any]:
        return self.report.meta()


def ingest_plan(
    units: Sequence[Any],
    decode: DecodeFn,
    options: Any,
    *,
    n_upper: int,
    out_shape: tuple[int, int],
    workers: int,
    chunk_size: int,
    skip_bad: bool,
    meta: dict[str, Any],
    known_bad: Sequence[BadInput] = (),
    task_size: int | None = None,
    number_rows: str | None = None,
    source: str | None = None,
) -> SplitPlan:
    """A :class:`SplitPlan` whose chunks come from :func:`stream_chunks`.

    ``n_upper`` is the row count if nothing is skipped; with ``skip_bad`` the plan says it is
    an upper bound. Each ``chunks()`` call is a fresh run with a fresh report;
    ``plan.late_meta`` is an :class:`IngestRun` holding the latest one. ``task_size`` and
    ``number_rows``: see :func:`stream_chunks`; ``source`` (default: meta's ``source_path``)
    names the input in the error of a split without any usable row.
    """
    run = IngestRun()

    def chunks() -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        run.report = IngestReport()
        return stream_chunks(
            units, decode, options, out_shape=out_shape, workers=workers,
            chunk_size=chunk_size, skip_bad=skip_bad, report=run.report, known_bad=known_bad,
            task_size=task_size, number_rows=number_rows,
            source=source or str(meta.get("source_path", "input")),
        )

    shards = IngestShards(
        units, decode, options, run, out_shape=out_shape, chunk_size=chunk_size,
        skip_bad=skip_bad, known_bad=known_bad, number_rows=number_rows,
        source=source or str(meta.get("source_path", "input")),
    )
    return SplitPlan(
        n=n_upper,
        image_shape=(int(out_shape[0]), int(out_shape[1])),
        dtype="uint8",
        chunks=chunks,
        meta=meta,
        n_is_upper_bound=skip_bad,
        late_meta=run,
        shards=shards,
    )
