"""evaluate: one estimator on the real test set (the paper's measure) and on held-out
synthetic images (the gap between the two is what refinement exists to close)."""

from __future__ import annotations

from simgan.data.dataset import open_dataset
from stages.artifacts import load_torch, write_csv, write_json
from stages.common import StageContext, main


def run(ctx: StageContext) -> None:
    from simgan import tracking

    section = ctx.params.evaluate
    saved = load_torch(ctx.layout.estimator_model(ctx.source))
    model = ctx.task.load_estimator(ctx.params, saved["state_dict"])
    test_sets = {
        "real_test": open_dataset(ctx.layout.real("test")),
        "synthetic_test": open_dataset(ctx.layout.synthetic("test")),
    }
    out = ctx.layout.eval_dir(ctx.source)
    with tracking.stage_run(
        ctx.root, ctx.task.name, "evaluate", section.model_dump(mode="json"),
        train_source=ctx.source,
    ):
        metrics: dict[str, dict[str, float]] = {}
        for name, data in test_sets.items():
            predictions = ctx.task.predict(ctx.params, model, data.images)
            result = ctx.task.evaluate(ctx.params, predictions, data.labels)
            metrics[name] = result.summary
            write_csv(out / f"curve_{name}.csv", result.curve)
            if name == "real_test":
                write_csv(out / "predictions.csv", result.per_image)
            tracking.log_metrics({f"{name}.{k}": v for k, v in result.summary.items()})
        write_json(out / "metrics.json", metrics)


if __name__ == "__main__":
    main("evaluate", run, with_source=True)
