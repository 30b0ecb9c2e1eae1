"""compare: synthetic vs refined vs real in one table (comparison.md, comparison.json, MLflow),
plus what the paper measured by hand: label preservation and realism (a classifier
two-sample test with a verdict, and KID in a fixed random feature space). headline.json, the
DVC metrics file, holds the ten numbers of it that people compare between runs.

An evaluation without numbers (a real test set without labels, or no 'real' reference because
the real train set has none) is shown as n/a with the reason, in comparison.md and under
``unavailable`` in comparison.json; label preservation and realism need no real labels and
are always computed.
"""

from __future__ import annotations

import numpy as np

from simgan.core.dataset import atomic_write_bytes, atomic_write_text, open_dataset
from simgan.core.headline import headline_metrics
from stages.artifacts import load_torch, read_json, write_json
from stages.common import StageContext, log_datasets, main, tracked
from stages.layout import SOURCES


def run(ctx: StageContext) -> None:
    section = ctx.params.compare
    evals = {s: read_json(ctx.layout.eval_dir(s) / "metrics.json") for s in SOURCES}
    unavailable = {
        f"{s}.{t}": why for s in SOURCES for t, entry in evals[s].items()
        if (why := unavailable_reason(entry, ctx.task.headline))
    }
    data = {"synthetic": open_dataset(ctx.layout.synthetic("train")),
            "refined": open_dataset(ctx.layout.refined()),
            "real_test": open_dataset(ctx.layout.real("test"))}
    with tracked(ctx, "compare", section.model_dump(mode="json")):
        log_datasets(ctx, {"synthetic/train": data["synthetic"].path,
                           "refined/train": data["refined"].path,
                           "real/test": data["real_test"].path}, "evaluation")
        metrics = comparison_metrics(ctx, evals, unavailable, data)
        write_json(ctx.layout.reports / "comparison.json", metrics)
        write_json(ctx.layout.reports / "headline.json",
                   headline_metrics(metrics, ctx.task.headline, ctx.task.preservation_headline))
        write_figures(ctx, unavailable, data)
        md = render_markdown(ctx.task, evals, metrics["refined_vs_synthetic_relative_pct"],
                             metrics["label_preservation"], metrics["realism"], ctx,
                             kid=metrics["kid"], selection=metrics["refiner"])
        atomic_write_text(ctx.layout.reports / "comparison.md", md)
        log_comparison(ctx, evals, unavailable, metrics)
    print(md)


def comparison_metrics(ctx: StageContext, evals: dict, unavailable: dict, data: dict) -> dict:
    """comparison.json: every source's evaluation, refined vs synthetic, label preservation
    and realism (the last two need no real labels). ``data``: the synthetic train, refined
    and real test datasets, opened once by :func:`run`."""
    task = ctx.task
    synthetic, refined, real_test = data["synthetic"], data["refined"], data["real_test"]

    def estimator(source: str):
        saved = load_torch(ctx.layout.estimator_model(source))
        return task.load_estimator(ctx.params, saved["state_dict"])

    preservation = task.label_preservation(
        ctx.params, synthetic.images, refined.images, synthetic.labels, estimator=estimator
    )
    realism, kid = realism_metrics(ctx.params.compare, synthetic, refined, real_test)
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
        "realism": realism,
        "kid": kid,
        "kid_ratio_refined_over_synthetic": kid_ratio(kid),
        "refiner": refiner_summary(read_json(ctx.layout.refiner_report / "selection.json")),
        "table": table_spec(task, ctx.params),
    }
    if unavailable:
        metrics["unavailable"] = unavailable
    return metrics


def table_spec(task, params) -> dict:
    """How the task's table reads (its columns and titles, its headline and direction), so
    that readers of comparison.json (the review page) need no task code."""
    return {"columns": [list(c) for c in task.table_columns(params)],
            "headline": task.headline, "higher_is_better": task.headline_higher_is_better,
            "preservation": task.preservation_headline}


