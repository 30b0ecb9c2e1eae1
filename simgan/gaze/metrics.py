"""Gaze-direction conventions and errors, as in MPIIGaze.

Camera coordinates: x right, y down, z away from the camera. A gaze vector points from the
eye to where it looks, so an eye looking straight into the camera has g = (0, 0, -1) and
pitch = yaw = 0; looking up (towards -y) gives a positive pitch, looking towards the camera's
-x (the subject's own left for a frontal face) a positive yaw. Angles are in radians except
where a name says ``_deg``. All functions broadcast over leading axes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def pitchyaw_to_vector(pitch: ArrayLike, yaw: ArrayLike) -> np.ndarray:
    """(pitch, yaw) in radians -> unit gaze vectors (..., 3).

    g = (-cos p sin y, -sin p, -cos p cos y), the MPIIGaze convention.
    """
    p = np.asarray(pitch, dtype=np.float64)
    y = np.asarray(yaw, dtype=np.float64)
    cp = np.cos(p)
    return np.stack(np.broadcast_arrays(-cp * np.sin(y), -np.sin(p), -cp * np.cos(y)), axis=-1)


def vector_to_pitchyaw(g: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Gaze vectors (..., 3), any length -> (pitch, yaw) in radians: asin(-y), atan2(-x, -z).

    The vector is normalised first so that labels stored with rounding still map cleanly.
    """
    v = _unit(np.asarray(g, dtype=np.float64))
    pitch = np.arcsin(np.clip(-v[..., 1], -1.0, 1.0))
    yaw = np.arctan2(-v[..., 0], -v[..., 2])
    return pitch, yaw


def angular_error_deg(pred: ArrayLike, true: ArrayLike) -> np.ndarray:
    """Angle in degrees between predicted and true gaze vectors (N, 3) -> (N,).

    Both are normalised (an estimator's raw output need not be unit length) and the dot
    product is clipped to [-1, 1], so rounding never yields NaN at 0 or 180 degrees.
    """
    p = _unit(np.asarray(pred, dtype=np.float64))
    t = _unit(np.asarray(true, dtype=np.float64))
    if p.shape[-1] != 3 or t.shape[-1] != 3:
        raise ValueError(f"gaze vectors need a last axis of 3, got {p.shape} and {t.shape}")
    cos = np.clip(np.sum(p * t, axis=-1), -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def gaze_summary(errors_deg: ArrayLike, within_deg: float = 7.0) -> dict[str, float | int]:
    """Mean, median, std (population, ddof=0), % within ``within_deg`` (inclusive) and n.

    The paper reports mean error (Table 3) and % of images within 7 degrees (Table 2); both
    come from here so every report uses the same definition. Empty input gives NaNs, n = 0.
    """
    e = np.asarray(errors_deg, dtype=np.float64).ravel()
    if np.isnan(e).any():
        raise ValueError("errors contain NaN: fix the predictions rather than averaging them away")
    n = int(e.size)
    if n == 0:
        nan = float("nan")
        return {"mean": nan, "median": nan, "std": nan, "pct_within": nan, "n": 0}
    return {
        "mean": float(e.mean()),
        "median": float(np.median(e)),
        "std": float(e.std()),
        "pct_within": float(100.0 * np.count_nonzero(e <= within_deg) / n),
        "n": n,
    }


def _unit(v: np.ndarray) -> np.ndarray:
    """Normalise along the last axis; zero vectors stay zero instead of becoming NaN."""
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm > 0, norm, 1.0)
