"""evaluate: one estimator on the real test set (the paper's measure) and on held-out
synthetic images (the gap between the two is what refinement exists to close).

Without labels there is nothing to measure, and the stage says so in its outputs rather than
failing (every output still exists, so DVC and compare carry on):
- a real test set without labels (an unlabelled folder source): ``real_test`` in metrics.json
  is ``{"labels_available": false, "n": N}``, its curve CSV has the header only and
  predictions.csv holds the predictions without truth or error;
- an estimator that could not be trained (the 'real' reference on an unlabelled real train
  set): every test set is ``{"estimator_trained": false, "n": N}``.
"""

from __future__ import annotations

import sys

import pandas as pd

from simgan.core.dataset import open_dataset
from stages.artifacts import load_torch, write_csv, write_json
from stages.common import StageContext, log_datasets, main, tracked

CURVE_COLUMNS = ["threshold", "pct_within"]


def run(ctx: StageContext) -> None:
    from simgan.core import tracking

    section = ctx.params.evaluate
    saved = load_torch(ctx.layout.estimator_model(ctx.source))
    trained = saved.get("state_dict") is not None
    model = ctx.task.load_estimator(ctx.params, saved["state_dict"]) if trained else None
    test_sets = {
        "real_test": open_dataset(ctx.layout.real("test")),
        "synthetic_test": open_dataset(ctx.layout.synthetic("test")),
    }
    out = ctx.layout.eval_dir(ctx.source)
    label = f"evaluate@{ctx.task.name}-{ctx.source}"
    with tracked(ctx, "evaluate", section.model_dump(mode="json")):
        import mlflow

        log_datasets(ctx, {n.replace("_", "/"): d.path for n, d in test_sets.items()},
                     "evaluation")

        metrics: dict[str, dict] = {}
        if not trained:
            print(f"[simgan] {label}: nothing to evaluate ({saved.get('reason', 'no model')})",
                  file=sys.stderr)
            mlflow.set_tag("estimator_trained", "false")
        for name, data in test_sets.items():
            if not trained:
                metrics[name] = {"estimator_trained": False, "n": len(data)}
                write_csv(out / f"curve_{name}.csv", pd.DataFrame(columns=CURVE_COLUMNS))
                if name == "real_test":
                    write_csv(out / "predictions.csv", pd.DataFrame(columns=["id"]))
                continue
            predictions = ctx.task.predict(ctx.params, model, data.images)
            if not ctx.task.has_labels(data.labels):
                metrics[name] = {"labels_available": False, "n": len(data)}
                write_csv(out / f"curve_{name}.csv", pd.DataFrame(columns=CURVE_COLUMNS))
                if name == "real_test":
                    write_csv(out / "predictions.csv",
                              pd.concat([data.labels[["id"]], predictions], axis=1))
                print(f"[simgan] {label}: the {name.replace('_', ' ')} set ({_where(data)}) has "
                      f"no labels: its errors cannot be measured; metrics.json says "
                      f"{name}.labels_available: false", file=sys.stderr)
                mlflow.set_tag(f"{name}.labels_available", "false")
                tracking.log_metrics({f"{name}.labels_available": 0.0})
                continue
            result = ctx.task.evaluate(ctx.params, predictions, data.labels)
            metrics[name] = result.summary
            write_csv(out / f"curve_{name}.csv", result.curve)
            if name == "real_test":
                write_csv(out / "predictions.csv", result.per_image)
            tracking.log_metrics({f"{name}.{k}": v for k, v in result.summary.items()})
        write_json(out / "metrics.json", metrics)
        log_outputs(ctx, out)


def log_outputs(ctx: StageContext, out) -> None:
    """The evaluation's files in its MLflow run (predictions, curves as CSV and as a PNG,
    metrics), so a reviewer sees them without DVC."""
    from simgan.core import plots, tracking

    curves = {n: out / f"curve_{n}.csv" for n in ("real_test", "synthetic_test")}
    tracking.log_files([out / "predictions.csv", out / "metrics.json", *curves.values()])
    frames = {n: pd.read_csv(p) for n, p in curves.items()}
    frames = {n.replace("_", " "): f for n, f in frames.items() if len(f)}
    png = plots.curves_png(
        frames, xlabel=ctx.task.curve_xlabel(ctx.params),
        title=f"{ctx.task.name}: estimator trained on {ctx.source}",
        columns=ctx.task.curve_columns(ctx.params),
        note=None if frames else "no labelled test set: no errors to plot",
    )
    tracking.log_png(png, "curves.png")


def _where(data) -> str:
    m = data.meta
    return " ".join(str(x) for x in (m.get("source", "?"), m.get("source_path", "")) if x)


if __name__ == "__main__":
    main("evaluate", run, with_source=True)
