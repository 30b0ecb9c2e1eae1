"""Writing the splits a task plans, with a progress bar and provenance in meta.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from simgan.data.dataset import Dataset, write_dataset
from simgan.tasks import SplitPlan


def params_hash(section: Any) -> str:
    """Short stable hash of a params section (pydantic model or plain data)."""
    data = section.model_dump(mode="json") if hasattr(section, "model_dump") else section
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def write_split(path: Path, plan: SplitPlan, meta: dict[str, Any], desc: str) -> Dataset:
    """Stream a planned split into the dataset at ``path`` (atomic), showing progress."""
    bar = tqdm(total=plan.n, desc=desc, unit="img", mininterval=1.0)

    def counted():
        for images, labels in plan.chunks():
            bar.update(images.shape[0])
            yield images, labels

    try:
        return write_dataset(
            path, counted(), plan.n, plan.image_shape, plan.dtype, {**plan.meta, **meta},
            allow_fewer=plan.n_is_upper_bound, late_meta=plan.late_meta,
        )
    finally:
        bar.close()


def write_domain(ctx: Any, stage: str, domain: str, section: Any, splits: dict[str, SplitPlan],
                 path_of) -> None:
    """Body of the render and real stages: every split of one domain, tracked in MLflow."""
    import time

    from simgan import tracking

    with tracking.stage_run(ctx.root, ctx.task.name, stage, section.model_dump(mode="json")):
        total, t0 = 0, time.perf_counter()
        for split, plan in splits.items():
            meta = {
                "task": ctx.task.name,
                "domain": domain,
                "split": split,
                "params_hash": params_hash(section),
            }
            total += len(write_split(path_of(split), plan, meta, f"{stage} {split}"))
        seconds = time.perf_counter() - t0
        tracking.log_metrics(
            {"images": total, "seconds": seconds, "images_per_s": total / max(seconds, 1e-9)}
        )
