"""A harder stand-in real eye domain, ``mpii_like``: what real MPIIGaze normalised crops add.

Why: the default stand-in (:mod:`simgan.gaze.standin`) differs from the simulator by local
appearance only, and a refiner closes that gap. Real MPIIGaze crops did not let it: the refiner
became the identity or merged iris and pupil. Those crops are histogram-equalised (so shadows go
black and noise is amplified), show an eyebrow at the top edge, dark skin folds above the upper
lid, heavy lashes, sometimes a glasses frame, and come from people looking down at a laptop with
their head turned a little. This domain draws all of that on the shared geometry, so the
project's own tests and profiles (``configs/hard-standin.yaml``) exercise a gap that large.

Labels keep their meaning: the geometry (pupil, iris, lids) comes from
:func:`simgan.gaze.render.sample_geometry` with this domain's gaze distribution and head pose
(:class:`simgan.gaze.render.HeadPose`); everything here only shades it. Everything is vectorised
over a sub-block (B, H, W); per-image parameters are drawn from the block's generator in a fixed
order and whatever the probabilities (part of the byte format: with ``glasses_prob`` 0 the
images are those with glasses, minus the glasses).
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from simgan.core.fields import StrictParams
from simgan.core.ingest.common import equalize_batch
from simgan.gaze.render import (
    EyeDomain,
    EyeFields,
    EyeGeometry,
    GazeDistribution,
    HeadPose,
    band,
    bump,
    corner_fade,
    fine_texture,
    to_uint8,
)
from simgan.gaze.standin import (
    check_ranges,
    gaussian_blur,
    glints,
    smooth_noise,
    triangular_noise,
)

_F = np.float32
DOMAIN_MPII_LIKE = 3
"""Seed code of the mpii_like domain (part of the format)."""


def _mpii_gaze() -> GazeDistribution:
    """MPIIGaze: yaw mostly within +-20 deg, pitch -20..+5 deg (looking down at a laptop)."""
    return GazeDistribution(pitch_mean_deg=-8.0, pitch_std_deg=6.0, yaw_mean_deg=0.0,
                            yaw_std_deg=9.0, max_abs_deg=25.0)


def _mpii_head() -> HeadPose:
    """Head slightly lowered and turned; normalisation leaves little roll."""
    return HeadPose(pitch_mean_deg=-4.0, pitch_std_deg=5.0, yaw_mean_deg=0.0, yaw_std_deg=8.0,
                    max_abs_deg=25.0, roll_std_deg=2.0)


_RANGES = ("skin", "sclera", "iris", "pupil", "brow_offset", "brow_thickness",
           "glasses_thickness", "blur_sigma", "noise_std")


class MpiiLikeParams(StrictParams):
    """Appearance and pose of the ``mpii_like`` domain; each strength at 0 switches it off.

    ``x_min``/``x_max`` pairs are ranges drawn uniformly per image; grey levels are 0-255
    before the equalisation (which keeps only their order). Lengths in R are fractions of the
    eyeball radius, above the lid opening's centre.
    """

    kind: Literal["mpii_like"] = "mpii_like"
    gaze: GazeDistribution = Field(default_factory=_mpii_gaze)
    head: HeadPose = Field(default_factory=_mpii_head)
    skin_min: float = Field(90.0, ge=0.0, le=255.0)
    skin_max: float = Field(190.0, ge=0.0, le=255.0)
    sclera_min: float = Field(140.0, ge=0.0, le=255.0)
    sclera_max: float = Field(215.0, ge=0.0, le=255.0)
    iris_min: float = Field(20.0, ge=0.0, le=255.0)
    iris_max: float = Field(70.0, ge=0.0, le=255.0)
    pupil_min: float = Field(3.0, ge=0.0, le=255.0)
    pupil_max: float = Field(15.0, ge=0.0, le=255.0)
    texture_strength: float = Field(1.0, ge=0.0, le=5.0, description="skin/iris texture")
    light_strength: float = Field(0.3, ge=0.0, le=1.0, description="low-frequency lighting")
    fold_strength: float = Field(0.45, ge=0.0, le=1.0, description="lid crease darkening")
    under_eye_shadow: float = Field(0.2, ge=0.0, le=1.0)
    brow_prob: float = Field(0.85, ge=0.0, le=1.0, description="share of crops with a brow")
    brow_offset_min: float = Field(1.05, ge=0.5, le=3.0, description="brow centre, in R")
    brow_offset_max: float = Field(1.6, ge=0.5, le=3.0)
    brow_thickness_min: float = Field(0.15, gt=0.0, le=1.0, description="half-thickness, R")
    brow_thickness_max: float = Field(0.35, gt=0.0, le=1.0)
    brow_strength: float = Field(0.7, ge=0.0, le=1.0, description="max darkening")
    lash_strength: float = Field(0.9, ge=0.0, le=1.0)
    lash_length_frac: float = Field(0.09, gt=0.0, le=0.3, description="of the image width")
    glasses_prob: float = Field(0.2, ge=0.0, le=1.0, description="share of crops with a frame")
    glasses_thickness_min: float = Field(1.5, gt=0.0, le=10.0, description="frame, px")
    glasses_thickness_max: float = Field(4.0, gt=0.0, le=10.0)
    glasses_darkness: float = Field(0.85, ge=0.0, le=1.0)
    glasses_reflection: float = Field(40.0, ge=0.0, le=255.0, description="lens streak, max")
    glint_prob: float = Field(0.6, ge=0.0, le=1.0)
    second_glint_prob: float = Field(0.2, ge=0.0, le=1.0)
    glint_intensity: float = Field(180.0, ge=0.0, le=255.0)
    glint_radius_px: float = Field(0.8, gt=0.0, le=5.0)
    blur_sigma_min: float = Field(0.5, ge=0.0, le=3.0)
    blur_sigma_max: float = Field(1.4, ge=0.0, le=3.0)
    noise_std_min: float = Field(1.5, ge=0.0, le=100.0, description="read noise, grey levels")
    noise_std_max: float = Field(6.0, ge=0.0, le=100.0)
    shot_noise: float = Field(0.05, ge=0.0, le=5.0, description="noise variance per grey level")
    equalize: bool = Field(True, description="per-image histogram equalisation, as MPIIGaze")

    @model_validator(mode="after")
    def _ranges(self) -> MpiiLikeParams:
        check_ranges(self, _RANGES)
        return self


def mpii_like_domain(app: MpiiLikeParams) -> EyeDomain:
    """The mpii_like domain: the shared geometry with ``app.gaze`` and ``app.head``, shaded by
    :func:`shade_mpii_like`."""
    return EyeDomain(DOMAIN_MPII_LIKE, app.gaze, partial(shade_mpii_like, app=app), app.head)


# ----------------------------------------------------------------------------- shading


def _col(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=_F)[:, None, None]


class _Draw:
    """Per-image uniform draws from the block's generator, as (B, 1, 1) float32 columns."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        self.rng, self.n = rng, n

    def __call__(self, lo: float, hi: float) -> np.ndarray:
        return _col(self.rng.uniform(lo, hi, self.n))

    def chance(self, p: float) -> np.ndarray:
        """1 with probability p, else 0 (one uniform drawn whatever p)."""
        return _col(self.rng.uniform(0.0, 1.0, self.n) < p)


