"""The few numbers of a comparison that fit on one screen (headline.json, DVC's metrics).

comparison.json holds everything compare measured (hundreds of numbers per task); `dvc
metrics show` and `dvc exp show` are read by people, so they get one flat record per task with
the same keys for every task: the task's headline measure on real test per training source,
refined vs synthetic, realism (AUC and KID ratio), label preservation and the refiner's step.
Pure: plain dicts in, a plain dict out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SOURCES = ("synthetic", "refined", "real")


def headline_metrics(comparison: Mapping[str, Any], metric: str,
                     preservation_key: str) -> dict[str, float | str]:
    """One flat record from a comparison.json dict. ``metric``: the task's headline key of an
    evaluation (e.g. ``mean_deg``); ``preservation_key``: the label-preservation figure (px) to
    show. A number that was not measured (no real labels, no synthetic->real KID) is left
    out rather than written as null, which DVC would show as a change in `metrics diff`."""
    out: dict[str, float | str] = {"metric": metric}
    for source in SOURCES:
        value = comparison["sources"][source]["real_test"].get(metric)
        if value is not None:
            out[source] = float(value)
    optional = {
        "refined_vs_synthetic_pct": comparison.get("refined_vs_synthetic_relative_pct"),
        "auc_synthetic": comparison["realism"]["synthetic_vs_real"]["auc"],
        "auc_refined": comparison["realism"]["refined_vs_real"]["auc"],
        "kid_ratio": comparison.get("kid_ratio_refined_over_synthetic"),
        "preservation_px": comparison["label_preservation"].get(preservation_key),
        "selected_step": comparison.get("refiner", {}).get("selected_step"),
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    return out
