"""The stand-in "real" depth domain: the hand renderer's geometry seen by a Kinect-like sensor.

Why: without NYU, the pipeline needs a target domain whose labels mean the same as the
synthetic ones but whose depth looks the way a structured-light sensor's depth does. The paper
names jagged, non-smooth object boundaries as the main source of noise in real depth; the other
artefacts here are the usual ones of Kinect v1 (Khoshelham & Elberink 2012; Nguyen et al.
2012), all produced from the clean depth (mm) of :func:`simgan.hand.render.render_depth`
(:func:`standin_domain` hands this sensor model, with the stand-in's pose and arm, to the
renderer, which knows nothing of it):

- a scene behind the hand (body/wall, ``wall_offset_*`` mm behind the crop centre, outside the
  crop cube, so the crop removes it except where pixels mix with it) and an arm that continues
  off-frame (geometry: ``arm_length_mm`` instead of the synthetic stub);
- jagged boundaries: nearest-neighbour resampling through a random, spatially correlated
  displacement field of about ``edge_jag_px`` sensor pixels;
- projector shadows: a pixel is missing where a nearer surface within the projector-camera
  disparity difference hides it from the projector (baseline ``baseline_mm``);
- missing depth near edges (blob-shaped dropouts) and on steep surfaces (grazing incidence);
- flying pixels: boundary pixels whose depth is a mix of the hand and what lies behind it;
- depth-dependent noise and quantisation: noise and 1/8-pixel steps in *disparity*
  f b / z, so both grow with z^2 as in Kinect v1, then whole millimetres as in NYU's PNGs.

Artefact sizes are given in sensor (640x480 Kinect) pixels and converted per image with the
crop scale, so a 64 px crop sees the same physical artefacts as a 224 px one, only smaller.
Everything is vectorised over a sub-block (B, H, W); per-image parameters come from the
block's generator in a fixed order (part of the byte format). The refiner never sees this
module's parameters, only its images.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from pydantic import Field, model_validator

from simgan.core.fields import StrictParams
from simgan.hand.joints import NYU_FX
from simgan.hand.render import HandDomain, HandGeometry, HandPoseDistribution

_F = np.float32
DOMAIN_REAL = 4
"""Seed code of the stand-in real domain (part of the format)."""


def _real_pose() -> HandPoseDistribution:
    """NYU-like articulation: more open hands, less in-plane rotation than the simulator."""
    return HandPoseDistribution(curl_power=1.8, roll_max_deg=45.0)


class RealDepthParams(StrictParams):
    """Geometry differences and Kinect-like artefacts of the stand-in real depth domain.

    Calibration (64 px crops, the default hourglass, 8k training images, 1k test images): a
    synthetic-trained estimator has 67.0% of joints within 5 px on synthetic images and 49.3%
    on this domain, an estimator trained on this domain 65.5%; with half-strength artefacts
    (jag 1.5 px, hole prob 0.5 over 2 px, flying 0.5, noise 0.05-0.15 px) the synthetic-trained
    one still had 62.9%, too small a gap to measure a refiner against seed noise. Edge holes
    matter most (alone: 49.7%), then jagged edges; depth noise alone changes little.
    """

    pose: HandPoseDistribution = Field(default_factory=_real_pose)
    arm_length_mm: float = Field(400.0, ge=0.0, le=1000.0, description="continues off-frame")
    wall_offset_min_mm: float = Field(250.0, ge=0.0, le=5000.0, description="behind the centre")
    wall_offset_max_mm: float = Field(700.0, ge=0.0, le=5000.0)
    baseline_mm: float = Field(75.0, gt=0.0, le=300.0, description="projector-camera")
    shadows: bool = True
    edge_jag_px: float = Field(2.5, ge=0.0, le=10.0, description="boundary jitter, sensor px")
    edge_hole_prob: float = Field(0.8, ge=0.0, le=1.0, description="dropout at hand edges")
    edge_hole_width_px: float = Field(4.0, ge=0.0, le=20.0, description="sensor px")
    grazing_slope: float = Field(3.0, gt=0.0, le=100.0, description="tan(incidence) for dropout")
    grazing_drop_prob: float = Field(0.5, ge=0.0, le=1.0)
    flying_prob: float = Field(0.8, ge=0.0, le=1.0, description="per sensor px of boundary")
    disparity_noise_min: float = Field(0.1, ge=0.0, le=2.0, description="std, sensor px")
    disparity_noise_max: float = Field(0.3, ge=0.0, le=2.0)
    disparity_step: float = Field(0.125, ge=0.0, le=1.0, description="Kinect: 1/8 px; 0 = off")

    @model_validator(mode="after")
    def _ranges(self) -> RealDepthParams:
        pairs = (("wall_offset_min_mm", "wall_offset_max_mm"),
                 ("disparity_noise_min", "disparity_noise_max"))
        for lo, hi in pairs:
            a, b = getattr(self, lo), getattr(self, hi)
            if a > b:
                raise ValueError(f"{lo}={a} must not exceed {hi}={b}")
        return self


def standin_domain(p: RealDepthParams) -> HandDomain:
    """The stand-in Kinect domain: the shared geometry with the stand-in's pose distribution
    and arm, seen through :func:`apply_kinect_artifacts`."""
    return HandDomain(DOMAIN_REAL, p.pose, p.arm_length_mm, partial(apply_kinect_artifacts, p=p))


def _col(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=_F)[:, None, None]


def _shift(x: np.ndarray, dv: int, du: int, fill: float) -> np.ndarray:
    """x[v + dv, u + du] with ``fill`` outside the image (no wrap-around)."""
    out = np.full_like(x, fill)
    h, w = x.shape[1:]
    out[:, max(0, -dv) : h - max(0, dv), max(0, -du) : w - max(0, du)] = x[
        :, max(0, dv) : h - max(0, -dv), max(0, du) : w - max(0, -du)
    ]
    return out


def _smooth(x: np.ndarray) -> np.ndarray:
    """[1 2 1]^2 / 16 blur over the last two axes (edge-replicated)."""
    p = np.pad(x, ((0, 0), (1, 1), (0, 0)), mode="edge")
    x = 0.25 * p[:, :-2] + 0.5 * p[:, 1:-1] + 0.25 * p[:, 2:]
    p = np.pad(x, ((0, 0), (0, 0), (1, 1)), mode="edge")
    return 0.25 * p[:, :, :-2] + 0.5 * p[:, :, 1:-1] + 0.25 * p[:, :, 2:]


_SMOOTH_GAIN = {0: 1.0, 1: 6.0 / 16.0, 2: 70.0 / 256.0}
"""Standard deviation of white noise after ``passes`` [1 2 1]^2 blurs (per unit input std)."""


def correlated_noise(rng: np.random.Generator, shape: tuple[int, int, int], passes: int = 1
                     ) -> np.ndarray:
    """Zero-mean, unit-variance noise correlated over a few pixels (near-Gaussian).

    Uniform draws (a third of the cost of normal ones) blurred ``passes`` times by [1 2 1]^2;
    the sum of many uniforms is near-Gaussian anyway. Scaled analytically, not per image.
    """
    x = rng.random(shape, dtype=_F) - _F(0.5)
    for _ in range(passes):
        x = _smooth(x)
    x *= _F(np.sqrt(12.0) / _SMOOTH_GAIN[passes])
    return x


def depth_edges(z: np.ndarray, jump_mm: float) -> np.ndarray:
    """Pixels with a 4-neighbour more than ``jump_mm`` away in depth (either side of a jump)."""
    edge = np.zeros(z.shape, dtype=bool)
    for dv, du in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        nb = _shift(z, dv, du, np.nan)
        with np.errstate(invalid="ignore"):
            edge |= np.abs(nb - z) > jump_mm
    return edge


def dilate(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    """Binary dilation by a 3x3 cross, ``steps`` times."""
    for _ in range(steps):
        m = mask.copy()
        for dv, du in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            m |= _shift(mask, dv, du, 0)
        mask = m
    return mask


def apply_kinect_artifacts(
    depth_mm: np.ndarray, geom: HandGeometry, rng: np.random.Generator, p: RealDepthParams
) -> np.ndarray:
    """Clean depth (B, H, W) mm (inf = no surface) -> sensor-like depth in whole mm, 0 = no
    reading. ``geom`` supplies per-image crop intrinsics (focal length, crop scale, centre)."""
    n, h, w = depth_mm.shape
    k = _col(geom.crop_scale)  # crop px per sensor px
    f = _col(geom.fu)  # crop focal length, px
    ref = _col(geom.ref_depth)

    # scene behind the hand: what a pixel sees when it misses the hand.
    wall = ref + _col(rng.uniform(p.wall_offset_min_mm, p.wall_offset_max_mm, n))
    z = np.where(np.isfinite(depth_mm), depth_mm, wall).astype(_F)

    # jagged boundaries: nearest-neighbour resampling through a correlated displacement field.
    amp = p.edge_jag_px * k
    vv, uu = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ju = np.rint(correlated_noise(rng, (n, h, w), 1) * amp).astype(np.int64)
    jv = np.rint(correlated_noise(rng, (n, h, w), 1) * amp).astype(np.int64)
    src_u = np.clip(uu[None] + ju, 0, w - 1)
    src_v = np.clip(vv[None] + jv, 0, h - 1)
    z = z.reshape(n, -1)[np.arange(n)[:, None], (src_v * w + src_u).reshape(n, -1)].reshape(
        n, h, w
    )

    # flying pixels: on both sides of a large jump, a mix of the near and the far surface.
    # Sensor artefacts a pixel wide cover a crop pixel with probability ~ crop px per sensor px.
    edge = depth_edges(z, 40.0)
    near_nb = z.copy()
    far_nb = z.copy()
    for dv, du in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        nb = _shift(z, dv, du, np.nan)
        near_nb = np.fmin(near_nb, nb)
        far_nb = np.fmax(far_nb, nb)
    fly = edge & (rng.random((n, h, w), dtype=_F) < p.flying_prob * np.minimum(k, 1.0))
    mix = rng.random((n, h, w), dtype=_F)
    z_fly = near_nb + mix * (far_nb - near_nb)

    missing = np.zeros((n, h, w), dtype=bool)
    # projector shadow: a nearer surface up to the disparity difference to the right hides
    # this pixel from the projector (the projector sits beside the camera along +u).
    if p.shadows:
        fb = f * _F(p.baseline_mm)  # crop px * mm
        # widest shadow that can fall inside the crop's depth range (ref +- 300 mm)
        span = fb[:, 0, 0] * (1.0 / np.maximum(ref[:, 0, 0] - 300.0, 100.0)
                              - 1.0 / (ref[:, 0, 0] + 300.0))
        max_shift = int(np.ceil(float(span.max(initial=0.0))))
        for s in range(1, min(max_shift, w - 1) + 1):
            nb = _shift(z, 0, s, np.inf)
            missing |= fb * (1.0 / nb - 1.0 / z) >= s
    # dropouts at the hand's edges (the near side of a jump), in small correlated clusters.
    hand_edge = edge & (z < far_nb - 40.0)
    blobs = correlated_noise(rng, (n, h, w), 1)
    q = np.clip(p.edge_hole_prob * np.minimum(k * p.edge_hole_width_px, 1.0), 1e-6, 1 - 1e-6)
    missing |= hand_edge & (blobs > _normal_quantile_array(1.0 - q))
    near_edge = dilate(edge, 1)
    # steep surfaces: little IR comes back at grazing incidence.
    gu = 0.5 * (_shift(z, 0, 1, np.nan) - _shift(z, 0, -1, np.nan))
    gv = 0.5 * (_shift(z, 1, 0, np.nan) - _shift(z, -1, 0, np.nan))
    slope = np.sqrt(gu * gu + gv * gv) * f / z  # tan of the incidence angle
    steep = np.nan_to_num(slope, nan=0.0) > p.grazing_slope
    missing |= steep & ~near_edge & (rng.random((n, h, w), dtype=_F) < p.grazing_drop_prob)

    z = np.where(fly, z_fly, z)
    # disparity noise (correlated over the sensor's matching window) and quantisation.
    fb_sensor = _F(NYU_FX * p.baseline_mm)  # sensor px * mm
    sigma = _col(rng.uniform(p.disparity_noise_min, p.disparity_noise_max, n))
    noise = 0.5 * rng.standard_normal((n, h, w), dtype=_F) + 0.87 * correlated_noise(
        rng, (n, h, w), 1
    )
    disp = fb_sensor / z + sigma * noise
    if p.disparity_step > 0:
        disp = np.rint(disp / _F(p.disparity_step)) * _F(p.disparity_step)
    z = np.rint(fb_sensor / np.maximum(disp, 1e-3))
    z[missing] = 0.0
    return z.astype(_F)


def _normal_quantile_array(q: np.ndarray) -> np.ndarray:
    """Standard normal quantiles, float32 (q strictly inside (0, 1))."""
    from scipy.special import ndtri

    return ndtri(np.asarray(q, dtype=np.float64)).astype(_F)
