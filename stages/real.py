"""real: the real domain's train (refiner input, unlabelled there) and test splits from
``gaze.real.source``: the stand-in appearance, MPIIGaze or a folder (labelled or not)."""

from __future__ import annotations

from stages.common import StageContext, main
from stages.datasets_io import write_domain


def run(ctx: StageContext) -> None:
    splits = ctx.task.real_splits(ctx.params, root=ctx.root)
    write_domain(ctx, "real", "real", ctx.params.real, splits, ctx.layout.real)


if __name__ == "__main__":
    main("real", run)
