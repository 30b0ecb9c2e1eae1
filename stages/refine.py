"""refine: the trained refiner over the whole synthetic train set; labels carried over as is.
With SIMGAN_SHARDS=dask the images are refined in row ranges on a Dask cluster (same bytes)."""

from __future__ import annotations

import time

from tqdm import tqdm

from simgan.core.dataset import IMAGES, open_dataset, write_dataset
from stages.artifacts import load_torch
from stages.common import StageContext, log_datasets, main, tracked
from stages.datasets_io import params_hash
from stages.sharding import write_maybe_sharded


def run(ctx: StageContext) -> None:
    from simgan.core import tracking
    from simgan.core.images import pick_device
    from simgan.core.refiner.apply import RefineShards, refine_images
    from simgan.core.refiner.net import load_refiner

    section = ctx.params.refine
    source = open_dataset(ctx.layout.synthetic("train"))
    device = pick_device(section.device)
    saved = load_torch(ctx.layout.refiner_model)
    refiner = load_refiner(saved, device)
    with tracked(ctx, "refine", section.model_dump(mode="json")):
        log_datasets(ctx, {"synthetic/train": source.path}, "input")
        t0 = time.perf_counter()
        bar = tqdm(total=len(source), desc="refine", unit="img", mininterval=1.0)

        def chunks():
            done = 0
            for refined in refine_images(refiner, source.images, section.batch_size, device):
                k = refined.shape[0]
                yield refined, source.labels.iloc[done : done + k]
                done += k

        def counted(parts):
            for refined, labels in parts:
                bar.update(refined.shape[0])
                yield refined, labels

        meta = {
            **source.meta,
            "domain": "refined",
            "refined_from": str(source.path.relative_to(ctx.root)),
            "params_hash": params_hash(section),
        }
        for key in ("count", "shape", "dtype"):
            meta.pop(key, None)
        shards = RefineShards(saved, source.path / IMAGES, source.labels, section.batch_size,
                              section.device)
        write_maybe_sharded(shards, chunks, lambda parts: write_dataset(
            ctx.layout.refined(), counted(parts), len(source), source.images.shape[1:],
            source.images.dtype, meta,
        ), "refine")
        bar.close()
        seconds = time.perf_counter() - t0
        tracking.log_metrics({"images": len(source), "seconds": seconds,
                              "images_per_s": len(source) / max(seconds, 1e-9)})


if __name__ == "__main__":
    main("refine", run)
