"""The stand-in "real" eye domain: same geometry as the simulator, a different appearance model.

Why: with no MPIIGaze download, the pipeline needs a target domain whose labels mean the same as
the synthetic ones but whose look differs the way real webcam eyes differ from UnityEyes renders:
skin/iris/sclera texture, directional lighting, the upper lid's shadow, lashes, corneal glints,
optical blur, a sensor response curve (gamma, contrast), sensor noise and JPEG compression.
Nearly all of it is *local* appearance that a fully-convolutional refiner with a small
receptive field can learn; the two low-frequency effects (the light's brightness ramp and skin
blotches) are kept weak on purpose, because no local refiner can reproduce a gradient coherent
across the whole image (in a trial, a strong ramp alone added ~3 degrees to the synthetic-trained
estimator's error on this domain). The geometry (where pupil, iris and lids are) comes unchanged
from :mod:`simgan.gaze.render`: :func:`standin_domain` hands this module's gaze distribution and
shading to the renderer, which knows nothing of them. The refiner never sees this module's
parameters, only its images.

Everything is vectorised over a block (B, H, W); per-image parameters are drawn from the block's
generator after the geometry, in a fixed order (part of the byte format).
"""

from __future__ import annotations

from functools import cache, partial
from typing import Literal, Protocol

import numpy as np
import scipy.fft
from pydantic import BaseModel, Field, model_validator

from simgan.core.fields import StrictParams
from simgan.gaze.render import (
    EyeDomain,
    EyeFields,
    EyeGeometry,
    GazeDistribution,
    band,
    bump,
    corner_fade,
    fine_texture,
)

_F = np.float32
DOMAIN_REAL = 2
"""Seed code of the stand-in real domain (part of the format)."""

# ITU-T T.81 Annex K.1 luminance quantisation table (the JPEG standard's example table).
_JPEG_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float64,
)


def _real_gaze() -> GazeDistribution:
    """MPIIGaze-like: people mostly look down at a laptop screen; narrower than the simulator."""
    return GazeDistribution(
        pitch_mean_deg=-4.0, pitch_std_deg=10.0, yaw_mean_deg=2.0, yaw_std_deg=13.0,
        max_abs_deg=32.0,
    )


class RealAppearanceParams(StrictParams):
    """Appearance of the stand-in real domain (``kind: standin``, the default; the harder
    ``mpii_like`` is :class:`simgan.gaze.mpii_like.MpiiLikeParams`); each strength at 0
    switches its effect off.

    ``x_min``/``x_max`` pairs are ranges drawn uniformly per image; grey levels are 0-255.
    The defaults were tuned so that a small gaze CNN trained on the synthetic domain does
    several times worse here than one trained on this domain (see the module docstring).
    """

    kind: Literal["standin"] = "standin"
    gaze: GazeDistribution = Field(default_factory=_real_gaze)
    skin_min: float = Field(70.0, ge=0.0, le=255.0)
    skin_max: float = Field(175.0, ge=0.0, le=255.0)
    sclera_min: float = Field(150.0, ge=0.0, le=255.0)
    sclera_max: float = Field(225.0, ge=0.0, le=255.0)
    iris_min: float = Field(25.0, ge=0.0, le=255.0)
    iris_max: float = Field(95.0, ge=0.0, le=255.0)
    pupil_min: float = Field(5.0, ge=0.0, le=255.0)
    pupil_max: float = Field(22.0, ge=0.0, le=255.0)
    texture_strength: float = Field(1.0, ge=0.0, le=5.0, description="skin/iris/sclera texture")
    light_strength: float = Field(0.12, ge=0.0, le=1.0, description="max brightness ramp")
    lid_shadow: float = Field(0.3, ge=0.0, le=1.0, description="max darkening under upper lid")
    lash_strength: float = Field(0.8, ge=0.0, le=1.0)
    lash_length_frac: float = Field(0.07, gt=0.0, le=0.3, description="of the image width")
    glint_prob: float = Field(0.9, ge=0.0, le=1.0)
    second_glint_prob: float = Field(0.3, ge=0.0, le=1.0)
    glint_intensity: float = Field(200.0, ge=0.0, le=255.0)
    glint_radius_px: float = Field(0.8, gt=0.0, le=5.0)
    blur_sigma_min: float = Field(0.4, ge=0.0, le=3.0)
    blur_sigma_max: float = Field(1.3, ge=0.0, le=3.0)
    gamma_min: float = Field(0.6, gt=0.0, le=5.0, description="response curve, see response_curve")
    gamma_max: float = Field(1.6, gt=0.0, le=5.0)
    contrast_min: float = Field(0.6, gt=0.0, le=3.0)
    contrast_max: float = Field(1.1, gt=0.0, le=3.0)
    brightness_std: float = Field(10.0, ge=0.0, le=100.0)
    noise_std_min: float = Field(1.5, ge=0.0, le=100.0, description="read noise std, grey levels")
    noise_std_max: float = Field(8.0, ge=0.0, le=100.0)
    shot_noise: float = Field(0.04, ge=0.0, le=5.0, description="noise variance per grey level")
    jpeg_quality_min: int = Field(30, ge=1, le=100, description="100 = nearly lossless")
    jpeg_quality_max: int = Field(85, ge=1, le=100)

    @model_validator(mode="after")
    def _ranges(self) -> RealAppearanceParams:
        check_ranges(self, ("skin", "sclera", "iris", "pupil", "blur_sigma", "gamma", "contrast",
                            "noise_std", "jpeg_quality"))
        return self


