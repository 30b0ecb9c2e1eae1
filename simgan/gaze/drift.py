"""Label preservation for eyes: how far refinement moves the pupil.

The paper checked by hand that refinement keeps the gaze label (pupil centre moved
1.1 +/- 0.8 px at 55 px eye width). Here the same check runs on every image: the pupil/iris
centre is estimated in the synthetic image and in its refined version with the same method and
the same search window, and the distance between the two estimates is the drift. Whatever
bias the estimator has (eyelid occlusion, iris vs pupil) is shared by both images and cancels;
what remains is what refinement changed.

Estimator, all array ops over a batch (no per-image Python loop):
1. cut a window around the prior (the synthetic label's pupil centre);
2. seed at the darkest (3x3-smoothed) pixel near the prior; try ``levels`` thresholds spread
   between the seed's value and the window's bright end (90th percentile), i.e. relative to
   the local intensity distribution;
3. at every threshold, take the seed's connected dark region in the raw window (one
   ``ndimage.label`` call for the whole batch x levels stack, 4-connectivity per image);
4. among admissible regions (not a speck, at most pupil-sized, not touching the window border,
   not a thin lid/lash line) keep the darkest plateau, i.e. the first level from the dark end
   whose area barely changes between neighbouring levels (MSER-like; falls back to the most
   stable one). That is the pupil, the structure whose position is the label. In the refined
   image :func:`pupil_drift` instead keeps the admissible region closest in area to the one
   chosen in its synthetic source, so both measure the same structure even when refinement
   changes the contrast;
5. soft mask: interior pixels count 1 (holes from glints filled), rim pixels by coverage
   (linear between the mean inside and the mean just outside), which gives sub-pixel centres;
6. image moments of the soft mask: centroid = centre, second moments = ellipse axes/angle.

The drift has a noise floor (an ideal refiner that only changes appearance still shows some,
from glints and blur on 2-5 px pupils): read drifts against it, not against zero. Its measured
accuracy and floor are in docs/science.md ("Pupil drift: accuracy and noise floor").

Coordinates: u = column, v = row, integer values at pixel centres.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

Window = int | tuple[int, int]

DEFAULT_WINDOW: tuple[int, int] = (21, 25)
"""(height, width) of the search window: a pupil (r <= 6 px), a few px of prior error and
enough surround for the bright end of the local intensity distribution in a 35x55 eye."""

_CROSS = np.zeros((3, 3, 3), dtype=bool)
_CROSS[1] = [[0, 1, 0], [1, 1, 1], [0, 1, 0]]  # 4-connectivity within each image, none across


class PupilParams(BaseModel):
    """Knobs of the pupil blob search (defaults tuned for 35x55 uint8 eyes, pupil r 2-5 px)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed_radius: float = Field(4.0, gt=0, description="px from the prior to the seed pixel")
    min_contrast: float = Field(30.0, ge=0, description="gray levels, seed to window's p90")
    min_area: float = Field(6.0, ge=1, description="px; smaller regions are specks")
    max_radius: float = Field(
        6.5, gt=0, description="px; area cap pi r^2. Pupil scale; raise it to track the iris"
    )
    max_elongation: float = Field(3.0, ge=1, description="major/minor axis; lid lines exceed")
    levels: int = Field(16, ge=4, le=64, description="thresholds tried between seed and p90")
    plateau_growth: float = Field(
        0.3, ge=0, description="darkest level whose area grows less than this between neighbours"
    )
    fill_holes: bool = Field(True, description="fill glint holes inside the chosen region")
    chunk_size: int = Field(1024, ge=1, description="images per vectorised step (memory)")


@dataclass(frozen=True)
class PupilFit:
    """Per-image ellipse fits; rows where ``valid`` is False hold NaN (contrast always set)."""

    centre: np.ndarray  # (N, 2) float64, (u, v) in image pixels
    axes: np.ndarray  # (N, 2) semi-axes (major, minor) in px of the equivalent uniform ellipse
    angle: np.ndarray  # (N,) major-axis angle in radians, from +u towards +v
    area: np.ndarray  # (N,) soft-mask area in px
    region_px: np.ndarray  # (N,) pixel count of the chosen thresholded region
    contrast: np.ndarray  # (N,) window's p90 minus the seed value (gray levels)
    valid: np.ndarray  # (N,) bool


