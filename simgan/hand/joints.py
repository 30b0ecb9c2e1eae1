"""What every hand source shares, whoever produced the crop: the 14 labelled joints, NYU's
camera, the label columns and the uint8 depth coding of a crop.

Why a module of its own: the procedural renderer (:mod:`simgan.hand.render`), NYU's reader
(:mod:`simgan.hand.nyu`), the task and its metrics must agree on these, and none of them should
import the renderer to learn them (reading NYU has nothing to do with drawing capsules).

Labels: the 14 joints NYU evaluates (its joint indices [0, 3, 6, 9, 12, 15, 18, 21, 24, 25,
27, 30, 31, 32]), in that order, see :data:`JOINT_NAMES`. NYU names each finger bone KNU1..3
(proximal..distal) with ends A (distal) and B (proximal), so F*_KNU3_A is a fingertip and
F*_KNU2_B the PIP joint; TH_KNU3_B is the thumb IP joint and TH_KNU2_B its MCP joint. PALM_1/2
are the two sides of the wrist (ulnar, radial) and PALM_3 a point on the palm's long axis.
A label table has ``j00_u, j00_v, j00_d, ..., j13_d``: crop px (pixel centres at integers,
u right, v down) and depth in mm (the z coordinate, what Kinect and NYU's PNGs store).

Camera: NYU's 640x480 Kinect frame, fx 588.03, fy 587.07, principal point (320, 240).

Depth coding (:func:`normalise_depth`): background 0, foreground = (reference - depth) * scale,
the paper's "depth - 2000" with the sign flipped so nearer is brighter in a uint8 image; the
reference is the back face of the crop cube (a background "wall" at the reference would be 0,
continuous with the hand) and depths outside the cube are background, as in NYU crops.
``depth_reference="paper"`` uses the paper's fixed 2000 mm reference instead.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

N_JOINTS = 14
_F = np.float32

NYU_FX, NYU_FY, NYU_CX, NYU_CY = 588.03, 587.07, 320.0, 240.0
NYU_WIDTH, NYU_HEIGHT = 640, 480
NYU_EVAL_JOINTS = (0, 3, 6, 9, 12, 15, 18, 21, 24, 25, 27, 30, 31, 32)
"""Indices of the 14 evaluated joints among NYU's 36 (Tompson et al.), in evaluation order."""
JOINT_NAMES = (
    "F1_KNU3_A", "F1_KNU2_B", "F2_KNU3_A", "F2_KNU2_B", "F3_KNU3_A", "F3_KNU2_B",
    "F4_KNU3_A", "F4_KNU2_B", "TH_KNU3_A", "TH_KNU3_B", "TH_KNU2_B",
    "PALM_1", "PALM_2", "PALM_3",
)
"""NYU names of the 14 labels (F1 pinky, F2 ring, F3 middle, F4 index, TH thumb):
tip and PIP per finger; thumb tip, IP and MCP; wrist ulnar, wrist radial, palm axis."""

PAPER_REFERENCE_MM = 2000.0
"""The paper's foreground offset: depth - 2000 mm."""


def joint_columns(suffixes: str = "uvd") -> list[str]:
    """Label column names ``j00_u, j00_v, j00_d, ..., j13_d`` in NYU evaluation order."""
    return [f"j{k:02d}_{c}" for k in range(N_JOINTS) for c in suffixes]


def keypoints_from_labels(labels: pd.DataFrame) -> np.ndarray:
    """(N, 14, 2) float32 crop (u, v) of a labels table (the estimator's targets)."""
    uv = labels[joint_columns("uv")].to_numpy(np.float32)
    return uv.reshape(len(labels), N_JOINTS, 2)


def normalise_depth(
    depth_mm: np.ndarray,
    ref_depth: np.ndarray,
    cube_mm: float,
    mode: Literal["cube", "paper"] = "cube",
) -> np.ndarray:
    """Depth (B, H, W) mm (0 or inf = no depth) -> uint8 codes: background 0, foreground 1-255.

    ``cube`` (default): code = (Zc + cube/2 - z) * 255 / cube, i.e. depth minus the back face of
    the crop cube, negated and scaled (1.18 mm per level at 300 mm, finer than Kinect's depth
    step at 0.5-1 m); depths outside the cube are background. ``paper``: code = (2000 - z) *
    255 / 2000 (the paper's "depth - 2000", negated); 7.8 mm per level, coarse for fingers,
    offered for fidelity. Foreground is at least 1 so it never reads as background.
    """
    z = np.asarray(depth_mm, dtype=_F)
    ref = np.asarray(ref_depth, dtype=_F)[:, None, None]
    half = _F(cube_mm / 2.0)
    if mode == "cube":
        back, scale = ref + half, _F(255.0 / cube_mm)
    elif mode == "paper":
        back, scale = np.full_like(ref, PAPER_REFERENCE_MM), _F(255.0 / PAPER_REFERENCE_MM)
    else:
        raise ValueError(f"mode must be 'cube' or 'paper', got {mode!r}")
    inside = (z > 0) & np.isfinite(z) & (z >= ref - half) & (z <= ref + half)
    code = np.clip(np.rint((back - np.where(inside, z, back)) * scale), 1.0, 255.0)
    return np.where(inside, code, 0.0).astype(np.uint8)


def code_to_depth(
    code: np.ndarray, ref_depth: np.ndarray, cube_mm: float, mode: Literal["cube", "paper"] = "cube"
) -> np.ndarray:
    """Inverse of :func:`normalise_depth` for foreground codes (mm, float32); NaN for 0."""
    c = np.asarray(code, dtype=_F)
    ref = np.asarray(ref_depth, dtype=_F).reshape(-1, *([1] * (c.ndim - 1)))
    if mode == "cube":
        z = ref + _F(cube_mm / 2.0) - c * _F(cube_mm / 255.0)
    else:
        z = _F(PAPER_REFERENCE_MM) - c * _F(PAPER_REFERENCE_MM / 255.0)
    return np.where(c > 0, z, np.nan).astype(_F)