def realism_metrics(section, synthetic, refined, real_test) -> tuple[dict, dict]:
    """The two-sample test and KID of synthetic and of refined images against real test
    images (pairs ``synthetic_vs_real``, ``refined_vs_real``), as JSON-ready dicts."""
    from simgan.core.kid import kid_against
    from simgan.core.realism import two_sample_test

    sets = {"synthetic_vs_real": synthetic.images, "refined_vs_real": refined.images}
    realism = {
        pair: two_sample_test(real_test.images, images, section.realism).model_dump()
        for pair, images in sets.items()
    }
    kid = {pair: r.model_dump() for pair, r in
           kid_against(real_test.images, sets, section.kid).items()}
    return realism, kid


def kid_ratio(kid: dict) -> float | None:
    """KID refined->real over synthetic->real (below 1: refinement moved towards real), or
    None when synthetic->real is not above 0 (no gap to close)."""
    syn = kid["synthetic_vs_real"]["mean"]
    return kid["refined_vs_real"]["mean"] / syn if syn > 0 else None


def refiner_summary(selection: dict) -> dict:
    """The selection record without its curve: which checkpoint, and whether it is the
    identity (derived from the record, by the rule train_refiner also logs)."""
    from simgan.core.refiner.identity import capture_only_note, identity_reason

    out = {k: v for k, v in selection.items() if k != "curve"}
    reason = identity_reason(selection) or ""
    out.update(identity=bool(reason), identity_reason=reason)
    if note := capture_only_note(selection):  # the capture stages did every change
        out["capture_only"] = note
    return out


def write_figures(ctx: StageContext, unavailable: dict, data: dict) -> None:
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
    synthetic, refined, real_test = data["synthetic"], data["refined"], data["real_test"]
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
    realism = metrics["realism"]
    tracking.log_metrics(
        {f"realism.{k}.{m}": v[m] for k, v in realism.items() for m in ("accuracy", "auc")}
    )
    tracking.log_metrics({f"kid.{k}": v["mean"] for k, v in metrics["kid"].items()})
    tracking.log_metrics({f"kid.{k}.std": v["std"] for k, v in metrics["kid"].items()})
    if metrics["kid_ratio_refined_over_synthetic"] is not None:
        tracking.log_metrics(
            {"kid_ratio_refined_over_synthetic": metrics["kid_ratio_refined_over_synthetic"]})
    mlflow.set_tags({f"realism.{k}.verdict": v["verdict"] for k, v in realism.items()})
    refiner = metrics["refiner"]
    tracking.log_metrics({"refiner.selected_step": float(refiner["selected_step"]),
                          "refiner.drift": float(refiner["drift"])})
    mlflow.set_tag("refiner_identity", str(refiner["identity"]).lower())
    log_report(out)
    crown_refiner(ctx, relative)


def log_report(out) -> None:
    """comparison.md with its images beside it, and comparison.html with the images inside
    (the MLflow artifact view shows HTML but resolves no relative image links)."""
    from simgan.core import tracking
    from simgan.core.report_html import markdown_to_html

    names = ("curves.png", "samples.png")
    tracking.log_files([out / "comparison.md", *(out / n for n in names)])
    md = (out / "comparison.md").read_text()
    html = markdown_to_html(md, images={n: (out / n).read_bytes() for n in names})
    tracking.log_text(html, "comparison.html")


def crown_refiner(ctx: StageContext, relative: float | None) -> None:
    """Alias ``champion`` on the registered version of the refiner this comparison used,
    when the estimator trained on its images beat the synthetic-trained one on real test."""
    import sys

    from simgan.core import tracking
    from stages.lineage import file_sha256

    higher = ctx.task.headline_higher_is_better
    if relative is None or not (relative > 0 if higher else relative < 0):
        return
    name = tracking.registered_refiner(ctx.task.name)
    version = tracking.set_champion(name, file_sha256(ctx.layout.refiner_model))
    if version is None:
        print(f"[simgan] compare@{ctx.task.name}: refined beats synthetic, but no version of "
              f"{name} holds {ctx.layout.refiner_model}: no champion alias set", file=sys.stderr)
    else:
        print(f"[simgan] compare@{ctx.task.name}: {name} version {version} is the champion",
              file=sys.stderr)