def shade_mpii_like(
    geom: EyeGeometry, f: EyeFields, rng: np.random.Generator, app: MpiiLikeParams
) -> np.ndarray:
    """Compose an mpii_like eye: (B, H, W) float32 grey levels, equalised if ``app.equalize``."""
    draw = _Draw(rng, len(geom))
    height, width = f.u.shape[1:]
    fine = fine_texture(rng, len(geom), height, width)
    coarse = smooth_noise(rng, len(geom), height, width, (4, 6))
    eye = _eyeball(geom, f, draw, app, fine, coarse)
    img = _skin(geom, f, draw, app, fine, coarse)
    img += (eye - img) * f.m_open
    img *= 1.0 - _lashes(f, draw, app, width)
    img *= 1.0 - _brow(geom, f, draw, app, fine)
    light = rng.uniform(-0.6, 0.6, (len(geom), 2))
    img *= 1.0 + app.light_strength * (coarse * 0.5 + _ramp(f, light, height, width))
    img += glints(geom, f, rng, app, light)
    img = _glasses(geom, f, draw, app, img)
    return _camera(img, draw, app)


def _ramp(f: EyeFields, light: np.ndarray, height: int, width: int) -> np.ndarray:
    """Brightness ramp toward the light, -1..1 across the crop."""
    ramp = _col(light[:, 0] / width) * (f.u - width / 2.0)
    ramp += _col(light[:, 1] / height) * (f.v - height / 2.0)
    return 2.0 * ramp


