"""Hand-pose errors as the paper and NYU report them: 2D joint errors in pixels.

The paper (Table 4, after Tompson et al.) reports the percentage of joints within d pixels
(d = 5: synthetic 69.7, refined 72.4, real 74.5) and plots cumulative curves over d = 0..20;
the stricter per-image measure (the worst joint of an image within d) is the other common NYU
curve. Errors here are in the pixels of whatever images they come from (crop px for our
datasets); :func:`to_frame_px` converts crop px to the original Kinect frame's px with each
image's crop scale, since a px threshold means nothing without its resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from simgan.core.curves import cumulative_curve

HAND_THRESHOLDS_PX = np.arange(0, 21, dtype=np.float64)
"""The paper's x-axis for hand curves: 0..20 px in steps of 1."""


def joint_errors_px(pred: ArrayLike, true: ArrayLike) -> np.ndarray:
    """Euclidean 2D error (N, J) between predicted and true (N, J, 2) joint positions (u, v)."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if p.shape != t.shape or p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"expected two (N, J, 2) arrays of the same shape, got {p.shape} "
                         f"and {t.shape}")
    e = np.hypot(p[..., 0] - t[..., 0], p[..., 1] - t[..., 1])
    if np.isnan(e).any():
        raise ValueError("joint errors contain NaN (a prediction or label is NaN)")
    return e


def to_frame_px(errors_px: ArrayLike, crop_scale: ArrayLike) -> np.ndarray:
    """Crop-px errors (N, J) -> px of the original frame, given crop px per frame px (N,)."""
    e = np.asarray(errors_px, dtype=np.float64)
    s = np.asarray(crop_scale, dtype=np.float64)
    if s.shape != (e.shape[0],) or (s <= 0).any():
        raise ValueError(f"crop_scale must be ({e.shape[0]},) positive, got {s.shape}")
    return e / s[:, None]


def hand_curves(errors: ArrayLike, thresholds: ArrayLike = HAND_THRESHOLDS_PX) -> pd.DataFrame:
    """Columns ``threshold``, ``pct_joints_within`` (% of all joints with error <= d) and
    ``pct_images_within`` (% of images whose worst joint has error <= d)."""
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"errors must be (N images, J joints), got {e.shape}")
    joints = cumulative_curve(e, thresholds)
    worst = e.max(axis=1) if e.shape[1] else np.zeros(e.shape[0])
    images = cumulative_curve(worst, thresholds)
    return pd.DataFrame({
        "threshold": joints["threshold"],
        "pct_joints_within": joints["pct_within"],
        "pct_images_within": images["pct_within"],
    })


def hand_summary(errors: ArrayLike, within_px: float = 5.0) -> dict[str, float]:
    """Headline numbers of (N, J) pixel errors: mean/median joint error, % joints and % images
    (worst joint) within ``within_px``, mean worst-joint error, image and joint counts."""
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 2 or e.size == 0:
        raise ValueError(f"errors must be a non-empty (N, J) array, got {e.shape}")
    if np.isnan(e).any():
        raise ValueError("errors contain NaN")
    worst = e.max(axis=1)
    return {
        "mean_px": float(e.mean()),
        "median_px": float(np.median(e)),
        "pct_joints_within": float(100.0 * (e <= within_px).mean()),
        "pct_images_within": float(100.0 * (worst <= within_px).mean()),
        "mean_worst_px": float(worst.mean()),
        "n": float(e.shape[0]),
        "n_joints": float(e.shape[1]),
    }


def per_joint_mean(errors: ArrayLike, names: Sequence[str] | None = None) -> pd.Series:
    """Mean error of each joint (column), indexed by ``names`` if given."""
    e = np.asarray(errors, dtype=np.float64)
    index = list(names) if names is not None else [f"j{k:02d}" for k in range(e.shape[1])]
    if len(index) != e.shape[1]:
        raise ValueError(f"{len(index)} names for {e.shape[1]} joints")
    return pd.Series(e.mean(axis=0), index=index, name="mean_px")


def preservation_summary(
    errors_synthetic: ArrayLike, errors_refined: ArrayLike, within_px: float = 5.0
) -> dict[str, float]:
    """Label preservation for depth: one estimator (trained on synthetic) scored on synthetic
    images and on their refined versions with the *same* labels. If refinement kept the
    joints where they were, both scores agree; a drop on refined images means the labels no
    longer fit (or the estimator does not transfer to the refined look: the two cannot be told
    apart by this measure, so it bounds the label damage from above)."""
    s = hand_summary(errors_synthetic, within_px)
    r = hand_summary(errors_refined, within_px)
    return {
        "synthetic_mean_px": s["mean_px"],
        "refined_mean_px": r["mean_px"],
        "delta_mean_px": r["mean_px"] - s["mean_px"],
        "synthetic_pct_joints_within": s["pct_joints_within"],
        "refined_pct_joints_within": r["pct_joints_within"],
        "delta_pct_joints_within": r["pct_joints_within"] - s["pct_joints_within"],
    }
