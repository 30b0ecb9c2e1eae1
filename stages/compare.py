"""compare: synthetic vs refined vs real in one table (comparison.md, DVC metrics, MLflow),
plus what the paper measured by hand: label preservation and realism.

An evaluation without numbers (a real test set without labels, or no 'real' reference because
the real train set has none) is shown as n/a with the reason, in comparison.md and under
``unavailable`` in comparison.json; label preservation and realism need no real labels and
are always computed.
"""

from __future__ import annotations

import numpy as np

from simgan.core.dataset import atomic_write_bytes, atomic_write_text, open_dataset
from stages.artifacts import load_torch, read_json, write_json
from stages.common import StageContext, main
from stages.layout import SOURCES


def run(ctx: StageContext) -> None:
    from simgan.core import tracking

    section = ctx.params.compare
    evals = {s: read_json(ctx.layout.eval_dir(s) / "metrics.json") for s in SOURCES}
    unavailable = {
        f"{s}.{t}": why for s in SOURCES for t, entry in evals[s].items()
        if (why := unavailable_reason(entry, ctx.task.headline))
    }
    with tracking.stage_run(ctx.root, ctx.task.name, "compare", section.model_dump(mode="json")):
        metrics = comparison_metrics(ctx, evals, unavailable)
        write_json(ctx.layout.reports / "comparison.json", metrics)
        write_figures(ctx, evals, unavailable)
        md = render_markdown(ctx.task, evals, metrics["refined_vs_synthetic_relative_pct"],
                             metrics["label_preservation"], metrics["realism"], ctx)
        atomic_write_text(ctx.layout.reports / "comparison.md", md)
        log_comparison(ctx, evals, unavailable, metrics)
    print(md)


def comparison_metrics(ctx: StageContext, evals: dict, unavailable: dict) -> dict:
    """comparison.json: every source's evaluation, refined vs synthetic, label preservation
    and realism (the last two need no real labels)."""
    from simgan.core.realism import two_sample_test

    task, section = ctx.task, ctx.params.compare
    synthetic = open_dataset(ctx.layout.synthetic("train"))
    refined = open_dataset(ctx.layout.refined())
    real_test = open_dataset(ctx.layout.real("test"))

    def estimator(source: str):
        saved = load_torch(ctx.layout.estimator_model(source))
        return task.load_estimator(ctx.params, saved["state_dict"])

    preservation = task.label_preservation(
        ctx.params, synthetic.images, refined.images, synthetic.labels, estimator=estimator
    )
    realism = {
        "synthetic_vs_real": two_sample_test(real_test.images, synthetic.images,
                                             section.realism),
        "refined_vs_real": two_sample_test(real_test.images, refined.images, section.realism),
    }
    syn = evals["synthetic"]["real_test"].get(task.headline)
    ref = evals["refined"]["real_test"].get(task.headline)
    if syn is None or ref is None:
        relative = None  # no labelled real test set: nothing to compare on
    else:
        relative = (ref - syn) / syn * 100.0 if syn else float("nan")
    metrics = {
        "sources": {s: evals[s] for s in SOURCES},
        "refined_vs_synthetic_relative_pct": relative,
        "label_preservation": preservation,
        "realism": {k: _realism_dict(v) for k, v in realism.items()},
    }
    if unavailable:
        metrics["unavailable"] = unavailable
    return metrics


def write_figures(ctx: StageContext, evals: dict, unavailable: dict) -> None:
    """curves.png (cumulative curves on real test) and samples.png (synthetic / refined /
    real rows; fixed seeded picks, so the figure is comparable between runs)."""
    import pandas as pd

    from simgan.core import plots

    task, out = ctx.task, ctx.layout.reports
    curves = {
        s: pd.read_csv(ctx.layout.eval_dir(s) / "curve_real_test.csv") for s in SOURCES
        if f"{s}.real_test" not in unavailable
    }
    curve_png = plots.curves_png(
        curves,
        xlabel=task.curve_xlabel(ctx.params),
        title=f"{task.name}: estimators tested on real images",
        marker_x=ctx.params.compare.marker,
        columns=task.curve_columns(ctx.params),
        note=None if curves else "no labelled real test set: no errors to plot",
    )
    synthetic = open_dataset(ctx.layout.synthetic("train"))
    refined = open_dataset(ctx.layout.refined())
    real_test = open_dataset(ctx.layout.real("test"))
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(synthetic), size=min(12, len(synthetic)), replace=False))
    ridx = np.sort(rng.choice(len(real_test), size=min(12, len(real_test)), replace=False))
    samples_png = plots.grid_png(
        {"synthetic": synthetic.images[idx], "refined": refined.images[idx],
         "real": real_test.images[ridx]}
    )
    atomic_write_bytes(out / "curves.png", curve_png)
    atomic_write_bytes(out / "samples.png", samples_png)


