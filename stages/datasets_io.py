"""Writing the splits a task plans, with a progress bar and provenance in meta.json."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from simgan.core.dataset import Dataset, write_dataset
from simgan.core.task import SplitPlan
from stages.sharding import write_maybe_sharded

SPEED_KEYS = frozenset({"workers", "threads"})
"""Params keys that change how fast a dataset is written, never its bytes: left out of
meta.json, so changing them changes no DVC hash and reruns nothing downstream (they are
MLflow run params, logged with the whole section)."""


def params_hash(section: Any) -> str:
    """Short stable hash of a params section (pydantic model or plain data), for meta.json;
    keys in SPEED_KEYS, at any depth, are left out."""
    data = section.model_dump(mode="json") if hasattr(section, "model_dump") else section
    text = json.dumps(without_speed(data), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def without_speed(data: Any) -> Any:
    """``data`` without the keys in SPEED_KEYS, in nested dicts and lists."""
    if isinstance(data, dict):
        return {k: without_speed(v) for k, v in data.items() if k not in SPEED_KEYS}
    if isinstance(data, list | tuple):
        return [without_speed(v) for v in data]
    return data


def portable(value: Any, root: Path) -> Any:
    """``value`` with paths under ``root`` made relative (meta.json must not depend on where
    the project is checked out): strings equal to or starting with ``root/``, in nested data."""
    prefix = str(root).rstrip(os.sep) + os.sep
    if isinstance(value, str):
        if value == prefix[:-1]:
            return "."
        return value[len(prefix):] if value.startswith(prefix) else value
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable(v, root) for v in value]
    return value


def write_split(path: Path, plan: SplitPlan, meta: dict[str, Any], desc: str,
                root: Path | None = None) -> Dataset:
    """Stream a planned split into the dataset at ``path`` (atomic), showing progress.

    meta.json holds no SPEED_KEYS (a file source's ``workers``): the bytes of a dataset do not
    depend on how many processes wrote it, nor on whether a Dask cluster computed them
    (``SIMGAN_SHARDS``, stages/sharding.py).

    A plan whose ``n`` is an upper bound (a file source with ``skip_bad``) may write fewer
    rows; what is known only at the end (skip counts) goes into meta.json via ``late_meta``.
    """
    bar = tqdm(total=plan.n, desc=desc, unit="img", mininterval=1.0)

    def counted(chunks):
        for images, labels in chunks:
            bar.update(images.shape[0])
            yield images, labels

    def fix(data: dict[str, Any]) -> dict[str, Any]:
        data = without_speed(data)  # e.g. source_params.workers of a file source
        return data if root is None else portable(data, root)

    late = None if plan.late_meta is None else (lambda: fix(plan.late_meta()))

    def write(chunks) -> Dataset:
        return write_dataset(
            path, counted(chunks), plan.n, plan.image_shape, plan.dtype,
            fix({**plan.meta, **meta}), allow_fewer=plan.n_is_upper_bound, late_meta=late,
        )

    try:
        return write_maybe_sharded(plan.shards, plan.chunks, write, desc)
    finally:
        bar.close()


def split_meta(task: str, domain: str, split: str, section: Any) -> dict[str, Any]:
    """What the render and real stages add to a split's meta.json besides the plan's own."""
    return {"task": task, "domain": domain, "split": split, "params_hash": params_hash(section)}


def ingest_report(plan: SplitPlan) -> Any:
    """The :class:`simgan.core.ingest.common.IngestReport` of a file plan's latest run, or None."""
    return getattr(plan.late_meta, "report", None)


def describe_split(stage: str, split: str, ds: Dataset, report: Any) -> str:
    """One line for the log: how many images, from where, what was capped or skipped."""
    m = ds.meta
    text = f"[simgan] {stage} {split}: {len(ds)} images ({m.get('source', '?')}"
    if "source_path" in m:
        text += f" {m['source_path']}"
    text += ")"
    if m.get("rows_cap") is not None and m.get("rows_available", 0) > m["rows_cap"]:
        text += (f"; {m['rows_available']} available, a seeded subset of {m['rows_cap']} kept "
                 "(n_train / n_test)")
    if report is not None and report.skipped:
        text += (f"; SKIPPED {report.skipped} bad input(s) ({report.skipped_rows} rows), by field: "
                 f"{dict(sorted(report.by_field.items()))}; see meta.json skipped_bad_examples")
    if m.get("labelled") is False:
        text += "; no labels (fine for the refiner; no real-image error can be measured)"
    return text


def write_domain(ctx: Any, stage: str, domain: str, section: Any, splits: dict[str, SplitPlan],
                 path_of) -> None:
    """Body of the render and real stages: every split of one domain, tracked in MLflow.

    File sources also log their ingest counts (``<split>.skipped_bad`` ...) to MLflow; the same
    counts are in each split's meta.json, so a skipped file is never a silent drop.
    """
    import time

    from simgan.core import tracking
    from stages.common import tracked

    with tracked(ctx, stage, section.model_dump(mode="json")):
        total, t0 = 0, time.perf_counter()
        for split, plan in splits.items():
            meta = split_meta(ctx.task.name, domain, split, section)
            ds = write_split(path_of(split), plan, meta, f"{stage} {split}", root=ctx.root)
            total += len(ds)
            report = ingest_report(plan)
            if report is not None:
                tracking.log_metrics({f"{split}.{k}": v for k, v in report.metrics().items()})
                tracking.log_metrics({f"{split}.labelled": float(ds.meta.get("labelled", True))})
            print(describe_split(stage, split, ds, report), file=sys.stderr)
        seconds = time.perf_counter() - t0
        tracking.log_metrics(
            {"images": total, "seconds": seconds, "images_per_s": total / max(seconds, 1e-9)}
        )