def standin_domain(app: RealAppearanceParams) -> EyeDomain:
    """The stand-in real domain: the shared geometry with ``app.gaze``, shaded by
    :func:`shade_real`."""
    return EyeDomain(DOMAIN_REAL, app.gaze, partial(shade_real, app=app))


# ----------------------------------------------------------------------------- helpers


def _col(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=_F)[:, None, None]


@cache
def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """(n_out, n_in) linear interpolation weights: upsampling as a matrix product."""
    pos = np.linspace(0.0, n_in - 1.0, n_out)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    w = pos - lo
    m = np.zeros((n_out, n_in), dtype=_F)
    m[np.arange(n_out), lo] = 1.0 - w
    m[np.arange(n_out), lo + 1] = w
    return m


def smooth_noise(rng: np.random.Generator, n: int, height: int, width: int,
                 cells: tuple[int, int]) -> np.ndarray:
    """Unit-ish low-frequency noise: a coarse random grid linearly upsampled to (H, W)."""
    low = rng.standard_normal((n, *cells), dtype=_F)
    return _interp_matrix(height, cells[0]) @ low @ _interp_matrix(width, cells[1]).T


def gaussian_blur(x: np.ndarray, sigma: np.ndarray, radius: int = 3) -> np.ndarray:
    """Separable Gaussian blur with a per-image sigma (B,), edge-replicated borders."""
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    s = np.maximum(np.asarray(sigma, dtype=np.float64), 1e-3)[:, None]
    k = np.exp(-0.5 * (taps[None, :] / s) ** 2)
    k = (k / k.sum(axis=1, keepdims=True)).astype(_F)[:, :, None, None]  # (B, T, 1, 1)
    h, w = x.shape[1:]
    p = np.pad(x, ((0, 0), (radius, radius), (0, 0)), mode="edge")
    y = k[:, 0] * p[:, 0:h]
    for j in range(1, 2 * radius + 1):
        y += k[:, j] * p[:, j : j + h]
    p = np.pad(y, ((0, 0), (0, 0), (radius, radius)), mode="edge")
    y = k[:, 0] * p[:, :, 0:w]
    for j in range(1, 2 * radius + 1):
        y += k[:, j] * p[:, :, j : j + w]
    return y