def log_comparison(ctx: StageContext, evals: dict, unavailable: dict, metrics: dict) -> None:
    """The comparison's numbers and files in the stage's MLflow run."""
    import mlflow

    from simgan.core import tracking

    out = ctx.layout.reports
    tracking.log_metrics(
        {f"{s}.{k}": v for s in SOURCES for k, v in evals[s]["real_test"].items()
         if f"{s}.real_test" not in unavailable}
    )
    relative = metrics["refined_vs_synthetic_relative_pct"]
    if relative is not None:
        tracking.log_metrics({"refined_vs_synthetic_relative_pct": relative})
    else:
        mlflow.set_tag("real_test_labels", "absent")
    tracking.log_metrics(
        {f"label_preservation.{k}": v for k, v in metrics["label_preservation"].items()})
    tracking.log_metrics(
        {f"realism.{k}.accuracy": v["accuracy"] for k, v in metrics["realism"].items()}
    )
    for name in ("comparison.md", "curves.png", "samples.png"):
        mlflow.log_artifact(str(out / name))


def unavailable_reason(entry: dict, headline: str) -> str | None:
    """Why an evaluate entry (metrics.json, one test set) has no numbers, or None if it has."""
    if headline in entry:
        return None
    if entry.get("estimator_trained") is False:
        return "no estimator: its training set has no labels"
    if entry.get("labels_available") is False:
        return "the test set has no labels"
    return f"no {headline} in the evaluation"


def _realism_dict(result) -> dict[str, float]:
    return {k: float(v) for k, v in result.model_dump().items()}


def render_markdown(task, evals, relative, preservation, realism, ctx) -> str:
    lines = [
        f"# {task.name}: trained on synthetic vs refined vs real",
        "",
        "Each estimator is tested on the real test set (the paper's measure) and on held-out",
        "synthetic images. Real labels are used only here and by the 'real' reference.",
        "",
        *_results_table(task, evals, ctx),
        *_relative_lines(task, evals, relative),
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


def _results_table(task, evals: dict, ctx) -> list[str]:
    """One row per training source: the task's columns on real test, its headline on
    synthetic test; n/a where an evaluation has no numbers."""
    cols = task.table_columns(ctx.params)

    def cell(entry: dict, key: str) -> str:
        return f"{entry[key]:.2f}" if key in entry else "n/a"

    lines = [
        "| trained on | " + " | ".join(f"real test: {t}" for _, t in cols)
        + f" | synthetic test: {cols[0][1]} |",
        "|---" * (len(cols) + 2) + "|",
    ]
    for s in SOURCES:
        r, st = evals[s]["real_test"], evals[s]["synthetic_test"]
        cells = " | ".join(cell(r, k) for k, _ in cols)
        lines.append(f"| {s} | {cells} | {cell(st, cols[0][0])} |")
    return lines


def _relative_lines(task, evals: dict, relative: float | None) -> list[str]:
    """Refined vs synthetic on real test, or why it cannot be said; then the n/a notes."""
    notes = [
        f"- {s} / {t.replace('_', ' ')}: n/a, {why}."
        for s in SOURCES for t, entry in evals[s].items()
        if (why := unavailable_reason(entry, task.headline))
    ]
    if evals["synthetic"]["real_test"].get("labels_available") is False:
        lines = [
            "",
            "**The real test set has no labels** (an unlabelled real source), so no estimator's "
            "error on real images can be measured and refined vs synthetic cannot be compared "
            "on them. Label preservation and realism below need no real labels.",
        ]
    elif relative is None:
        lines = ["", "Refined vs synthetic on real test: not available (see below)."]
    else:
        lines = [
            "",
            f"Refined vs synthetic on real test ({task.headline}): {relative:+.1f}% "
            f"({'lower' if not task.headline_higher_is_better else 'higher'} is better).",
        ]
    return lines + (["", *notes] if notes else [])


if __name__ == "__main__":
    main("compare", run)
