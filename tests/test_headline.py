"""headline.json (simgan.core.headline): the few numbers of a comparison.json, same keys for
every task, nothing written for what was not measured."""

from __future__ import annotations

import pytest

from simgan.core.headline import headline_metrics


def comparison(real_test: dict[str, dict], relative: float | None) -> dict:
    """The parts of a comparison.json (stages/compare.py) that the headline reads."""
    return {
        "sources": {s: {"real_test": real_test[s], "synthetic_test": {"mean_deg": 1.0}}
                    for s in ("synthetic", "refined", "real")},
        "refined_vs_synthetic_relative_pct": relative,
        "realism": {"synthetic_vs_real": {"auc": 0.99, "accuracy": 0.9},
                    "refined_vs_real": {"auc": 0.8, "accuracy": 0.7}},
        "kid": {},
        "kid_ratio_refined_over_synthetic": 0.4,
        "label_preservation": {"pupil_drift_mean_px": 0.08, "pupil_lost_n": 9.0},
        "refiner": {"selected_step": 300, "criterion": "mmd"},
    }


def test_headline_picks_the_tasks_measure_and_the_shared_figures():
    c = comparison({"synthetic": {"mean_deg": 8.9}, "refined": {"mean_deg": 6.7},
                    "real": {"mean_deg": 3.5}}, relative=-24.6)
    h = headline_metrics(c, "mean_deg", "pupil_drift_mean_px")
    assert h == {"metric": "mean_deg", "synthetic": 8.9, "refined": 6.7, "real": 3.5,
                 "refined_vs_synthetic_pct": -24.6, "auc_synthetic": 0.99, "auc_refined": 0.8,
                 "kid_ratio": 0.4, "preservation_px": 0.08, "selected_step": 300.0}
    assert len(h) <= 10


def test_what_was_not_measured_is_left_out_not_null():
    unlabelled = {"labels_available": False, "n": 10}
    c = comparison({"synthetic": unlabelled, "refined": unlabelled,
                    "real": {"estimator_trained": False, "n": 10}}, relative=None)
    c["kid_ratio_refined_over_synthetic"] = None
    h = headline_metrics(c, "mean_deg", "pupil_drift_mean_px")
    assert set(h) == {"metric", "auc_synthetic", "auc_refined", "preservation_px",
                      "selected_step"}
    assert None not in h.values()


def test_a_missing_realism_record_is_an_error_not_a_silent_gap():
    c = comparison({s: {"mean_deg": 1.0} for s in ("synthetic", "refined", "real")}, 0.0)
    del c["realism"]["refined_vs_real"]
    with pytest.raises(KeyError):
        headline_metrics(c, "mean_deg", "pupil_drift_mean_px")
