"""Procedural eye renderer: the geometric eye model shared by both domains, plus flat shading.

Why this exists: no eye dataset can be downloaded here, so the default pipeline draws its own
"UnityEyes" (this module's flat :func:`shade_synthetic`) and its own stand-in "MPIIGaze"
(:mod:`simgan.gaze.standin`). Both draw the *same* geometry from the same sampler, so a
label means the same thing in both domains and the only gap between them is appearance.

Conventions (MPIIGaze normalised data): camera x right, y down, z away from the camera; a gaze
vector points roughly toward the camera (z < 0); ``pitch = asin(-y)``, ``yaw = atan2(-x, -z)``.
Projection is orthographic: the pupil centre lands at ``eyeball + R * (g_x, g_y)`` in pixels
(u right, v down, pixel centres at integers). Head pose is an in-plane roll applied to the whole
eye (drawing and labels alike); the eyelids follow the gaze pitch *in the head frame*.
The inner corner (caruncle) is on the image left, as for a left eye in MPIIGaze's normalised
images (which mirror right eyes to look the same).

Domains: an :class:`EyeDomain` says what differs between the images drawn from the shared
geometry: its seed code, gaze distribution, shading and (optionally) head pose. This module
knows only the synthetic one (:func:`synthetic_domain`); the stand-in real appearances are
composed in :mod:`simgan.gaze.standin` and :mod:`simgan.gaze.mpii_like`, which apply their own
shading (and pose) to the fields rasterised here.

Speed: everything is vectorised numpy over a block of images with implicit shapes
(signed distances, anti-aliased by a 1 px ramp). Determinism: images are produced in fixed
blocks of :data:`BLOCK` images, block ``b`` seeded by ``(seed, domain code, b)``, so image ``i``
has the same bytes whatever range or chunking it was rendered with (index-range sharding,
:func:`simgan.core.stream.block_range`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from functools import partial

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from simgan.core.fields import StrictParams
from simgan.core.stream import block_range
from simgan.gaze.metrics import pitchyaw_to_vector

BLOCK = 256
"""Images per random block. Changing it changes every rendered byte: it is part of the format."""
SUB_BLOCK = 64
"""Images rasterised and shaded at once: small enough that the ~30 live (B, H, W) float32
temporaries stay in the CPU cache (a whole block at once is memory-bound, ~2x slower).
Also part of the format: the shaders draw their random numbers sub-block by sub-block."""

DOMAIN_SYNTHETIC = 1
"""Seed code of the synthetic domain (part of the format; the stand-in's is in its module)."""
N_LANDMARKS = 16
_F = np.float32


# ----------------------------------------------------------------------------- parameters


class GazeDistribution(StrictParams):
    """Gaze angles in the camera frame, independent truncated normals in degrees."""

    pitch_mean_deg: float = Field(0.0, ge=-60.0, le=60.0)
    pitch_std_deg: float = Field(12.0, ge=0.0, le=60.0)
    yaw_mean_deg: float = Field(0.0, ge=-60.0, le=60.0)
    yaw_std_deg: float = Field(15.0, ge=0.0, le=60.0)
    max_abs_deg: float = Field(35.0, gt=0.0, le=60.0)

    @model_validator(mode="after")
    def _means_inside_bounds(self) -> GazeDistribution:
        for key in ("pitch_mean_deg", "yaw_mean_deg"):
            if abs(getattr(self, key)) >= self.max_abs_deg:
                raise ValueError(f"{key}: |mean| must be below max_abs_deg={self.max_abs_deg}")
        return self


class HeadPose(GazeDistribution):
    """Head pose of a domain whose heads turn (pitch, yaw) as well as roll, in degrees.

    The pitch/yaw are the face direction in the roll-free camera frame, independent truncated
    normals as the gaze's. The eyelids follow the gaze *relative to the head*, so a domain whose
    people look down with a lowered head (laptop users) has more open lids than the camera-frame
    gaze alone would give; see :func:`turn_head` for what the turn does to the drawing.
    """

    pitch_std_deg: float = Field(0.0, ge=0.0, le=60.0)
    yaw_std_deg: float = Field(0.0, ge=0.0, le=60.0)
    roll_std_deg: float = Field(4.0, ge=0.0, le=30.0, description="in-plane head roll")


class EyeRenderParams(StrictParams):
    """Image size, gaze distribution and geometric jitter of the eye model.

    Lengths are fractions of the image width or of the eyeball radius R, so a different image
    size (say MPIIGaze's 36 x 60) keeps the same eye proportions.
    """

    height: int = Field(35, ge=16, le=1024)
    width: int = Field(55, ge=16, le=1024)
    gaze: GazeDistribution = Field(default_factory=GazeDistribution)
    eyeball_radius_frac: float = Field(0.27, gt=0.05, le=0.5, description="R / image width")
    scale_jitter: float = Field(0.08, ge=0.0, le=0.4, description="uniform +- fraction of R")
    translate_std_frac: float = Field(0.025, ge=0.0, le=0.2, description="of the image width")
    roll_std_deg: float = Field(4.0, ge=0.0, le=30.0, description="in-plane head roll")
    eyeball_offset_std: float = Field(
        0.015, ge=0.0, le=0.2, description="eyeball centre vs lid corners, in R (person jitter)"
    )
    iris_radius_ratio: float = Field(0.5, gt=0.2, lt=0.8, description="iris radius / R")
    iris_radius_jitter: float = Field(0.04, ge=0.0, le=0.2)
    pupil_ratio_min: float = Field(0.3, gt=0.05, lt=0.9, description="pupil radius / iris radius")
    pupil_ratio_max: float = Field(0.55, gt=0.05, lt=0.9)
    eye_halfwidth_ratio: float = Field(1.22, gt=0.6, le=2.0, description="lid opening / 2R")
    eye_halfwidth_jitter: float = Field(0.05, ge=0.0, le=0.3)
    lid_upper: float = Field(0.42, gt=0.0, le=1.0, description="upper lid above centre, in R")
    lid_lower: float = Field(0.45, gt=0.0, le=1.0, description="lower lid below centre, in R")
    lid_follow_upper: float = Field(0.8, ge=0.0, le=1.5, description="d(upper lid)/d(R sin p)")
    lid_follow_lower: float = Field(0.25, ge=0.0, le=1.5, description="d(lower lid)/d(R sin p)")
    openness_std: float = Field(0.1, ge=0.0, le=0.5)
    blink_prob: float = Field(0.03, ge=0.0, le=1.0, description="share of nearly closed eyes")
    texture_strength: float = Field(
        0.3, ge=0.0, le=3.0,
        description="faint skin/iris texture, like a simulator's own textures; 0 = flat",
    )

    @model_validator(mode="after")
    def _pupil_range(self) -> EyeRenderParams:
        if self.pupil_ratio_min > self.pupil_ratio_max:
            raise ValueError("pupil_ratio_min must not exceed pupil_ratio_max")
        return self


# ----------------------------------------------------------------------------- geometry


@dataclass
class EyeGeometry:
    """Per-image geometry of one block (all arrays (B,) float64 unless noted).

    Head-frame lengths are in pixels relative to the eyeball centre (a right, b down before
    the roll is applied).
    """

    eyeball_u: np.ndarray
    eyeball_v: np.ndarray
    radius: np.ndarray
    roll: np.ndarray  # radians, image = eyeball + Rot(roll) @ head
    gaze: np.ndarray  # (B, 3) camera frame (the label)
    gaze_head: np.ndarray  # (B, 3) head frame (drives drawing)
    pitch: np.ndarray
    yaw: np.ndarray
    iris_r: np.ndarray
    pupil_r: np.ndarray
    open_a: np.ndarray  # opening centre, head frame
    open_b: np.ndarray
    halfwidth: np.ndarray
    tilt: np.ndarray  # corner line slope term (px at t = 1)
    h_up: np.ndarray
    h_lo: np.ndarray
    skew_up: np.ndarray
    skew_lo: np.ndarray

    def __len__(self) -> int:
        return int(self.radius.shape[0])

    def slice(self, lo: int, hi: int) -> EyeGeometry:
        """The geometries of images lo..hi (views, no copies)."""
        return EyeGeometry(**{f.name: getattr(self, f.name)[lo:hi] for f in fields(self)})


def truncated_normal(
    rng: np.random.Generator, mean: float, std: float, bound: float, n: int
) -> np.ndarray:
    """Normal(mean, std) restricted to [-bound, bound]: up to 8 vectorised redraws, then clip.

    Redrawing only the rejected entries keeps the result deterministic for a given generator.
    """
    x = rng.normal(mean, std, n)
    for _ in range(8):
        bad = np.abs(x) > bound
        if not bad.any():
            break
        x[bad] = rng.normal(mean, std, int(bad.sum()))
    return np.clip(x, -bound, bound)


def _sample_angles(
    dist: GazeDistribution, rng: np.random.Generator, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """(pitch, yaw) in radians from a truncated-normal angle distribution (pitch drawn first)."""
    lim = np.deg2rad(dist.max_abs_deg)
    pitch = truncated_normal(
        rng, np.deg2rad(dist.pitch_mean_deg), np.deg2rad(dist.pitch_std_deg), lim, n
    )
    yaw = truncated_normal(rng, np.deg2rad(dist.yaw_mean_deg), np.deg2rad(dist.yaw_std_deg), lim, n)
    return pitch, yaw


def _sample_roll(std_deg: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """In-plane head roll (radians), a normal clipped at 2.5 std."""
    roll_lim = np.deg2rad(max(2.5 * std_deg, 1e-6))
    return np.clip(rng.normal(0.0, np.deg2rad(std_deg), n), -roll_lim, roll_lim)


def _eye_in_head(gh: np.ndarray, head_pitch: np.ndarray, head_yaw: np.ndarray) -> np.ndarray:
    """The gaze relative to a turned head (angles subtracted): what the eyelids follow."""
    pitch = np.arcsin(np.clip(-gh[:, 1], -1.0, 1.0)) - head_pitch
    yaw = np.arctan2(-gh[:, 0], -gh[:, 2]) - head_yaw
    return pitchyaw_to_vector(pitch, yaw)


def _sample_lids(
    p: EyeRenderParams, rng: np.random.Generator, radius: np.ndarray, lid_dir: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lid heights and skews (h_up, h_lo, skew_up, skew_lo) following ``lid_dir``, the gaze
    in the head frame; blinks close the upper lid onto the lower one."""
    n = radius.shape[0]
    openness = np.clip(rng.normal(1.0, p.openness_std, n), 0.6, 1.4)
    blink = rng.uniform(0, 1, n) < p.blink_prob
    closure = np.where(blink, rng.uniform(0.55, 1.0, n), 0.0)
    sin_ph = -lid_dir[:, 1]  # sin(pitch) in the head frame
    h_up = radius * (p.lid_upper + p.lid_follow_upper * sin_ph) * openness
    h_lo = radius * (p.lid_lower - p.lid_follow_lower * sin_ph)
    h_lo = np.maximum(h_lo, 0.15 * radius)
    # a blink brings the upper lid down to the lower one.
    h_up = (1.0 - closure) * h_up - closure * 0.95 * h_lo
    h_up = np.maximum(h_up, 0.03 * radius - h_lo)  # keep a sliver of opening
    # the upper lid peaks nasally, the lower lid temporally; both lean toward the gaze.
    skew_up = rng.normal(-0.12, 0.05, n) + 0.35 * lid_dir[:, 0]
    skew_lo = rng.normal(0.12, 0.05, n) + 0.25 * lid_dir[:, 0]
    return h_up, h_lo, np.clip(skew_up, -0.4, 0.4), np.clip(skew_lo, -0.4, 0.4)


def sample_geometry(
    params: EyeRenderParams,
    gaze: GazeDistribution,
    rng: np.random.Generator,
    n: int,
    pose: HeadPose | None = None,
) -> EyeGeometry:
    """Draw ``n`` eye geometries; the draw order is fixed (it is part of the byte format).

    ``pose`` None: a frontal head with ``params.roll_std_deg`` (no extra draws, so the bytes
    of domains without a pose never change); else see :class:`HeadPose`.
    """
    p = params
    pitch, yaw = _sample_angles(gaze, rng, n)
    g = pitchyaw_to_vector(pitch, yaw)
    roll = _sample_roll(p.roll_std_deg if pose is None else pose.roll_std_deg, rng, n)
    c, s = np.cos(roll), np.sin(roll)
    # head frame = Rot(-roll) camera frame (rotation about the optical axis).
    gh = np.stack([c * g[:, 0] + s * g[:, 1], -s * g[:, 0] + c * g[:, 1], g[:, 2]], axis=1)
    head = None if pose is None else _sample_angles(pose, rng, n)

    scale = 1.0 + rng.uniform(-p.scale_jitter, p.scale_jitter, n)
    radius = p.eyeball_radius_frac * p.width * scale
    t_std = p.translate_std_frac * p.width
    shift = np.clip(rng.normal(0.0, 1.0, (n, 2)), -2.5, 2.5) * t_std
    eyeball_u = (p.width - 1) / 2.0 + shift[:, 0]
    eyeball_v = (p.height - 1) / 2.0 + shift[:, 1]

    iris_r = radius * (p.iris_radius_ratio + rng.uniform(-1, 1, n) * p.iris_radius_jitter)
    pupil_r = iris_r * rng.uniform(p.pupil_ratio_min, p.pupil_ratio_max, n)

    off = np.clip(rng.normal(0.0, 1.0, (n, 2)), -3, 3) * (p.eyeball_offset_std * radius)[:, None]
    halfwidth = radius * (
        p.eye_halfwidth_ratio + rng.uniform(-1, 1, n) * p.eye_halfwidth_jitter
    )
    open_a = off[:, 0] - 0.03 * radius  # the opening sits slightly nasal (image left)
    open_b = off[:, 1] + 0.02 * radius
    # outer corner (t = +1, image right) a little higher than the inner one (b is down).
    tilt = -radius * np.clip(rng.normal(0.06, 0.04, n), -0.05, 0.18)
    lid_dir = gh if head is None else _eye_in_head(gh, *head)
    h_up, h_lo, skew_up, skew_lo = _sample_lids(p, rng, radius, lid_dir)
    geom = EyeGeometry(
        eyeball_u=eyeball_u, eyeball_v=eyeball_v, radius=radius, roll=roll, gaze=g,
        gaze_head=gh, pitch=pitch, yaw=yaw, iris_r=iris_r, pupil_r=pupil_r, open_a=open_a,
        open_b=open_b, halfwidth=halfwidth, tilt=tilt, h_up=h_up, h_lo=h_lo, skew_up=skew_up,
        skew_lo=skew_lo,
    )
    return geom if head is None else turn_head(geom, *head)


def turn_head(geom: EyeGeometry, head_pitch: np.ndarray, head_yaw: np.ndarray) -> EyeGeometry:
    """The eye of a head turned by (pitch, yaw), re-centred on its lid opening.

    Orthographic view of a turned head: the lid opening, about 0.9 R in front of the eyeball
    centre, moves by 0.9 R times the face direction's (x, y), and the opening foreshortens by
    the cosines. As MPIIGaze's normalisation crops around the eye corners, the crop follows
    the opening and the eyeball centre moves the other way (labels move with it: they are
    drawn from the eyeball centre and the camera-frame gaze).
    """
    face = pitchyaw_to_vector(head_pitch, head_yaw)
    da, db = 0.9 * geom.radius * face[:, 0], 0.9 * geom.radius * face[:, 1]
    c, s = np.cos(geom.roll), np.sin(geom.roll)
    cos_p, cos_y = np.cos(head_pitch), np.cos(head_yaw)
    return replace(
        geom,
        eyeball_u=geom.eyeball_u - (c * da - s * db),
        eyeball_v=geom.eyeball_v - (s * da + c * db),
        open_a=geom.open_a + da,
        open_b=geom.open_b + db,
        halfwidth=geom.halfwidth * cos_y,
        tilt=geom.tilt * cos_y,
        h_up=geom.h_up * cos_p,
        h_lo=geom.h_lo * cos_p,
    )


def _lid_shape(t: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Lid profile S(t) = (1 - t^2)(1 + k t): zero at both corners, peak shifted by k."""
    return (1.0 - t * t) * (1.0 + k * t)


def landmarks(geom: EyeGeometry) -> np.ndarray:
    """16 interior-margin points (B, 16, 2) in image (u, v), like UnityEyes interior_margin_2d.

    Order: inner corner, along the upper lid to the outer corner (9 points), then back along
    the lower lid (7 interior points).
    """
    t_up = np.linspace(-1.0, 1.0, 9)
    t_lo = np.linspace(1.0, -1.0, 9)[1:-1]
    up = _lid_shape(t_up[None, :], geom.skew_up[:, None])
    lo = _lid_shape(t_lo[None, :], geom.skew_lo[:, None])
    a = np.concatenate([t_up[None, :] * geom.halfwidth[:, None],
                        t_lo[None, :] * geom.halfwidth[:, None]], axis=1)
    t_all = np.concatenate([np.broadcast_to(t_up, up.shape), np.broadcast_to(t_lo, lo.shape)], 1)
    base_b = geom.open_b[:, None] + geom.tilt[:, None] * t_all
    b = base_b + np.concatenate([-geom.h_up[:, None] * up, geom.h_lo[:, None] * lo], axis=1)
    a = a + geom.open_a[:, None]
    c, s = np.cos(geom.roll)[:, None], np.sin(geom.roll)[:, None]
    u = geom.eyeball_u[:, None] + c * a - s * b
    v = geom.eyeball_v[:, None] + s * a + c * b
    return np.stack([u, v], axis=2)


def labels_frame(geom: EyeGeometry, start: int, pupil_visible: np.ndarray) -> pd.DataFrame:
    """Per-image label table: ids, gaze, pupil/iris/eyeball geometry, 16 lid landmarks."""
    g = geom.gaze
    cols: dict[str, np.ndarray] = {
        "id": np.arange(start, start + len(geom), dtype=np.int64),
        "gaze_x": g[:, 0],
        "gaze_y": g[:, 1],
        "gaze_z": g[:, 2],
        "pitch": geom.pitch,
        "yaw": geom.yaw,
        "pupil_u": geom.eyeball_u + geom.radius * g[:, 0],
        "pupil_v": geom.eyeball_v + geom.radius * g[:, 1],
        "pupil_radius": geom.pupil_r,
        "iris_radius": geom.iris_r,
        "eyeball_u": geom.eyeball_u,
        "eyeball_v": geom.eyeball_v,
        "eyeball_radius": geom.radius,
        "head_roll": geom.roll,
    }
    lm = landmarks(geom)
    for k in range(N_LANDMARKS):
        cols[f"lm{k:02d}_u"] = lm[:, k, 0]
        cols[f"lm{k:02d}_v"] = lm[:, k, 1]
    cols["pupil_visible"] = pupil_visible
    frame = pd.DataFrame(cols)
    return frame.astype({c: np.float64 for c in frame.columns if c != "id"})


# ----------------------------------------------------------------------------- rasterising


@dataclass
class EyeFields:
    """Per-pixel fields of one block, (B, H, W) float32: what both shaders compose from."""

    u: np.ndarray  # (1, H, W) image coordinates
    v: np.ndarray
    a: np.ndarray  # head-frame coordinates relative to the eyeball centre
    b: np.ndarray
    t: np.ndarray  # along the lid opening, -1 inner corner .. +1 outer corner
    e_up: np.ndarray  # signed px distance to the upper lid, > 0 above it (skin side)
    e_lo: np.ndarray  # signed px distance to the lower lid, > 0 below it
    m_open: np.ndarray  # coverage of the lid opening (eyeball visible)
    m_iris: np.ndarray
    m_pupil: np.ndarray
    m_caruncle: np.ndarray
    iris_rho2: np.ndarray  # squared normalised iris radius (0 centre, 1 limbus)
    pupil_visible: np.ndarray  # (B,) float64


def _col(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=_F)[:, None, None]


def _cover(d: np.ndarray) -> np.ndarray:
    """Pixel coverage from a signed distance (negative inside): a 1 px linear ramp."""
    return np.clip(0.5 - d, 0.0, 1.0)


def rasterize(geom: EyeGeometry, height: int, width: int) -> EyeFields:
    """Evaluate the implicit eye shapes on the pixel grid of a block."""
    vv, uu = np.meshgrid(np.arange(height, dtype=_F), np.arange(width, dtype=_F), indexing="ij")
    u, v = uu[None], vv[None]
    du, dv = u - _col(geom.eyeball_u), v - _col(geom.eyeball_v)
    c, s = _col(np.cos(geom.roll)), _col(np.sin(geom.roll))
    a = c * du + s * dv
    b = c * dv - s * du

    # eyelids: vertical offsets to two curves b(t), made distances by the slope normaliser.
    inv_hw = _col(1.0 / geom.halfwidth)
    t = (a - _col(geom.open_a)) * inv_hw
    one_t2 = 1.0 - t * t
    base = _col(geom.open_b) + _col(geom.tilt) * t
    tilt_hw = _col(geom.tilt / geom.halfwidth)

    def lid(h: np.ndarray, k: np.ndarray, sign: float) -> np.ndarray:
        """Signed distance to base + sign * h * S(t), positive on the skin side."""
        kt1 = 1.0 + _col(k) * t
        shape = one_t2 * kt1
        slope = _col(k * sign * h / geom.halfwidth) * one_t2
        slope -= _col(2.0 * sign * h / geom.halfwidth) * t * kt1
        slope += tilt_hw
        off = b - base
        off -= _col(sign * h) * shape
        off /= np.sqrt(1.0 + slope * slope)
        return off if sign > 0 else -off

    e_up = lid(geom.h_up, geom.skew_up, -1.0)
    e_lo = lid(geom.h_lo, geom.skew_lo, 1.0)
    m_open = _cover(np.maximum(e_up, e_lo))

    # iris and pupil: discs on the eyeball, seen as ellipses foreshortened along the gaze.
    gh = geom.gaze_head
    rad = geom.radius
    gxy = np.hypot(gh[:, 0], gh[:, 1])
    nx = np.where(gxy > 1e-9, gh[:, 0] / np.maximum(gxy, 1e-9), 1.0)
    ny = np.where(gxy > 1e-9, gh[:, 1] / np.maximum(gxy, 1e-9), 0.0)
    qa = a - _col(rad * gh[:, 0])
    qb = b - _col(rad * gh[:, 1])
    q_n = qa * _col(nx) + qb * _col(ny)
    q_t = qb * _col(nx) - qa * _col(ny)
    x_n = q_n * _col(1.0 / (geom.iris_r * np.abs(gh[:, 2])) ** 2)
    x_t = q_t * _col(1.0 / geom.iris_r**2)
    rho2 = q_n * x_n + q_t * x_t
    grad = 2.0 * np.sqrt(x_n * x_n + x_t * x_t) + 1e-6
    m_iris = _cover((rho2 - 1.0) / grad)
    k2 = (geom.iris_r / geom.pupil_r) ** 2
    m_pupil = _cover((rho2 * _col(k2) - 1.0) / (grad * _col(k2)))

    # caruncle: a small blob in the inner corner (image left); distance to first order.
    rx, ry = 0.17 * rad, 0.24 * rad
    ca = a - _col(geom.open_a - 0.9 * geom.halfwidth)
    cb = b - _col(geom.open_b - geom.tilt * 0.9 + 0.05 * rad)
    ca *= _col(1.0 / rx)
    cb *= _col(1.0 / ry)
    r2 = ca * ca + cb * cb
    m_car = _cover((r2 - 1.0) * _col(0.5 * rx)) * m_open

    pupil_area = m_pupil.sum(axis=(1, 2), dtype=np.float64)
    pupil_seen = (m_pupil * m_open).sum(axis=(1, 2), dtype=np.float64)
    visible = np.where(pupil_area > 0, pupil_seen / np.maximum(pupil_area, 1e-9), 0.0)
    return EyeFields(
        u=u, v=v, a=a, b=b, t=t, e_up=e_up, e_lo=e_lo, m_open=m_open, m_iris=m_iris,
        m_pupil=m_pupil, m_caruncle=m_car, iris_rho2=rho2, pupil_visible=visible,
    )


def band(e: np.ndarray, width: float | np.ndarray) -> np.ndarray:
    """Anti-aliased coverage of 0 < e < width (a strip along a curve)."""
    return np.clip(0.5 + e, 0.0, 1.0) - np.clip(0.5 + e - width, 0.0, 1.0)


def corner_fade(t: np.ndarray, reach: float = 1.1) -> np.ndarray:
    """1 along the lids, fading to 0 just past the corners (|t| > 1)."""
    return np.clip((reach - np.abs(t)) * 8.0, 0.0, 1.0)


def bump(x: np.ndarray) -> np.ndarray:
    """Smooth compact bump (1 - x^2)^2 on |x| < 1: a Gaussian look-alike without exp (speed)."""
    y = np.maximum(1.0 - x * x, 0.0)
    return y * y


# ----------------------------------------------------------------------------- shading


def smooth121(x: np.ndarray) -> np.ndarray:
    """Separable [1 2 1]/4 blur over the last two axes (edge-replicated)."""
    p = np.pad(x, ((0, 0), (1, 1), (0, 0)), mode="edge")
    x = 0.25 * p[:, :-2] + 0.5 * p[:, 1:-1] + 0.25 * p[:, 2:]
    p = np.pad(x, ((0, 0), (0, 0), (1, 1)), mode="edge")
    return 0.25 * p[:, :, :-2] + 0.5 * p[:, :, 1:-1] + 0.25 * p[:, :, 2:]


def fine_texture(rng: np.random.Generator, n: int, height: int, width: int) -> np.ndarray:
    """Zero-mean, unit-variance pixel-scale texture (B, H, W) float32, bounded by about 4.6.

    Uniform noise (variance 1/12) smoothed by [1 2 1]^2 (gain 0.375): uniform draws cost a
    third of Gaussian ones and the smoothing makes the result near-Gaussian anyway.
    """
    x = smooth121(rng.random((n, height, width), dtype=_F) - 0.5)
    x *= _F(np.sqrt(12.0) / 0.375)
    return x


def shade_synthetic(
    geom: EyeGeometry, f: EyeFields, rng: np.random.Generator, texture: float = 0.3
) -> np.ndarray:
    """Clean "simulator" shading (UnityEyes-like): (B, H, W) float32 in [0, 255].

    Flat colours, simple spherical falloff on the sclera, a faint texture (``texture``; the
    refiner needs *some* texture to turn into real skin and sensor grain: a deterministic
    network cannot invent stochastic detail from perfectly flat input). The pupil is always
    the darkest thing in the image (tests locate it by intensity).
    """
    n = len(geom)
    height, width = f.u.shape[1:]
    skin = _col(rng.uniform(135, 200, n))
    sclera = _col(rng.uniform(200, 240, n))
    iris = _col(rng.uniform(85, 145, n))
    pupil = _col(rng.uniform(10, 32, n))
    margin = _col(rng.uniform(60, 85, n))
    vgrad = _col(rng.uniform(-0.12, 0.12, n))
    radius = _col(geom.radius)
    tex = fine_texture(rng, n, height, width) if texture > 0 else np.zeros_like(f.m_open)

    eye = sclera * (1.0 - 0.22 * (f.a * f.a + f.b * f.b) / (radius * radius))
    iris_img = iris * (1.0 - 0.2 * np.minimum(f.iris_rho2, 1.0) + (0.15 * texture) * tex)
    eye += (iris_img - eye) * f.m_iris
    eye += (pupil - eye) * f.m_pupil
    eye += (0.8 * skin + 10.0 - eye) * f.m_caruncle

    crease = bump((f.e_up - 0.45 * radius) * (1.0 / (0.2 * radius)))
    img = skin * (1.0 + vgrad * (f.v - height / 2.0) / height - 0.12 * crease
                  + (0.04 * texture) * tex)
    img += (eye - img) * f.m_open
    m_margin = band(f.e_up, 1.2) * corner_fade(f.t)
    img += (margin - img) * m_margin
    return img


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0.0, 255.0).astype(np.uint8)


# ----------------------------------------------------------------------------- public API


Shader = Callable[[EyeGeometry, EyeFields, np.random.Generator], np.ndarray]
"""Geometry and rasterised fields of a sub-block, the block's generator -> (B, H, W) float32
grey levels in [0, 255]."""


@dataclass(frozen=True)
class EyeDomain:
    """What differs between two domains drawn from the shared geometry: the seed ``code``
    (blocks of different domains never share random numbers), the ``gaze`` distribution, the
    ``shade`` function and the head ``pose`` (None: frontal heads with ``params.roll_std_deg``,
    as the synthetic domain)."""

    code: int
    gaze: GazeDistribution
    shade: Shader
    pose: HeadPose | None = None


def synthetic_domain(params: EyeRenderParams) -> EyeDomain:
    """The simulator's domain: ``params.gaze`` and the flat :func:`shade_synthetic`."""
    return EyeDomain(DOMAIN_SYNTHETIC, params.gaze,
                     partial(shade_synthetic, texture=params.texture_strength))


def render_block(
    params: EyeRenderParams, seed: int, block: int, domain: EyeDomain | None = None
) -> tuple[np.ndarray, pd.DataFrame]:
    """Render block ``block`` (images ``block*BLOCK .. +BLOCK``) of a domain (None: the
    synthetic one) in full."""
    domain = domain or synthetic_domain(params)
    rng = np.random.default_rng([int(seed), domain.code, int(block)])
    geom = sample_geometry(params, domain.gaze, rng, BLOCK, domain.pose)
    images = np.empty((BLOCK, params.height, params.width), dtype=np.uint8)
    visible = np.empty(BLOCK, dtype=np.float64)
    for lo in range(0, BLOCK, SUB_BLOCK):
        sub = geom.slice(lo, lo + SUB_BLOCK)
        flds = rasterize(sub, params.height, params.width)
        images[lo : lo + SUB_BLOCK] = to_uint8(domain.shade(sub, flds, rng))
        visible[lo : lo + SUB_BLOCK] = flds.pupil_visible
    return images, labels_frame(geom, block * BLOCK, visible)


def render_eyes(
    params: EyeRenderParams,
    n: int,
    seed: int,
    start: int = 0,
    domain: EyeDomain | None = None,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Images ``start .. start+n`` of a domain (None: synthetic): ((n, H, W) uint8, labels).

    The bytes of image i depend only on (params, domain, seed, i).
    """
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0 (got n={n}, start={start})")
    if n == 0:
        labels = labels_frame(
            sample_geometry(params, params.gaze, np.random.default_rng(0), 0), start, np.zeros(0)
        )
        return np.zeros((0, params.height, params.width), np.uint8), labels
    return next(iter_eye_chunks(params, n, seed, n, start, domain))


def iter_eye_chunks(
    params: EyeRenderParams,
    n_total: int,
    seed: int,
    chunk_size: int,
    start: int = 0,
    domain: EyeDomain | None = None,
) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
    """Yield ``(images, labels)`` chunks covering ``start .. start+n_total`` in order.

    For :func:`simgan.core.dataset.write_dataset`: peak memory is one chunk (plus one block).
    """
    if n_total < 0 or start < 0:
        raise ValueError(f"n_total and start must be >= 0 (got {n_total}, {start})")
    render = partial(render_block, params, seed, domain=domain)
    return block_range(render, BLOCK, start, n_total, chunk_size)