def jpeg_like(x: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """JPEG-style 8x8 block DCT quantisation (luminance table, per-image quality 1-100).

    Vectorised over the batch and the blocks; no entropy coding (it is lossless anyway).
    """
    n, h, w = x.shape
    hp, wp = -(-h // 8) * 8, -(-w // 8) * 8
    p = np.pad(x, ((0, 0), (0, hp - h), (0, wp - w)), mode="edge") - 128.0
    blocks = p.reshape(n, hp // 8, 8, wp // 8, 8).transpose(0, 1, 3, 2, 4)
    q = np.asarray(quality, dtype=np.float64)
    scale = np.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    table = np.clip(np.floor((_JPEG_LUMA[None] * scale[:, None, None] + 50.0) / 100.0), 1, 255)
    table = table.astype(_F)[:, None, None]  # (B, 1, 1, 8, 8)
    coef = scipy.fft.dctn(blocks, axes=(-2, -1), norm="ortho", workers=1)
    coef = np.rint(coef / table) * table
    out = scipy.fft.idctn(coef, axes=(-2, -1), norm="ortho", workers=1)
    out = out.transpose(0, 1, 3, 2, 4).reshape(n, hp, wp)[:, :h, :w] + 128.0
    return out.astype(_F, copy=False)


# ----------------------------------------------------------------------------- shading


def shade_real(
    geom: EyeGeometry, f: EyeFields, rng: np.random.Generator, app: RealAppearanceParams
) -> np.ndarray:
    """Compose a stand-in real eye from the shared geometry fields: (B, H, W) float32, 0-255.

    Smooth shapes use cheap polynomial look-alikes (bump, 1/(1+x)^2, triangle waves) instead
    of exp/cos/pow: those transcendental ops cost ten times a multiply here.
    """
    n = len(geom)
    height, width = f.u.shape[1:]
    radius = _col(geom.radius)

    def uni(lo: float, hi: float) -> np.ndarray:
        return _col(rng.uniform(lo, hi, n))

    skin = uni(app.skin_min, app.skin_max)
    sclera = uni(app.sclera_min, app.sclera_max)
    iris = uni(app.iris_min, app.iris_max)
    pupil = uni(app.pupil_min, app.pupil_max)
    margin_dark = uni(0.35, 0.6)
    tex = app.texture_strength
    fine = fine_texture(rng, n, height, width)
    coarse = smooth_noise(rng, n, height, width, (5, 7))
    skin_tex = uni(0.03, 0.08) * tex
    iris_tex = uni(0.1, 0.3) * tex

    # eyeball: sclera with strong spherical falloff and blotches, textured iris, dark limbus.
    r2 = (f.a * f.a + f.b * f.b) * (1.0 / (radius * radius))
    eye = sclera * (1.0 - 0.25 * r2 + 0.02 * tex * coarse)
    limbus = uni(0.15, 0.45) * np.clip((f.iris_rho2 - 0.55) * 2.2, 0.0, 1.0)
    iris_img = iris * (1.0 + iris_tex * fine - limbus)
    eye += (iris_img - eye) * f.m_iris
    eye += (pupil * (1.0 + 0.2 * tex * fine) - eye) * f.m_pupil
    eye += (0.75 * skin + 15.0 - eye) * f.m_caruncle
    # the upper lid (and its lashes) shade the top of the eyeball: falloff 1/(1 + d/w)^2.
    fall = 1.0 + np.maximum(-f.e_up, 0.0) * (1.0 / uni(1.0, 2.5))
    eye *= 1.0 - uni(0.4, 1.0) * app.lid_shadow / (fall * fall)
    # wet, bright rim of the lower lid (waterline).
    eye += uni(0.0, 35.0) * band(-f.e_lo, 1.0) * corner_fade(f.t, 0.9)

    crease = bump((f.e_up - radius * uni(0.35, 0.6)) * (1.0 / (0.25 * radius)))
    skin_img = skin * (1.0 + skin_tex * (fine + 0.5 * coarse) - uni(0.05, 0.25) * crease)
    img = skin_img + (eye - skin_img) * f.m_open
    img *= 1.0 - margin_dark * band(f.e_up, 1.0) * corner_fade(f.t)

    # lashes: a comb of slanted dark strands growing from the upper margin, fanning outward
    # (a triangle wave across the strands, sharpened by a power).
    lash_len = app.lash_length_frac * width * uni(0.6, 1.3)
    above = np.maximum(f.e_up, 0.0)
    phase = (f.a + (0.9 * f.t + uni(-0.2, 0.2)) * above) * (1.0 / uni(1.6, 2.6)) + uni(0.0, 1.0)
    strands = np.abs(2.0 * (phase - np.floor(phase)) - 1.0)
    strands *= strands
    reach = np.clip(1.0 - f.e_up / lash_len, 0.0, 1.0)
    lashes = band(f.e_up + 0.7, lash_len + 0.7) * reach * strands * corner_fade(f.t, 1.05)
    img *= 1.0 - app.lash_strength * uni(0.5, 1.0) * lashes

    # directional light: a brightness ramp toward the light and a corneal glint from it.
    light = rng.uniform(-0.6, 0.6, (n, 2))
    ramp = _col(light[:, 0] / width) * (f.u - width / 2.0)
    ramp += _col(light[:, 1] / height) * (f.v - height / 2.0)
    img *= 1.0 + app.light_strength * 2.0 * ramp
    img += glints(geom, f, rng, app, light)
    return capture(img, rng, app)


def capture(img: np.ndarray, rng: np.random.Generator, app: RealAppearanceParams) -> np.ndarray:
    """The stand-in camera on a scene (B, H, W), 0-255: optics blur, response curve, noise,
    compression, each with its own per-image setting. Separate from the shading so that
    benchmarks/realism_tells.py can put other scenes (synthetic, refined) through it."""
    n, height, width = img.shape

    def uni(lo: float, hi: float) -> np.ndarray:
        return _col(rng.uniform(lo, hi, n))

    img = gaussian_blur(img, rng.uniform(app.blur_sigma_min, app.blur_sigma_max, n))
    img = response_curve(np.clip(img, 0.0, 255.0), uni(app.gamma_min, app.gamma_max))
    img = (img - 128.0) * uni(app.contrast_min, app.contrast_max) + 128.0
    img += _col(rng.normal(0.0, app.brightness_std, n))
    read = uni(app.noise_std_min, app.noise_std_max)
    sigma = np.sqrt(read * read + app.shot_noise * np.clip(img, 0.0, 255.0))
    img += sigma * triangular_noise(rng, (n, height, width))
    quality = rng.integers(app.jpeg_quality_min, app.jpeg_quality_max + 1, n)
    return jpeg_like(np.clip(img, 0.0, 255.0), quality)


def triangular_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean, unit-variance float32 noise, the sum of two uniforms: near-Gaussian and 3x
    cheaper to draw than normals."""
    noise = rng.random(shape, dtype=_F)
    noise += rng.random(shape, dtype=_F)
    noise -= 1.0
    noise *= _F(np.sqrt(6.0))
    return noise


def check_ranges(model: BaseModel, names: tuple[str, ...]) -> None:
    """Every ``<name>_min`` must not exceed its ``<name>_max`` (the message names both)."""
    for name in names:
        lo, hi = getattr(model, f"{name}_min"), getattr(model, f"{name}_max")
        if lo > hi:
            raise ValueError(f"{name}_min={lo} must not exceed {name}_max={hi}")


def response_curve(img: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """A gamma-like tone curve on 0-255, exact at 0, mid-grey and 255.

    255 * x / (x + c (1 - x)) with c = 2^gamma - 1 equals 255 * x^gamma at x = 0, 0.5, 1;
    a rational curve because per-pixel pow is the slowest op of the whole renderer.
    """
    c = 2.0**gamma - 1.0
    x = img * _F(1.0 / 255.0)
    return 255.0 * x / (x + c * (1.0 - x))


class GlintParams(Protocol):
    """What :func:`glints` reads (both stand-in appearances have these keys)."""

    glint_prob: float
    second_glint_prob: float
    glint_intensity: float
    glint_radius_px: float


def glints(
    geom: EyeGeometry,
    f: EyeFields,
    rng: np.random.Generator,
    app: GlintParams,
    light: np.ndarray,
) -> np.ndarray:
    """Corneal reflections of one or two lights (only where the eyeball is visible).

    The cornea is a sphere of radius 0.65 R centred 0.45 R along the gaze, so the glint moves
    with gaze at about half the pupil's rate, as real corneal reflections do.
    """
    n = len(geom)
    out = np.zeros_like(f.m_open)
    on = [rng.uniform(0, 1, n) < app.glint_prob, rng.uniform(0, 1, n) < app.second_glint_prob]
    second = light + rng.uniform(-0.5, 0.5, (n, 2))
    strength = rng.uniform(0.6, 1.0, (2, n)) * app.glint_intensity
    g, rad = geom.gaze, geom.radius
    inv_r = 1.0 / (2.2 * app.glint_radius_px)  # bump support ~ 2.2 sigma of a Gaussian
    for k, lxy in enumerate((light, second)):
        if not on[k].any():
            continue
        ldir = np.concatenate([lxy, -np.ones((n, 1))], axis=1)
        ldir /= np.linalg.norm(ldir, axis=1, keepdims=True)
        half = ldir + np.array([0.0, 0.0, -1.0])
        half /= np.linalg.norm(half, axis=1, keepdims=True)
        gu = geom.eyeball_u + rad * (0.45 * g[:, 0] + 0.65 * half[:, 0])
        gv = geom.eyeball_v + rad * (0.45 * g[:, 1] + 0.65 * half[:, 1])
        du = (f.u - _col(gu)) * inv_r
        dv = (f.v - _col(gv)) * inv_r
        y = np.maximum(1.0 - (du * du + dv * dv), 0.0)
        out += _col(np.where(on[k], strength[k], 0.0)) * (y * y)
    return out * f.m_open
