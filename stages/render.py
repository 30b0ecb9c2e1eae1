"""render: the synthetic dataset (train and held-out test splits) from ``gaze.render.source``:
the builtin renderer, UnityEyes renders or a folder of labelled crops."""

from __future__ import annotations

from stages.common import StageContext, main
from stages.datasets_io import write_domain


def run(ctx: StageContext) -> None:
    splits = ctx.task.synthetic_splits(ctx.params, root=ctx.root)
    write_domain(ctx, "render", "synthetic", ctx.params.render, splits, ctx.layout.synthetic)


if __name__ == "__main__":
    main("render", run)
