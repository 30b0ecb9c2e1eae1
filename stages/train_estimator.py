"""train_estimator: the task's estimator on one source (synthetic | refined | real).
Its validation split comes from its own training source only.

A real source without labels (an unlabelled folder: enough for the refiner) cannot train the
'real' reference: the stage then says so and writes a model file that records it
(``state_dict: None``, ``labels_available: False``), so DVC's outputs exist and evaluate and
compare report the reference as unavailable instead of failing.
"""

from __future__ import annotations

import sys

from simgan.core.dataset import open_dataset
from simgan.core.launch import is_main_process
from stages.artifacts import example_batch, save_torch
from stages.common import StageContext, log_datasets, log_model, main, tracked


def run(ctx: StageContext) -> None:
    from simgan.core import tracking

    section = ctx.params.estimator
    data = open_dataset(ctx.layout.train_set(ctx.source))
    with tracked(ctx, "train_estimator", section.model_dump(mode="json")):
        log_datasets(ctx, {f"{ctx.source}/train": data.path}, "training")
        if not ctx.task.has_labels(data.labels):
            if is_main_process():
                no_labels(ctx, data)
            return
        model = ctx.task.train_estimator(
            ctx.params, data.images, data.labels,
            ctx.layout.estimator_checkpoints(ctx.source), tracking.log_metrics,
        )
        if not is_main_process():  # DDP: rank 0 writes the outputs
            return
        save_torch(
            ctx.layout.estimator_model(ctx.source),
            {"state_dict": model.state_dict(), "source": ctx.source, "n_train": len(data)},
        )
        log_model(ctx, "estimator", ctx.layout.estimator_model(ctx.source),
                  tracking.registered_estimator(ctx.task.name, ctx.source),
                  example_batch(data.images).shape)


def no_labels(ctx: StageContext, data) -> None:
    """No labels to train on: say so, record it in the outputs and in MLflow."""
    import mlflow

    from simgan.core import tracking

    rel = data.path.relative_to(ctx.root) if data.path.is_relative_to(ctx.root) else data.path
    reason = (f"{rel} has no labels (source: {data.meta.get('source', '?')} "
              f"{data.meta.get('source_path', '')}".rstrip() + "), so no estimator is trained "
              f"on '{ctx.source}'; evaluate and compare report it as unavailable")
    print(f"[simgan] train_estimator@{ctx.task.name}-{ctx.source}: {reason}", file=sys.stderr)
    ctx.layout.estimator_checkpoints(ctx.source).mkdir(parents=True, exist_ok=True)
    save_torch(
        ctx.layout.estimator_model(ctx.source),
        {"state_dict": None, "source": ctx.source, "n_train": len(data),
         "labels_available": False, "reason": reason},
    )
    mlflow.set_tag("labels_available", "false")
    tracking.log_metrics({"labels_available": 0.0, "n_train": float(len(data))})


if __name__ == "__main__":
    main("train_estimator", run, with_source=True)
