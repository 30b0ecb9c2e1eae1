"""train_estimator: the task's estimator on one source (synthetic | refined | real).
Its validation split comes from its own training source only."""

from __future__ import annotations

from simgan.data.dataset import open_dataset
from stages.artifacts import example_batch, save_torch
from stages.common import StageContext, main


def run(ctx: StageContext) -> None:
    from simgan import tracking

    section = ctx.params.estimator
    data = open_dataset(ctx.layout.train_set(ctx.source))
    with tracking.stage_run(
        ctx.root, ctx.task.name, "train_estimator", section.model_dump(mode="json"),
        train_source=ctx.source,
    ):
        model = ctx.task.train_estimator(
            ctx.params, data.images, data.labels,
            ctx.layout.estimator_checkpoints(ctx.source), tracking.log_metrics,
        )
        save_torch(
            ctx.layout.estimator_model(ctx.source),
            {"state_dict": model.state_dict(), "source": ctx.source, "n_train": len(data)},
        )
        tracking.log_torch_model(
            ctx.task.loggable_estimator(model), "estimator", example_batch(data.images)
        )


if __name__ == "__main__":
    main("train_estimator", run, with_source=True)