def fit_pupil_ellipses(
    images: np.ndarray,
    prior_uv: ArrayLike,
    window: Window = DEFAULT_WINDOW,
    params: PupilParams | None = None,
    *,
    target_px: ArrayLike | None = None,
) -> PupilFit:
    """Fit the dark pupil/iris blob near ``prior_uv`` (N, 2) in each (N, H, W) uint8 image.

    ``target_px`` (N,): instead of the darkest plateau, keep the admissible region whose
    pixel count is closest to this (NaN entries mark images to skip). ``images`` may be a
    memmap; it is read ``params.chunk_size`` images at a time.
    """
    params = params or PupilParams()
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
    n, height, width = images.shape
    prior = np.asarray(prior_uv, dtype=np.float64).reshape(n, 2)
    target = None if target_px is None else np.asarray(target_px, dtype=np.float64).reshape(n)
    wh, ww = (window, window) if isinstance(window, int) else window
    win = (min(int(wh), height), min(int(ww), width))
    step = params.chunk_size
    parts = [
        _fit_chunk(
            np.asarray(images[s : s + step]),
            prior[s : s + step],
            win,
            params,
            None if target is None else target[s : s + step],
        )
        for s in range(0, n, step)
    ]
    if not parts:
        return _empty_fit()
    return PupilFit(
        **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(PupilFit)}
    )


def estimate_pupil_centres(
    images: np.ndarray,
    prior_uv: ArrayLike,
    window: Window = DEFAULT_WINDOW,
    params: PupilParams | None = None,
) -> np.ndarray:
    """(N, 2) pupil centres (u, v) in px; NaN rows where no blob was found (closed eyes)."""
    return fit_pupil_ellipses(images, prior_uv, window, params).centre


def pupil_drift(
    synthetic: np.ndarray,
    refined: np.ndarray,
    prior_uv: ArrayLike,
    window: Window = DEFAULT_WINDOW,
    params: PupilParams | None = None,
) -> dict[str, float | int | np.ndarray]:
    """Distance (px) between the blob centres in refined and in synthetic images.

    Both use the synthetic label as the window prior; the refined image is fitted to the
    region size found in its synthetic source (same structure, see module doc).
    Returns mean, std (ddof=0), median over ``n_valid`` pairs; ``n`` all pairs;
    ``n_invalid`` = n - n_valid, split into ``n_no_blob`` (no blob in the synthetic image:
    closed eyes, excluded by design) and ``n_lost`` (blob in the synthetic image but none
    in the refined one: refinement destroyed it, a label-preservation failure to watch);
    ``distances``: (N,) per image, NaN where excluded (drop it before writing JSON).
    """
    if synthetic.shape != refined.shape:
        raise ValueError(f"shape mismatch: {synthetic.shape} vs {refined.shape}")
    fs = fit_pupil_ellipses(synthetic, prior_uv, window, params)
    fr = fit_pupil_ellipses(refined, prior_uv, window, params, target_px=fs.region_px)
    d = np.linalg.norm(fr.centre - fs.centre, axis=1)  # NaN wherever either fit is missing
    ok = np.isfinite(d)
    n_valid = int(ok.sum())
    nan = float("nan")
    return {
        "mean": float(d[ok].mean()) if n_valid else nan,
        "std": float(d[ok].std()) if n_valid else nan,
        "median": float(np.median(d[ok])) if n_valid else nan,
        "n": int(d.size),
        "n_valid": n_valid,
        "n_invalid": int(d.size - n_valid),
        "n_no_blob": int((~fs.valid).sum()),
        "n_lost": int((fs.valid & ~fr.valid).sum()),
        "distances": d,
    }


