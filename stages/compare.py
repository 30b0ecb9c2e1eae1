"""compare: synthetic vs refined vs real in one table (comparison.md, DVC metrics, MLflow),
plus what the paper measured by hand: label preservation and realism."""

from __future__ import annotations

import numpy as np

from simgan.data.dataset import open_dataset
from stages.artifacts import load_torch, read_json, write_json
from stages.common import StageContext, main
from stages.layout import SOURCES


def run(ctx: StageContext) -> None:
    import pandas as pd

    from simgan import plots, tracking
    from simgan.data.dataset import atomic_write_bytes, atomic_write_text
    from simgan.metrics.realism import two_sample_test

    section = ctx.params.compare
    task = ctx.task
    evals = {s: read_json(ctx.layout.eval_dir(s) / "metrics.json") for s in SOURCES}
    curves = {
        s: pd.read_csv(ctx.layout.eval_dir(s) / "curve_real_test.csv") for s in SOURCES
    }
    synthetic = open_dataset(ctx.layout.synthetic("train"))
    refined = open_dataset(ctx.layout.refined())
    real_test = open_dataset(ctx.layout.real("test"))
    out = ctx.layout.reports

    def estimator(source: str):
        saved = load_torch(ctx.layout.estimator_model(source))
        return task.load_estimator(ctx.params, saved["state_dict"])

    with tracking.stage_run(ctx.root, task.name, "compare", section.model_dump(mode="json")):
        preservation = task.label_preservation(
            ctx.params, synthetic.images, refined.images, synthetic.labels, estimator=estimator
        )
        realism = {
            "synthetic_vs_real": two_sample_test(real_test.images, synthetic.images,
                                                 section.realism),
            "refined_vs_real": two_sample_test(real_test.images, refined.images, section.realism),
        }
        head = task.headline
        syn, ref = evals["synthetic"]["real_test"][head], evals["refined"]["real_test"][head]
        relative = (ref - syn) / syn * 100.0 if syn else float("nan")
        metrics = {
            "sources": {s: evals[s] for s in SOURCES},
            "refined_vs_synthetic_relative_pct": relative,
            "label_preservation": preservation,
            "realism": {k: _realism_dict(v) for k, v in realism.items()},
        }
        write_json(out / "comparison.json", metrics)

        curve_png = plots.curves_png(
            {s: curves[s] for s in SOURCES},
            xlabel=task.curve_xlabel(ctx.params),
            title=f"{task.name}: estimators tested on real images",
            marker_x=section.marker,
            columns=task.curve_columns(ctx.params),
        )
        rng = np.random.default_rng(0)
        idx = np.sort(rng.choice(len(synthetic), size=min(12, len(synthetic)), replace=False))
        ridx = np.sort(rng.choice(len(real_test), size=min(12, len(real_test)), replace=False))
        samples_png = plots.grid_png(
            {"synthetic": synthetic.images[idx], "refined": refined.images[idx],
             "real": real_test.images[ridx]}
        )
        atomic_write_bytes(out / "curves.png", curve_png)
        atomic_write_bytes(out / "samples.png", samples_png)
        md = render_markdown(task, evals, relative, preservation, metrics["realism"], ctx)
        atomic_write_text(out / "comparison.md", md)

        tracking.log_metrics(
            {f"{s}.{k}": v for s in SOURCES for k, v in evals[s]["real_test"].items()}
        )
        tracking.log_metrics({"refined_vs_synthetic_relative_pct": relative})
        tracking.log_metrics({f"label_preservation.{k}": v for k, v in preservation.items()})
        tracking.log_metrics(
            {f"realism.{k}.accuracy": v["accuracy"] for k, v in metrics["realism"].items()}
        )
        import mlflow

        mlflow.log_artifact(str(out / "comparison.md"))
        mlflow.log_artifact(str(out / "curves.png"))
        mlflow.log_artifact(str(out / "samples.png"))
    print(md)


def _realism_dict(result) -> dict[str, float]:
    return {k: float(v) for k, v in result.model_dump().items()}


def render_markdown(task, evals, relative, preservation, realism, ctx) -> str:
    cols = task.table_columns(ctx.params)
    lines = [
        f"# {task.name}: trained on synthetic vs refined vs real",
        "",
        "Each estimator is tested on the real test set (the paper's measure) and on held-out",
        "synthetic images. Real labels are used only here and by the 'real' reference.",
        "",
        "| trained on | " + " | ".join(f"real test: {t}" for _, t in cols)
        + f" | synthetic test: {cols[0][1]} |",
        "|---" * (len(cols) + 2) + "|",
    ]
    for s in SOURCES:
        r, st = evals[s]["real_test"], evals[s]["synthetic_test"]
        cells = " | ".join(f"{r[k]:.2f}" for k, _ in cols)
        lines.append(f"| {s} | {cells} | {st[cols[0][0]]:.2f} |")
    lines += [
        "",
        f"Refined vs synthetic on real test ({task.headline}): {relative:+.1f}% "
        f"({'lower' if not task.headline_higher_is_better else 'higher'} is better).",
        "",
        "## Label preservation",
        "",
        *[f"- {k}: {v:.3f}" for k, v in preservation.items()],
        "",
        "## Realism (classifier two-sample test, 0.5 = indistinguishable)",
        "",
        "| pair | accuracy | 95% CI | AUC |",
        "|---|---|---|---|",
        *[
            f"| {k.replace('_', ' ')} | {v['accuracy']:.3f} | "
            f"{v['ci95_low']:.3f}-{v['ci95_high']:.3f} | {v['auc']:.3f} |"
            for k, v in realism.items()
        ],
        "",
        "![cumulative curves](curves.png)",
        "",
        "![synthetic, refined, real samples](samples.png)",
        "",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main("compare", run)
