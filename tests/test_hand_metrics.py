"""Hand-pose metrics on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from simgan.hand.metrics import (
    HAND_THRESHOLDS_PX,
    hand_curves,
    hand_summary,
    joint_errors_px,
    per_joint_mean,
    preservation_summary,
    to_frame_px,
)


def _pair() -> tuple[np.ndarray, np.ndarray]:
    """Two images, three joints; errors 0, 5, 13 (5-12-13) and 3, 4, 10 px by construction."""
    true = np.zeros((2, 3, 2))
    pred = np.array([
        [[0.0, 0.0], [3.0, 4.0], [5.0, 12.0]],
        [[3.0, 0.0], [0.0, -4.0], [-6.0, 8.0]],
    ])
    return pred, true


def test_joint_errors_are_euclidean_pixels() -> None:
    pred, true = _pair()
    np.testing.assert_allclose(joint_errors_px(pred, true), [[0, 5, 13], [3, 4, 10]])
    with pytest.raises(ValueError, match="same shape"):
        joint_errors_px(pred, true[:, :2])
    bad = pred.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        joint_errors_px(bad, true)


def test_summary_joints_and_images_within() -> None:
    e = joint_errors_px(*_pair())
    s = hand_summary(e, within_px=5.0)
    assert s["mean_px"] == pytest.approx((0 + 5 + 13 + 3 + 4 + 10) / 6)
    assert s["median_px"] == pytest.approx(4.5)
    assert s["pct_joints_within"] == pytest.approx(100 * 4 / 6)  # 0, 5 (tie counts), 3, 4
    assert s["pct_images_within"] == 0.0  # worst joints 13 and 10
    assert s["mean_worst_px"] == pytest.approx(11.5)
    assert hand_summary(e, within_px=10.0)["pct_images_within"] == 50.0
    assert s["n"] == 2 and s["n_joints"] == 3


def test_curves_are_cumulative_over_0_to_20_px() -> None:
    e = joint_errors_px(*_pair())
    c = hand_curves(e)
    assert c["threshold"].tolist() == HAND_THRESHOLDS_PX.tolist() == list(range(21))
    want_joints = [100 * np.mean(e.ravel() <= d) for d in range(21)]
    np.testing.assert_allclose(c["pct_joints_within"], want_joints)
    assert c.loc[c["threshold"] == 5, "pct_joints_within"].item() == pytest.approx(400 / 6)
    images = c["pct_images_within"].to_numpy()
    assert images[9] == 0.0 and images[10] == 50.0 and images[12] == 50.0 and images[13] == 100
    assert (np.diff(c["pct_joints_within"]) >= 0).all() and (np.diff(images) >= 0).all()
    assert (c["pct_images_within"] <= c["pct_joints_within"]).all()


def test_frame_px_divides_by_crop_scale_and_per_joint_means() -> None:
    e = np.array([[2.0, 4.0], [1.0, 1.0]])
    np.testing.assert_allclose(to_frame_px(e, [0.5, 0.25]), [[4, 8], [4, 4]])
    with pytest.raises(ValueError):
        to_frame_px(e, [0.5])
    m = per_joint_mean(e, ["tip", "palm"])
    assert m["tip"] == 1.5 and m["palm"] == 2.5


def test_preservation_compares_the_same_estimator_on_both_versions() -> None:
    syn = np.array([[1.0, 2.0], [3.0, 6.0]])
    ref = np.array([[1.0, 2.0], [3.0, 10.0]])
    p = preservation_summary(syn, ref, within_px=5.0)
    assert p["synthetic_mean_px"] == 3.0 and p["refined_mean_px"] == 4.0
    assert p["delta_mean_px"] == 1.0
    assert p["synthetic_pct_joints_within"] == 75.0 == p["refined_pct_joints_within"]
    assert p["delta_pct_joints_within"] == 0.0