def _fit_chunk(
    images: np.ndarray,
    prior: np.ndarray,
    win: tuple[int, int],
    params: PupilParams,
    target: np.ndarray | None,
) -> PupilFit:
    """One chunk of :func:`fit_pupil_ellipses`; every step is an array op over the batch."""
    if images.dtype != np.uint8:
        raise TypeError(f"pupil fitting expects uint8 eye images, got {images.dtype}")
    b, height, width = images.shape
    wh, ww = win
    idx = np.arange(b)

    # 1. Window around the prior, shifted to stay inside the image (no padding artefacts).
    prior_ok = np.isfinite(prior).all(axis=1)
    p = np.where(prior_ok[:, None], prior, [(width - 1) / 2, (height - 1) / 2])
    top = np.clip(np.rint(p[:, 1]).astype(np.int64) - wh // 2, 0, height - wh)
    left = np.clip(np.rint(p[:, 0]).astype(np.int64) - ww // 2, 0, width - ww)
    rows = top[:, None] + np.arange(wh)
    cols = left[:, None] + np.arange(ww)
    raw = images[idx[:, None, None], rows[:, :, None], cols[:, None, :]].astype(np.float32)
    smooth = ndimage.uniform_filter(raw, size=(1, 3, 3), mode="nearest")
    yy = np.arange(wh, dtype=np.float32)[:, None]
    xx = np.arange(ww, dtype=np.float32)[None, :]

    # 2. Seed = darkest smoothed pixel near the prior; levels span seed .. window's p90.
    pv = (p[:, 1] - top)[:, None, None]
    pu = (p[:, 0] - left)[:, None, None]
    near = (yy - pv) ** 2 + (xx - pu) ** 2 <= params.seed_radius**2
    score = np.where(near, smooth, np.inf).reshape(b, -1)
    seed = score.argmin(axis=1)
    dark = score[idx, seed]
    contrast = np.percentile(smooth.reshape(b, -1), 90, axis=1) - dark
    frac = np.arange(1, params.levels, dtype=np.float32) / params.levels
    k = frac.size
    thr = dark[:, None] + contrast[:, None] * frac  # (b, K)

    # 3. The seed's connected dark region at every level, labelled in one call.
    below = raw[:, None] <= thr[:, :, None, None]  # (b, K, wh, ww)
    labels, _ = ndimage.label(below.reshape(b * k, wh, ww), structure=_CROSS)
    labels = labels.reshape(b, k, wh * ww)
    seed_label = labels[idx[:, None], np.arange(k)[None, :], seed[:, None]]
    region = (labels == seed_label[..., None]) & (seed_label[..., None] > 0)  # 0 = background
    region = region.reshape(b, k, wh, ww)

    # 4. Choose a level: the darkest plateau among admissible regions, or the target_px match.
    area = region.sum(axis=(2, 3)).astype(np.float64)
    border = np.ones((wh, ww), dtype=bool)
    border[1:-1, 1:-1] = False
    touches = (region & border).any(axis=(2, 3))
    _, _, _, major, minor, _ = _moments(region.astype(np.float32), yy, xx)
    admissible = (
        (area >= params.min_area)
        & (area <= np.pi * params.max_radius**2)
        & ~touches
        & (major <= params.max_elongation * np.maximum(minor, 1e-6))
    )
    if target is None:
        cost = np.full_like(area, np.inf)
        cost[:, 1:-1] = (area[:, 2:] - area[:, :-2]) / np.maximum(area[:, 1:-1], 1.0)
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            cost = np.abs(np.log(np.maximum(area, 1.0) / target[:, None]))
        cost = np.where(np.isfinite(cost), cost, np.inf)
    cost = np.where(admissible, cost, np.inf)
    best = cost.argmin(axis=1)
    if target is None:  # prefer the darkest plateau (the pupil) over the flattest one
        calm = cost < params.plateau_growth
        best = np.where(calm.any(axis=1), calm.argmax(axis=1), best)
    found = np.isfinite(cost[idx, best])
    hard = region[idx, best]  # (b, wh, ww)
    if params.fill_holes:  # glints on the pupil; in-plane structure keeps images apart
        hard = ndimage.binary_fill_holes(hard, structure=_CROSS)

    # 5. Soft mask: interior counts 1, the rim by coverage between inside and outside levels.
    inner = ndimage.binary_erosion(hard, structure=_CROSS)
    grown = ndimage.binary_dilation(hard, structure=_CROSS)
    ring = ndimage.binary_dilation(grown, structure=_CROSS) & ~grown
    has_inner = inner.any(axis=(1, 2))[:, None, None]
    level_in = _masked_mean(raw, np.where(has_inner, inner, hard))
    level_out = _masked_mean(raw, ring)
    span = np.maximum(level_out - level_in, 1.0)[:, None, None]
    cover = np.clip((level_out[:, None, None] - raw) / span, 0.0, 1.0)
    soft = np.where(inner, 1.0, np.where(grown, cover, 0.0))  # float64 for the final moments

    # 6. Moments of the soft mask -> centroid and ellipse.
    m00, cx, cy, ax_major, ax_minor, angle = _moments(soft, yy, xx)
    valid = (
        prior_ok
        & found
        & (contrast >= params.min_contrast)
        & (m00 >= params.min_area)
        & (ax_major <= params.max_elongation * np.maximum(ax_minor, 1e-6))
    )

    def masked(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return np.where(valid.reshape((-1,) + (1,) * (x.ndim - 1)), x, np.nan)

    return PupilFit(
        centre=masked(np.stack([cx + left, cy + top], axis=1)),
        axes=masked(np.stack([ax_major, ax_minor], axis=1)),
        angle=masked(angle),
        area=masked(m00),
        region_px=masked(area[idx, best]),
        contrast=contrast.astype(np.float64),
        valid=valid,
    )


def _moments(
    w: np.ndarray, yy: np.ndarray, xx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mass, centroid (x, y), semi-axes (major, minor) and angle of weights over (..., H, W).

    Raw moments come from one matmul against a (H*W, 6) basis (fast on big level stacks);
    coordinates are taken about the window centre to keep float32 cancellation small.
    A uniform ellipse with semi-axis a has variance a^2 / 4 along that axis, so the axes of
    the ellipse with the same second moments are 2 sqrt(eigenvalues of the covariance).
    """
    oy, ox = (yy.size - 1) / 2, (xx.size - 1) / 2
    y, x = np.broadcast_arrays(yy - oy, xx - ox)
    basis = np.stack([np.ones_like(x), x, y, x * x, y * y, x * y], axis=-1).reshape(-1, 6)
    raw = w.reshape(*w.shape[:-2], -1) @ basis.astype(w.dtype)
    m00 = raw[..., 0]
    safe = np.maximum(m00, 1e-12)
    cx, cy = raw[..., 1] / safe, raw[..., 2] / safe
    mu20 = np.maximum(raw[..., 3] / safe - cx * cx, 0.0)
    mu02 = np.maximum(raw[..., 4] / safe - cy * cy, 0.0)
    mu11 = raw[..., 5] / safe - cx * cy
    half_tr = (mu20 + mu02) / 2
    root = np.sqrt(((mu20 - mu02) / 2) ** 2 + mu11**2)
    major = 2.0 * np.sqrt(half_tr + root)
    minor = 2.0 * np.sqrt(np.maximum(half_tr - root, 0.0))
    angle = 0.5 * np.arctan2(2 * mu11, mu20 - mu02)
    return m00, cx + ox, cy + oy, major, minor, angle


def _masked_mean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean of ``x`` over ``mask`` per image (leading axis); NaN where the mask is empty."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mask, x, 0).sum(axis=(-2, -1)) / mask.sum(axis=(-2, -1))


def _empty_fit() -> PupilFit:
    z1, z2 = np.zeros(0), np.zeros((0, 2))
    return PupilFit(z2, z2, z1, z1, z1, z1, np.zeros(0, dtype=bool))
