"""Procedural articulated hand depth renderer: the geometric hand model shared by both domains.

Why this exists: NYU cannot be downloaded here, so the default pipeline draws its own
"synthdepth" (this module) and its own stand-in Kinect "depth" (the same geometry through
:mod:`simgan.hand.standin`). Both come from the same sampler, so a joint label means
the same thing in both domains and the only gap between them is the sensor's appearance.

Hand model (a right hand, millimetres). Hand frame: x radial (toward the thumb), y distal
(toward the fingers), z palmar; origin at the wrist centre. Bones are capsules (a segment with
a radius): three phalanges per finger, three thumb bones (metacarpal, proximal, distal), four
metacarpal capsules and a transverse wrist capsule for the palm, and a forearm capsule (a stub
in the synthetic domain, continuing off-frame in the stand-in real one). Joint limits are in
:data:`LIMITS_DEG`; flexion bends toward +z (the palm), finger flexions share one axis per finger
(planar fingers), DIP flexion is coupled to PIP flexion as in real fingers.

Labels: the 14 joints NYU evaluates, in NYU's evaluation order, with NYU's camera and the
crop's depth coding: the conventions every hand source shares, in :mod:`simgan.hand.joints`.

Camera (NYU-like, then cropped): the hand is placed in NYU's 640x480 Kinect frame (fx 588.03,
fy 587.07, principal point (320, 240)) at a centre depth Zc, and the crop is the common NYU
protocol's: a cube of ``cube_mm`` around the hand centre (the mean of the 14 joints, plus a
small "detection" jitter), i.e. a square of ``cube_mm * f / Zc`` Kinect pixels resized to
``size``. The crop's intrinsics are therefore f' = size * Zc / cube_mm and a principal point
that is off the crop centre when the hand is off the optical axis (rays stay oblique, as in
real crops). Pixel centres are at integer (u, v) (u right, v down); depth is the z coordinate
(what Kinect and NYU's PNGs store), not the ray length.

Rendering: per pixel the nearest ray-capsule intersection, z-buffered (analytic: a quadratic
for the cylinder, then the end cap the cylinder hit points to). Vectorised over images: the
loop is over the ~21 capsules; each capsule is evaluated only on a screen tile that bounds its
projection in every image of a sub-block ((B, T, T) arrays), and ray coordinates are
separable in u and v, so most per-pixel terms are one broadcast add. Intersections are solved
relative to a point near the capsule (the ray point at the capsule's depth) so float32 is
accurate to well under a millimetre at 1 m.

Depth coding: :func:`simgan.hand.joints.normalise_depth` (background 0, nearer is brighter,
depths outside the crop cube are background).

Domains: a :class:`HandDomain` says what differs between the images drawn from the shared
geometry: its seed code, pose distribution, forearm, and an optional sensor model applied to
the clean depth. This module knows only the synthetic one (:func:`synthetic_domain`); the
stand-in Kinect domain is composed in :mod:`simgan.hand.standin`.

Determinism: geometry is drawn in blocks of :data:`BLOCK` images, block ``b`` seeded by
``(seed, domain code, b)``, and rasterised in fixed sub-blocks, so image ``i`` has the same
bytes whatever range, chunking or thread count it was rendered with (index-range sharding,
:func:`simgan.core.stream.block_range`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from functools import partial
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from simgan.core.fields import StrictParams
from simgan.core.stream import block_range
from simgan.hand.joints import (
    N_JOINTS,
    NYU_CX,
    NYU_CY,
    NYU_FX,
    NYU_FY,
    joint_columns,
    normalise_depth,
)

BLOCK = 256
"""Images per random block. Changing it changes every rendered byte: it is part of the format."""
SUB_BLOCK = 64
"""Images rasterised at once (tiles are sized per capsule over a sub-block). Part of the
format: the artefact model draws its random numbers sub-block by sub-block."""

DOMAIN_SYNTHETIC = 3
"""Seed code of the synthetic domain (part of the format; the stand-in's is in its module)."""
_F = np.float32


# ----------------------------------------------------------------------------- hand model

# Fingers in NYU order: pinky (F1), ring (F2), middle (F3), index (F4). Hand frame, mm.
_MCP = np.array([[-29.0, 78.0], [-11.0, 87.0], [8.0, 91.0], [27.0, 87.0]])  # (x, y) at z = 0
_PHALANX = np.array([[32.0, 19.0, 18.0], [41.0, 26.0, 20.0], [44.0, 27.0, 21.0],
                     [40.0, 23.0, 19.0]])  # proximal, middle, distal lengths
_FINGER_R = np.array([[7.5, 6.5, 6.0], [8.5, 7.5, 6.5], [9.0, 8.0, 7.0], [9.0, 8.0, 7.0]])
_REST_SPLAY_DEG = np.array([-9.0, -3.0, 0.0, 4.0])  # rest direction, + = toward the thumb
_SPREAD_DEG = np.array([-14.0, -6.0, 0.0, 9.0])  # extra splay of a fully spread hand
_CMC = np.array([20.0, 22.0, 8.0])  # thumb carpometacarpal joint
_THUMB_LEN = np.array([42.0, 31.0, 26.0])  # metacarpal, proximal, distal
_THUMB_R = np.array([12.0, 9.5, 8.5])
_THUMB_BEND = np.array([-0.6, -0.1, 0.8])  # direction the thumb flexes toward (palm, ulnar)
_WRIST = np.array([[-19.0, 4.0, 0.0], [19.0, 4.0, 0.0]])  # PALM_1 (ulnar), PALM_2 (radial)
_WRIST_R = 14.0
_PALM_BASE_Y = 14.0  # metacarpal capsules run from (0.55 x_mcp, 14) to the MCP
_PALM_R = 12.0
_PALM3_T = 0.35  # PALM_3: this far along the middle metacarpal
_FOREARM_START_Y = -18.0
_FOREARM_R = 21.0

LIMITS_DEG = {
    "mcp_flex": (-20.0, 90.0),
    "pip_flex": (0.0, 110.0),
    "dip_flex": (0.0, 80.0),
    "mcp_abduction": (-25.0, 25.0),  # around the rest splay
    "thumb_cmc_abduction": (15.0, 75.0),
    "thumb_cmc_flex": (-10.0, 60.0),
    "thumb_mcp_flex": (0.0, 60.0),
    "thumb_ip_flex": (-10.0, 80.0),
}
"""Anatomical joint limits, degrees (flexion > 0 bends toward the palm)."""

# Capsule indices: 0-11 finger phalanges (finger-major), 12-14 thumb, 15-18 palm metacarpals,
# 19 wrist, 20 forearm.
N_CAPSULES = 21
CAPSULE_NAMES = (
    *[f"{f}_{b}" for f in ("pinky", "ring", "middle", "index") for b in ("prox", "mid", "dist")],
    "thumb_meta", "thumb_prox", "thumb_dist",
    *[f"palm_{f}" for f in ("pinky", "ring", "middle", "index")],
    "wrist", "forearm",
)
JOINT_CAPSULES: tuple[tuple[int, ...], ...] = (
    (2,), (0, 1, 15), (5,), (3, 4, 16), (8,), (6, 7, 17), (11,), (9, 10, 18),
    (14,), (13, 14), (12, 13), (19, 15, 20), (19, 18, 12, 20), (17, 16, 15, 18, 19),
)
"""For each label, the capsules whose surface lies over it (its own bone and its neighbours):
the renderer's tests check that the surface drawn at a joint's pixel belongs to one of them."""


def _joint_radii() -> np.ndarray:
    """Radius (mm, before hand scaling) of the smallest ball around each joint that lies inside
    its bones, used to relate a label's depth to the surface drawn over it."""
    r = np.empty(N_JOINTS)
    for f in range(4):
        r[2 * f] = _FINGER_R[f, 2]
        r[2 * f + 1] = max(_FINGER_R[f, 0], _FINGER_R[f, 1])
    r[8], r[9], r[10] = _THUMB_R[2], max(_THUMB_R[1], _THUMB_R[2]), max(_THUMB_R[0], _THUMB_R[1])
    r[11] = r[12] = _WRIST_R
    r[13] = _PALM_R
    return r


JOINT_RADII_MM = _joint_radii()


# ----------------------------------------------------------------------------- parameters


class HandPoseDistribution(StrictParams):
    """How articulation is drawn: one global curl in [0, 1] shared by the fingers (grasps are
    correlated), per-finger deviations, a global spread; all angles clipped to LIMITS_DEG."""

    curl_power: float = Field(1.5, gt=0.0, le=10.0, description="curl = U(0,1)^power; >1 opens")
    finger_curl_std: float = Field(0.3, ge=0.0, le=1.0, description="per-finger deviation")
    angle_noise_deg: float = Field(6.0, ge=0.0, le=30.0, description="per-joint noise")
    spread_max: float = Field(1.0, ge=0.0, le=1.5, description="max spread, x _SPREAD_DEG")
    yaw_max_deg: float = Field(
        180.0, ge=0.0, le=180.0, description="about the image's vertical axis; 0 = palm to camera"
    )
    pitch_max_deg: float = Field(40.0, ge=0.0, le=90.0, description="toward/away from camera")
    roll_max_deg: float = Field(60.0, ge=0.0, le=180.0, description="in-plane; 0 = fingers up")


class HandRenderParams(StrictParams):
    """Image size, crop protocol, camera placement and hand shape of the hand renderer."""

    size: int = Field(64, ge=16, le=512, description="crop side in px (the paper: 224)")
    cube_mm: float = Field(300.0, ge=100.0, le=1000.0, description="crop cube side")
    depth_reference: Literal["cube", "paper"] = "cube"
    depth_min_mm: float = Field(550.0, ge=300.0, le=3000.0, description="hand centre depth")
    depth_max_mm: float = Field(1000.0, ge=300.0, le=3000.0)
    frame_u_spread_px: float = Field(150.0, ge=0.0, le=300.0, description="centre +- in NYU px")
    frame_v_spread_px: float = Field(100.0, ge=0.0, le=220.0)
    crop_jitter_mm: float = Field(6.0, ge=0.0, le=50.0, description="crop centre error, std")
    scale_min: float = Field(0.9, gt=0.5, le=1.5, description="hand size factor")
    scale_max: float = Field(1.1, gt=0.5, le=1.5)
    forearm_length_mm: float = Field(60.0, ge=0.0, le=1000.0, description="stub beyond wrist")
    pose: HandPoseDistribution = Field(default_factory=HandPoseDistribution)

    @model_validator(mode="after")
    def _ranges(self) -> HandRenderParams:
        if self.depth_min_mm > self.depth_max_mm:
            raise ValueError("depth_min_mm must not exceed depth_max_mm")
        if self.scale_min > self.scale_max:
            raise ValueError("scale_min must not exceed scale_max")
        return self


# ----------------------------------------------------------------------------- geometry


@dataclass
class HandGeometry:
    """Per-image geometry of one block in camera coordinates (mm) and crop intrinsics."""

    joints: np.ndarray  # (B, 14, 3) camera xyz of the labels, NYU evaluation order
    cap_a: np.ndarray  # (B, P, 3) capsule end points
    cap_b: np.ndarray
    cap_r: np.ndarray  # (B, P) radii
    fu: np.ndarray  # (B,) crop focal lengths, px
    fv: np.ndarray
    cu: np.ndarray  # (B,) crop principal point, px
    cv: np.ndarray
    ref_depth: np.ndarray  # (B,) crop centre depth Zc (cube centre), mm
    crop_scale: np.ndarray  # (B,) crop px per NYU-frame px
    scale: np.ndarray  # (B,) hand size factor

    def __len__(self) -> int:
        return int(self.fu.shape[0])

    def slice(self, lo: int, hi: int) -> HandGeometry:
        return HandGeometry(**{f.name: getattr(self, f.name)[lo:hi] for f in fields(self)})

    def project(self, xyz: np.ndarray) -> np.ndarray:
        """Camera xyz (B, K, 3) -> crop (u, v, z) (B, K, 3)."""
        z = xyz[..., 2]
        u = self.fu[:, None] * xyz[..., 0] / z + self.cu[:, None]
        v = self.fv[:, None] * xyz[..., 1] / z + self.cv[:, None]
        return np.stack([u, v, z], axis=-1)


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(*a.shape, 3, 3)


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(*a.shape, 3, 3)


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s, o, z = np.cos(a), np.sin(a), np.ones_like(a), np.zeros_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(*a.shape, 3, 3)


@dataclass
class HandPose:
    """Joint angles (radians) of a batch: fingers (B, 4) each, thumb (B,) each."""

    mcp: np.ndarray
    pip: np.ndarray
    dip: np.ndarray
    abduction: np.ndarray
    thumb_abduction: np.ndarray
    thumb_cmc: np.ndarray
    thumb_mcp: np.ndarray
    thumb_ip: np.ndarray

    @staticmethod
    def open_hand(n: int) -> HandPose:
        """The rest pose: straight fingers at their rest splay, thumb out in the palm plane."""
        z4, z1 = np.zeros((n, 4)), np.zeros(n)
        return HandPose(z4, z4.copy(), z4.copy(), z4.copy(), np.full(n, np.deg2rad(45.0)),
                        z1, z1.copy(), z1.copy())


def _clip_deg(x: np.ndarray, key: str) -> np.ndarray:
    lo, hi = LIMITS_DEG[key]
    return np.deg2rad(np.clip(x, lo, hi))


def sample_pose(dist: HandPoseDistribution, rng: np.random.Generator, n: int) -> HandPose:
    """Draw ``n`` articulations within the anatomical limits; the draw order is fixed."""
    noise = dist.angle_noise_deg
    curl = rng.random(n) ** dist.curl_power
    fc = np.clip(curl[:, None] + rng.normal(0.0, dist.finger_curl_std, (n, 4)), 0.0, 1.0)
    mcp = _clip_deg(fc * 80.0 + rng.normal(0.0, noise, (n, 4)), "mcp_flex")
    pip = _clip_deg(fc * 100.0 + rng.normal(0.0, noise, (n, 4)), "pip_flex")
    dip = _clip_deg(np.rad2deg(pip) * 0.67 + rng.normal(0.0, noise, (n, 4)), "dip_flex")
    spread = rng.random(n) * dist.spread_max
    abd = spread[:, None] * _SPREAD_DEG[None] * (1.0 - 0.6 * fc)
    abd = _clip_deg(abd + rng.normal(0.0, noise * 0.6, (n, 4)), "mcp_abduction")
    tc = np.clip(curl + rng.normal(0.0, dist.finger_curl_std, n), 0.0, 1.0)
    t_abd = _clip_deg(rng.uniform(25.0, 65.0, n), "thumb_cmc_abduction")
    t_cmc = _clip_deg(10.0 + 40.0 * tc + rng.normal(0.0, noise, n), "thumb_cmc_flex")
    t_mcp = _clip_deg(50.0 * tc + rng.normal(0.0, noise, n), "thumb_mcp_flex")
    t_ip = _clip_deg(65.0 * tc + rng.normal(0.0, noise, n), "thumb_ip_flex")
    return HandPose(mcp, pip, dip, abd, t_abd, t_cmc, t_mcp, t_ip)


def forward_kinematics(
    pose: HandPose, forearm_length_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hand-frame joints (B, 14, 3) and capsules (a, b (B, P, 3), radii (P,)) of a pose.

    Closed form, no per-image loop: each finger is planar (flexions share its abduction-rotated
    x axis), so its direction after cumulative flexion phi is (sin psi cos phi, cos psi cos phi,
    sin phi) for a splay psi toward the thumb;
    the thumb bends in the plane of its metacarpal direction and :data:`_THUMB_BEND`.
    """
    n = pose.mcp.shape[0]
    splay = np.deg2rad(_REST_SPLAY_DEG)[None] + pose.abduction  # (B, 4), + = toward the thumb
    sx, cx = np.sin(splay), np.cos(splay)
    mcp = np.concatenate([np.broadcast_to(_MCP[None], (n, 4, 2)), np.zeros((n, 4, 1))], 2)
    pts = [mcp]
    phi = np.zeros((n, 4))
    for k, ang in enumerate((pose.mcp, pose.pip, pose.dip)):
        phi = phi + ang
        c, s = np.cos(phi), np.sin(phi)
        d = np.stack([sx * c, cx * c, s], -1)  # (B, 4, 3)
        pts.append(pts[-1] + _PHALANX[None, :, k, None] * d)
    finger = np.stack(pts, 2)  # (B, 4, 4 points: MCP, PIP, DIP, TIP, 3)

    a, b = pose.thumb_abduction, pose.thumb_cmc
    d0 = np.stack([np.sin(a) * np.cos(b), np.cos(a) * np.cos(b), np.sin(b)], -1)  # (B, 3)
    w = np.broadcast_to(_THUMB_BEND, d0.shape)
    bend = w - (w * d0).sum(-1, keepdims=True) * d0
    bend /= np.linalg.norm(bend, axis=-1, keepdims=True)
    tpts = [np.broadcast_to(_CMC, (n, 3))]
    phi_t = np.zeros(n)
    for k, ang in enumerate((np.zeros(n), pose.thumb_mcp, pose.thumb_ip)):
        phi_t = phi_t + ang
        d = np.cos(phi_t)[:, None] * d0 + np.sin(phi_t)[:, None] * bend
        tpts.append(tpts[-1] + _THUMB_LEN[k] * d)
    thumb = np.stack(tpts, 1)  # (B, 4: CMC, MCP, IP, TIP, 3)

    palm_base = np.stack([0.55 * _MCP[:, 0], np.full(4, _PALM_BASE_Y), np.zeros(4)], -1)
    palm_base = np.broadcast_to(palm_base[None], (n, 4, 3))
    wrist = np.broadcast_to(_WRIST[None], (n, 2, 3))
    palm3 = palm_base[:, 2] + _PALM3_T * (finger[:, 2, 0] - palm_base[:, 2])

    joints = np.empty((n, N_JOINTS, 3))
    joints[:, 0:8:2] = finger[:, :, 3]  # tips
    joints[:, 1:8:2] = finger[:, :, 1]  # PIPs
    joints[:, 8], joints[:, 9], joints[:, 10] = thumb[:, 3], thumb[:, 2], thumb[:, 1]
    joints[:, 11], joints[:, 12], joints[:, 13] = wrist[:, 0], wrist[:, 1], palm3

    fore_a = np.broadcast_to(np.array([0.0, _FOREARM_START_Y, 0.0]), (n, 3))
    fore_b = fore_a - np.array([0.0, max(forearm_length_mm, 1e-3), 0.0])
    cap_a = np.concatenate([
        finger[:, :, :3].reshape(n, 12, 3), thumb[:, :3], palm_base, wrist[:, :1], fore_a[:, None]
    ], 1)
    cap_b = np.concatenate([
        finger[:, :, 1:].reshape(n, 12, 3), thumb[:, 1:], finger[:, :, 0], wrist[:, 1:],
        fore_b[:, None],
    ], 1)
    radii = np.concatenate([_FINGER_R.ravel(), _THUMB_R, np.full(4, _PALM_R), [_WRIST_R],
                            [_FOREARM_R]])
    return joints, cap_a, cap_b, radii


def sample_geometry(
    params: HandRenderParams,
    rng: np.random.Generator,
    n: int,
    pose_dist: HandPoseDistribution | None = None,
    forearm_length_mm: float | None = None,
) -> HandGeometry:
    """Draw ``n`` posed, placed hands and their crops; the draw order is part of the format."""
    p = params
    pose = sample_pose(pose_dist or p.pose, rng, n)
    dist = pose_dist or p.pose
    scale = rng.uniform(p.scale_min, p.scale_max, n)
    yaw = np.deg2rad(rng.uniform(-dist.yaw_max_deg, dist.yaw_max_deg, n))
    pitch = np.deg2rad(rng.uniform(-dist.pitch_max_deg, dist.pitch_max_deg, n))
    roll = np.deg2rad(rng.uniform(-dist.roll_max_deg, dist.roll_max_deg, n))
    zc = rng.uniform(p.depth_min_mm, p.depth_max_mm, n)
    uc = NYU_CX + rng.uniform(-1.0, 1.0, n) * p.frame_u_spread_px
    vc = NYU_CY + rng.uniform(-1.0, 1.0, n) * p.frame_v_spread_px
    jitter = np.clip(rng.normal(0.0, 1.0, (n, 3)), -3.0, 3.0) * p.crop_jitter_mm
    return place_hand(
        p, pose, scale, yaw, pitch, roll, np.stack([uc, vc, zc], 1), jitter,
        p.forearm_length_mm if forearm_length_mm is None else forearm_length_mm,
    )


# hand frame -> camera frame at zero rotation: fingers up (-y), palm toward the camera (-z).
_R0 = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


def place_hand(
    params: HandRenderParams,
    pose: HandPose,
    scale: np.ndarray,
    yaw: np.ndarray,
    pitch: np.ndarray,
    roll: np.ndarray,
    centre_uvd: np.ndarray,
    crop_jitter: np.ndarray,
    forearm_length_mm: float,
) -> HandGeometry:
    """Pose, scale and rotate hands, put their joint mean at ``centre_uvd`` (NYU frame u, v and
    depth), and crop a cube around it (offset by ``crop_jitter`` mm, the detector's error)."""
    joints_h, a_h, b_h, radii = forward_kinematics(pose, forearm_length_mm)
    rot = _rot_z(roll) @ _rot_x(pitch) @ _rot_y(yaw) @ _R0  # (B, 3, 3)
    s = scale[:, None, None]
    mean_h = joints_h.mean(1, keepdims=True)

    uc, vc, zc = centre_uvd[:, 0], centre_uvd[:, 1], centre_uvd[:, 2]
    t = np.stack([(uc - NYU_CX) * zc / NYU_FX, (vc - NYU_CY) * zc / NYU_FY, zc], 1)[:, None]

    def to_cam(x: np.ndarray) -> np.ndarray:
        return np.einsum("bij,bkj->bki", rot, (x - mean_h) * s) + t

    crop_c = t[:, 0] + crop_jitter  # (B, 3) cube centre, camera frame
    ref = crop_c[:, 2]
    cu_f = NYU_FX * crop_c[:, 0] / ref + NYU_CX  # cube centre in the NYU frame
    cv_f = NYU_FY * crop_c[:, 1] / ref + NYU_CY
    size = params.size
    ku = size * ref / (params.cube_mm * NYU_FX)  # crop px per NYU px
    kv = size * ref / (params.cube_mm * NYU_FY)
    side_u, side_v = size / ku, size / kv
    # crop pixel i = (x - left edge) * k - 0.5 for a NYU-frame coordinate x (centres at ints)
    cu = (NYU_CX - (cu_f - side_u / 2.0)) * ku - 0.5
    cv = (NYU_CY - (cv_f - side_v / 2.0)) * kv - 0.5
    return HandGeometry(
        joints=to_cam(joints_h),
        cap_a=to_cam(a_h),
        cap_b=to_cam(b_h),
        cap_r=np.broadcast_to(radii[None], (len(scale), radii.shape[0])) * scale[:, None],
        fu=NYU_FX * ku,
        fv=NYU_FY * kv,
        cu=cu,
        cv=cv,
        ref_depth=ref,
        crop_scale=ku,
        scale=scale,
    )


# ----------------------------------------------------------------------------- rendering


def _tile_boxes(geom: HandGeometry, p: int, size: int) -> tuple[np.ndarray, ...]:
    """Conservative screen boxes of capsule ``p`` in every image: (u0, v0, u1, v1) ints,
    clipped to the image (u1, v1 exclusive). A ball's projection is bounded by its projected
    radius f r / (z - r), widened by 1 + tan^2 of its off-axis angle (perspective stretches it
    radially), plus a pixel."""
    lo_u = lo_v = np.full(len(geom), np.inf)
    hi_u = hi_v = np.full(len(geom), -np.inf)
    r = geom.cap_r[:, p]
    for end in (geom.cap_a[:, p], geom.cap_b[:, p]):
        x, y, z = end[:, 0], end[:, 1], end[:, 2]
        zr = np.maximum(z - r, 1.0)
        stretch = 1.05 * (1.0 + (x * x + y * y) / (zr * zr))
        u = geom.fu * x / z + geom.cu
        v = geom.fv * y / z + geom.cv
        ru = geom.fu * r / zr * stretch + 1.0
        rv = geom.fv * r / zr * stretch + 1.0
        lo_u, hi_u = np.minimum(lo_u, u - ru), np.maximum(hi_u, u + ru)
        lo_v, hi_v = np.minimum(lo_v, v - rv), np.maximum(hi_v, v + rv)
    u0 = np.clip(np.floor(lo_u), 0, size).astype(np.int64)
    u1 = np.clip(np.ceil(hi_u) + 1, 0, size).astype(np.int64)
    v0 = np.clip(np.floor(lo_v), 0, size).astype(np.int64)
    v1 = np.clip(np.ceil(hi_v) + 1, 0, size).astype(np.int64)
    return u0, v0, u1, v1


def _capsule_depth(
    geom: HandGeometry, p: int, u: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """Depth z (mm) of the first hit of the rays through pixels (u (B, 1, T), v (B, T, 1)) with
    capsule ``p`` of each image: (B, T, T) float32, inf where the ray misses.

    The ray is X(t) = (t0 + t) d with d = ((u - cu) / fu, (v - cv) / fv, 1), so z = t0 + t;
    t0 is the depth of end A, which keeps every quantity small (tens of mm) in float32.
    """
    col = _col3
    a = geom.cap_a[:, p]
    ba = geom.cap_b[:, p] - a
    length = np.linalg.norm(ba, axis=1)
    e = ba / np.maximum(length, 1e-9)[:, None]  # unit axis
    r = geom.cap_r[:, p]
    t0 = a[:, 2]
    dx = ((u - col(geom.cu)) / col(geom.fu)).astype(_F)  # (B, 1, T)
    dy = ((v - col(geom.cv)) / col(geom.fv)).astype(_F)  # (B, T, 1)
    ox = dx * col(t0) - col(a[:, 0])  # ray point at depth t0, relative to A (oz = 0)
    oy = dy * col(t0) - col(a[:, 1])
    ex, ey, ez = col(e[:, 0]), col(e[:, 1]), col(e[:, 2])
    ln, r2 = col(length), col(r * r)
    bard = (ex * dx) + (ey * dy + ez)  # (B, T, T) from here on: cos(ray, axis) * |d|
    baoa = (ex * ox) + (ey * oy)  # axial coordinate of the relative origin
    rdoa = (dx * ox) + (dy * oy)
    oaoa = (ox * ox) + (oy * oy)
    dd = (dx * dx) + (dy * dy + 1.0)
    qa = dd - bard * bard
    qb = rdoa - baoa * bard
    qc = oaoa - baoa * baoa - r2
    h = qb * qb - qa * qc
    sq = np.sqrt(np.maximum(h, 0.0))
    parallel = qa <= 1e-4 * dd  # within ~0.6 deg of the axis
    t = (-qb - sq) / np.where(parallel, 1.0, qa)
    y = baoa + t * bard  # axial coordinate of the cylinder entry
    # ray ~ parallel to the axis: the end nearer the camera is hit first.
    y = np.where(parallel, np.where(bard > 0.0, -1.0, ln + 1.0), y)
    body = (y > 0.0) & (y < ln)
    # end caps: ball A (y <= 0) or ball B (y >= length), relative origin o or o - L e.
    cap_b = y >= ln
    bq = rdoa - np.where(cap_b, bard * ln, 0.0)
    cq = oaoa - r2 + np.where(cap_b, ln * (ln - 2.0 * baoa), 0.0)
    hq = bq * bq - dd * cq
    tq = (-bq - np.sqrt(np.maximum(hq, 0.0))) / dd
    t = np.where(body, t, np.where(hq >= 0.0, tq, np.inf))
    t[h < 0.0] = np.inf  # a ray that misses the infinite cylinder misses the capsule
    t += col(t0)
    return t.astype(_F, copy=False)


def _col3(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=_F)[:, None, None]


def render_depth(
    geom: HandGeometry, size: int, parts: bool = False, tiled: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Z-buffer the capsules of every image: ((B, S, S) float32 depth in mm, inf = no hit;
    and, if ``parts``, (B, S, S) int8 index of the capsule seen, -1 = none).

    ``tiled=False`` evaluates every capsule on the whole image (slow; a reference for tests).
    """
    n = len(geom)
    zbuf = np.full((n, size, size), np.inf, dtype=_F)
    part = np.full((n, size, size), -1, dtype=np.int8) if parts else None
    zflat = zbuf.reshape(-1)  # one flat index array: ~3x faster than 3-array indexing
    pflat = part.reshape(-1) if part is not None else None
    base = (np.arange(n, dtype=np.int64) * size * size)[:, None, None]
    ar = np.arange(size)
    for p in range(geom.cap_r.shape[1]):
        if tiled:
            u0, v0, u1, v1 = _tile_boxes(geom, p, size)
            tw, th = int((u1 - u0).max(initial=0)), int((v1 - v0).max(initial=0))
            if tw == 0 or th == 0:
                continue
            u0 = np.minimum(u0, size - tw)  # same tile size for all: slide it inside the image
            v0 = np.minimum(v0, size - th)
        else:
            u0 = v0 = np.zeros(n, np.int64)
            tw = th = size
        ui = u0[:, None, None] + ar[None, None, :tw]  # (B, 1, T)
        vi = v0[:, None, None] + ar[None, :th, None]  # (B, T, 1)
        z = _capsule_depth(geom, p, ui.astype(_F), vi.astype(_F))
        flat = (base + vi * size) + ui
        old = zflat[flat]
        nearer = z < old
        zflat[flat] = np.where(nearer, z, old)
        if pflat is not None:
            pflat[flat] = np.where(nearer, np.int8(p), pflat[flat])
    return zbuf, part


# ----------------------------------------------------------------------------- labels


def labels_frame(geom: HandGeometry, start: int) -> pd.DataFrame:
    """One row per image: id, the 14 joints as crop (u, v) px and depth mm (NYU order), and
    what evaluation and conversions need: crop reference depth, cube, crop scale (crop px per
    Kinect px, to report errors in NYU-frame px) and the crop intrinsics."""
    uvd = geom.project(geom.joints)  # (B, 14, 3): column order j00_u, j00_v, j00_d, ...
    extra = {"ref_depth_mm": geom.ref_depth, "crop_scale": geom.crop_scale, "focal_u": geom.fu,
             "focal_v": geom.fv, "center_u": geom.cu, "center_v": geom.cv,
             "hand_scale": geom.scale}
    n = len(geom)
    values = np.concatenate([uvd.reshape(n, 3 * N_JOINTS), np.stack(list(extra.values()), 1)], 1)
    frame = pd.DataFrame(values.astype(np.float64), columns=[*joint_columns(), *extra])
    frame.insert(0, "id", np.arange(start, start + n, dtype=np.int64))
    return frame


# ----------------------------------------------------------------------------- public API


SensorModel = Callable[[np.ndarray, HandGeometry, np.random.Generator], np.ndarray]
"""Clean depth (B, S, S) mm of a sub-block, its geometry, the block's generator -> the depth
a sensor would give (mm, 0 or inf = no reading)."""


@dataclass(frozen=True)
class HandDomain:
    """What differs between two domains drawn from the shared geometry: the seed ``code``
    (blocks of different domains never share random numbers), the pose distribution and
    forearm length (None: ``render.hand``'s), and a ``sensor`` model applied to the clean
    depth of each sub-block (None: the clean depth, as the synthetic domain)."""

    code: int
    pose: HandPoseDistribution | None = None
    forearm_length_mm: float | None = None
    sensor: SensorModel | None = None


def synthetic_domain() -> HandDomain:
    """The clean synthetic domain: ``render.hand``'s pose and forearm, no sensor model."""
    return HandDomain(DOMAIN_SYNTHETIC)


def render_block(
    params: HandRenderParams, seed: int, block: int, domain: HandDomain | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """Render block ``block`` (images ``block*BLOCK .. +BLOCK``) of a domain (None: the
    synthetic one) in full."""
    domain = domain or synthetic_domain()
    rng = np.random.default_rng([int(seed), domain.code, int(block)])
    geom = sample_geometry(params, rng, BLOCK, domain.pose, domain.forearm_length_mm)
    images = np.empty((BLOCK, params.size, params.size), dtype=np.uint8)
    for lo in range(0, BLOCK, SUB_BLOCK):
        sub = geom.slice(lo, lo + SUB_BLOCK)
        depth, _ = render_depth(sub, params.size)
        if domain.sensor is not None:
            depth = domain.sensor(depth, sub, rng)
        images[lo : lo + SUB_BLOCK] = normalise_depth(
            depth, sub.ref_depth, params.cube_mm, params.depth_reference
        )
    return images, labels_frame(geom, block * BLOCK)


def render_hands(
    params: HandRenderParams,
    n: int,
    seed: int,
    start: int = 0,
    domain: HandDomain | None = None,
    threads: int = 1,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Images ``start .. start+n`` of a domain (None: synthetic): ((n, S, S) uint8, labels).

    The bytes of image i depend only on (params, domain, seed, i), not on ``threads`` or the
    range.
    """
    chunks = list(iter_hand_chunks(params, n, seed, max(n, 1), start, domain, threads))
    if not chunks:
        return np.zeros((0, params.size, params.size), np.uint8), _empty_labels(params, start)
    return chunks[0]


def _empty_labels(params: HandRenderParams, start: int) -> pd.DataFrame:
    geom = sample_geometry(params, np.random.default_rng(0), 0)
    return labels_frame(geom, start)


def iter_hand_chunks(
    params: HandRenderParams,
    n_total: int,
    seed: int,
    chunk_size: int,
    start: int = 0,
    domain: HandDomain | None = None,
    threads: int = 1,
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Yield ``(images, labels)`` chunks covering ``start .. start+n_total`` in order.

    Blocks are rendered by ``threads`` threads (numpy releases the GIL in its array loops;
    each block has its own generator, so the result does not depend on the thread count).
    Peak memory: one chunk plus ``2 * threads`` blocks.
    """
    if n_total < 0 or start < 0:
        raise ValueError(f"n_total and start must be >= 0 (got {n_total}, {start})")
    render = partial(render_block, params, seed, domain=domain)
    return block_range(render, BLOCK, start, n_total, chunk_size, threads if threads > 1 else 0)