def _eyeball(geom: EyeGeometry, f: EyeFields, draw: _Draw, app: MpiiLikeParams,
             fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Greyish, shadowed sclera; dark textured iris with a darker limbus; black pupil."""
    radius = _col(geom.radius)
    sclera, iris, pupil = (draw(app.sclera_min, app.sclera_max),
                           draw(app.iris_min, app.iris_max), draw(app.pupil_min, app.pupil_max))
    tex = app.texture_strength
    r2 = (f.a * f.a + f.b * f.b) * (1.0 / (radius * radius))
    eye = sclera * (1.0 - 0.35 * r2 + 0.03 * tex * coarse)
    limbus = draw(0.2, 0.5) * np.clip((f.iris_rho2 - 0.5) * 2.0, 0.0, 1.0)
    eye += (iris * (1.0 + draw(0.1, 0.3) * tex * fine - limbus) - eye) * f.m_iris
    eye += (pupil * (1.0 + 0.2 * tex * fine) - eye) * f.m_pupil
    eye += (draw(0.55, 0.8) * sclera - eye) * f.m_caruncle
    # the upper lid and its lashes shade the top of the eyeball: falloff 1/(1 + d/w)^2.
    fall = 1.0 + np.maximum(-f.e_up, 0.0) * (1.0 / draw(1.5, 3.5))
    return eye * (1.0 - draw(0.3, 0.6) / (fall * fall))


def _skin(geom: EyeGeometry, f: EyeFields, draw: _Draw, app: MpiiLikeParams,
          fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Textured skin with the lid crease, the dark fold above it and a shadow under the eye."""
    radius = _col(geom.radius)
    skin = draw(app.skin_min, app.skin_max)
    tex = app.texture_strength * draw(0.02, 0.06)
    crease_h = radius * draw(0.3, 0.55)
    crease = bump((f.e_up - crease_h) * (1.0 / (radius * draw(0.15, 0.3))))
    # the fold: skin between lashes and crease, and the hollow above it, in its shadow
    fold = np.clip(1.0 - f.e_up * (1.0 / (crease_h + radius * draw(0.2, 0.5))), 0.0, 1.0)
    fold *= np.clip(f.e_up + 1.0, 0.0, 1.0)
    under = bump((f.e_lo - radius * draw(0.25, 0.5)) * (1.0 / (radius * draw(0.3, 0.5))))
    dark = app.fold_strength * (draw(0.35, 0.8) * crease + draw(0.2, 0.6) * fold)
    dark += app.under_eye_shadow * draw(0.3, 1.0) * under
    return skin * (1.0 + tex * fine + 0.08 * coarse) * (1.0 - np.minimum(dark, 0.9))


def _lashes(f: EyeFields, draw: _Draw, app: MpiiLikeParams, width: int) -> np.ndarray:
    """Darkening (0..1) by a thick upper lash line, a comb of lashes and the lower lashes."""
    line = band(f.e_up + draw(0.3, 1.2), draw(1.5, 2.8)) * corner_fade(f.t, 1.0)
    lash_len = app.lash_length_frac * width * draw(0.7, 1.3)
    above = np.maximum(f.e_up, 0.0)
    phase = (f.a + (0.9 * f.t + draw(-0.2, 0.2)) * above) * (1.0 / draw(1.4, 2.2)) + draw(0, 1)
    strands = np.abs(2.0 * (phase - np.floor(phase)) - 1.0)
    reach = np.clip(1.0 - f.e_up / lash_len, 0.0, 1.0)
    comb = band(f.e_up, lash_len) * reach * strands * corner_fade(f.t, 1.05)
    lower = band(f.e_lo, draw(0.8, 1.6)) * corner_fade(f.t, 0.8)
    dark = draw(0.6, 0.9) * line + draw(0.5, 1.0) * comb + draw(0.1, 0.35) * lower
    return app.lash_strength * np.minimum(dark, 1.0)


def _brow(geom: EyeGeometry, f: EyeFields, draw: _Draw, app: MpiiLikeParams,
          fine: np.ndarray) -> np.ndarray:
    """Darkening (0..1) by an eyebrow: an arched band of near-horizontal hairs above the eye,
    thicker at its nasal end (image left) and fading past its temporal end."""
    radius = _col(geom.radius)
    on = draw.chance(app.brow_prob)
    x = (f.a - _col(geom.open_a) - radius * draw(-0.3, 0.3)) * (1.0 / (radius * draw(1.6, 2.2)))
    centre = _col(geom.open_b) - radius * (draw(app.brow_offset_min, app.brow_offset_max)
                                           + draw(0.05, 0.2) * (1.0 - x * x) + draw(-0.1, 0.1) * x)
    half = radius * draw(app.brow_thickness_min, app.brow_thickness_max) * (1.0 - 0.3 * x)
    soft = draw(1.0, 2.5)
    cover = np.clip((half - np.abs(f.b - centre)) / soft + 0.5, 0.0, 1.0)
    cover *= np.clip((1.2 - x) * 3.0, 0.0, 1.0)
    phase = (f.b - centre + draw(-0.25, 0.25) * f.a) * (1.0 / draw(1.2, 2.0)) + draw(0, 1)
    hairs = 0.6 + 0.4 * np.abs(2.0 * (phase - np.floor(phase)) - 1.0) + 0.1 * fine
    return app.brow_strength * on * draw(0.6, 1.0) * np.clip(cover * hairs, 0.0, 1.0)


def _glasses(geom: EyeGeometry, f: EyeFields, draw: _Draw, app: MpiiLikeParams,
             img: np.ndarray) -> np.ndarray:
    """A glasses frame on a share of the crops: an arc of a large circle (the lens rim) that
    crosses the crop around the eye, darkening along the rim, with a faint reflection streak
    on the lens side. The rim's nearest point to the eye lies inside the crop."""
    height, width = f.u.shape[1:]
    on = draw.chance(app.glasses_prob)
    phi = draw(-np.pi, np.pi)
    cu, cv = _col(geom.eyeball_u), _col(geom.eyeball_v)
    dx, dy = np.cos(phi), np.sin(phi)
    # distance from the eye centre to the crop border along phi; the rim sits 65-95 % of it
    to_border = np.minimum(np.where(dx > 0, width - 1 - cu, cu) / np.maximum(np.abs(dx), 1e-3),
                           np.where(dy > 0, height - 1 - cv, cv) / np.maximum(np.abs(dy), 1e-3))
    d = to_border * draw(0.65, 0.95)
    rc = width * draw(0.8, 2.5)  # rim radius of curvature
    ou, ov = cu + dx * (d - rc), cv + dy * (d - rc)  # circle centre, the eye inside
    du, dv = f.u - ou, f.v - ov
    dist = np.sqrt(du * du + dv * dv) - rc  # < 0 on the lens side
    half = 0.5 * draw(app.glasses_thickness_min, app.glasses_thickness_max)
    rim = np.clip(half - np.abs(dist) + 0.5, 0.0, 1.0)
    lens = np.clip(0.5 - dist, 0.0, 1.0)
    psi = draw(0.0, np.pi)
    streak = bump((f.u * np.cos(psi) + f.v * np.sin(psi) - draw(-10.0, 60.0))
                  * (1.0 / draw(2.0, 5.0)))
    refl = draw(0.3, 1.0) * app.glasses_reflection * streak * lens
    framed = (img * (1.0 - draw(0.0, 0.1) * lens) + refl) * (1.0 - app.glasses_darkness
                                                               * draw(0.7, 1.0) * rim)
    return img + on * (framed - img)


def _camera(img: np.ndarray, draw: _Draw, app: MpiiLikeParams) -> np.ndarray:
    """Optics blur, sensor noise, the normalisation warp's resampling blur, 8-bit
    quantisation and MPIIGaze's per-image histogram equalisation."""
    n, height, width = img.shape
    img = gaussian_blur(img, draw(app.blur_sigma_min, app.blur_sigma_max)[:, 0, 0])
    read = draw(app.noise_std_min, app.noise_std_max)
    sigma = np.sqrt(read * read + app.shot_noise * np.clip(img, 0.0, 255.0))
    img += sigma * triangular_noise(draw.rng, (n, height, width))
    img = gaussian_blur(img, draw(0.3, 0.6)[:, 0, 0], radius=2)
    out = to_uint8(img)
    if app.equalize:
        out = equalize_batch(out)
    return out.astype(_F)