def unavailable_reason(entry: dict, headline: str) -> str | None:
    """Why an evaluate entry (metrics.json, one test set) has no numbers, or None if it has."""
    if headline in entry:
        return None
    if entry.get("estimator_trained") is False:
        return "no estimator: its training set has no labels"
    if entry.get("labels_available") is False:
        return "the test set has no labels"
    return f"no {headline} in the evaluation"


def render_markdown(task, evals, relative, preservation, realism, ctx, kid=None,
                    selection=None) -> str:
    lines = [
        f"# {task.name}: trained on synthetic vs refined vs real",
        "",
        "Each estimator is tested on the real test set (the paper's measure) and on held-out",
        "synthetic images. Real labels are used only here and by the 'real' reference.",
        "",
        *_results_table(task, evals, ctx),
        *_relative_lines(task, evals, relative),
        "",
        *_refiner_lines(selection or {}),
        "## Label preservation",
        "",
        *[f"- {k}: {v:.3f}" for k, v in preservation.items()],
        "",
        *_realism_lines(realism, kid or {}, ctx.params.compare.realism.negligible_auc),
        "",
        "![cumulative curves](curves.png)",
        "",
        "![synthetic, refined, real samples](samples.png)",
        "",
        "",
    ]
    return "\n".join(lines)


def _refiner_lines(selection: dict) -> list[str]:
    """Which refiner checkpoint was used and whether it changed anything (never silent)."""
    if not selection:
        return []
    lines = [
        "## Refiner",
        "",
        f"Selected checkpoint: adversarial step {selection['selected_step']} of "
        f"{selection['last_step']} ({selection.get('criterion', '?')}); structure "
        f"{selection['structure']:.3f}, mean change {selection['drift']:.2f} gray levels"
        + (f" before the depth sensor, {selection['output_drift']:.2f} after it"
           if "output_drift" in selection else "")
        + (f", label shift {selection['label_shift']:.4g}" if "label_shift" in selection else "")
        + ".",
    ]
    if selection.get("identity"):
        lines += ["", f"**The refiner made no change**: {selection['identity_reason']}. The "
                  "'refined' estimator was trained on (in effect) synthetic images."]
    elif selection.get("capture_only"):
        lines += ["", "**Only the capture stages changed the images**: "
                      f"{selection['capture_only']}."]
    return lines + [""]


def _realism_lines(realism: dict, kid: dict, negligible_auc: float) -> list[str]:
    """The realism table (AUC first, with the rule to read it, the verdict and KID), then the
    KID ratio."""
    lines = [
        "## Realism: read the AUC",
        "",
        "A small CNN is trained to tell each set from the real test images and scored on "
        "held-out halves. **Read the AUC**: 0.5 = indistinguishable, 1.0 = perfectly "
        "separable. The accuracy thresholds the classifier's logit at 0 and can read chance "
        "while the AUC is high. Verdict: *distinguishable* if the AUC's 95% interval lies above "
        f"0.5, *indistinguishable* if it lies below {negligible_auc:g}, else *too few images to "
        "tell* (with the test-set size that would decide). KID: unbiased MMD^2 (cubic kernel) "
        "in a fixed random-conv feature space, mean +- std over subsets; 0 = same distribution.",
        "",
        "| pair | AUC | AUC 95% CI | accuracy | accuracy 95% CI | n test | verdict | KID |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for pair, v in realism.items():
        k = kid.get(pair)
        kid_cell = f"{k['mean']:.3e} +- {k['std']:.1e}" if k else "n/a"
        lines.append(
            f"| {pair.replace('_', ' ')} | {v['auc']:.3f} | {v['auc_ci95_low']:.3f}-"
            f"{v['auc_ci95_high']:.3f} | {v['accuracy']:.3f} | {v['ci95_low']:.3f}-"
            f"{v['ci95_high']:.3f} | {v['n_test']} | {v['verdict']} | {kid_cell} |"
        )
    if kid:
        ratio = kid_ratio(kid)
        said = "n/a (synthetic->real KID not above 0)" if ratio is None else f"{ratio:.3f}"
        lines += ["", f"KID refined->real / synthetic->real: {said} "
                  "(below 1: refinement moved the images towards real)."]
    return lines


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
