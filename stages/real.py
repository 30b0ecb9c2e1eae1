"""real: the real domain's train (refiner input, unlabelled there) and test splits."""

from __future__ import annotations

from stages.common import StageContext, main
from stages.datasets_io import write_domain


def run(ctx: StageContext) -> None:
    splits = ctx.task.real_splits(ctx.params)
    write_domain(ctx, "real", "real", ctx.params.real, splits, ctx.layout.real)


if __name__ == "__main__":
    main("real", run)
