"""Procedural eye renderer: determinism/sharding, label geometry, domains, params validation."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from simgan.gaze.render import (
    BLOCK,
    N_LANDMARKS,
    EyeDomain,
    EyeRenderParams,
    GazeDistribution,
    iter_eye_chunks,
    labels_frame,
    rasterize,
    render_eyes,
    sample_geometry,
    shade_synthetic,
    to_uint8,
)
from simgan.gaze.standin import (
    RealAppearanceParams,
    gaussian_blur,
    jpeg_like,
    response_curve,
    shade_real,
    standin_domain,
)

PARAMS = EyeRenderParams()
REAL = RealAppearanceParams()
STANDIN = standin_domain(REAL)
LABEL_COLUMNS = [
    "id", "gaze_x", "gaze_y", "gaze_z", "pitch", "yaw", "pupil_u", "pupil_v", "pupil_radius",
    "iris_radius", "eyeball_u", "eyeball_v", "eyeball_radius", "head_roll",
    *[f"lm{k:02d}_{c}" for k in range(N_LANDMARKS) for c in "uv"], "pupil_visible",
]


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, pd.DataFrame]:
    return render_eyes(PARAMS, 1000, seed=7)


@pytest.fixture(scope="module")
def real() -> tuple[np.ndarray, pd.DataFrame]:
    return render_eyes(PARAMS, 1000, seed=7, domain=STANDIN)


def dark_centroid(images: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Intensity-weighted centroid (u, v) of the pixels darker than ``threshold``."""
    w = np.clip(threshold - images.astype(np.float64), 0.0, None)
    vv, uu = np.mgrid[: images.shape[1], : images.shape[2]]
    mass = np.maximum(w.sum(axis=(1, 2)), 1e-9)
    return (w * uu).sum(axis=(1, 2)) / mass, (w * vv).sum(axis=(1, 2)) / mass


def high_freq_energy(images: np.ndarray) -> np.ndarray:
    """Mean squared Laplacian per image: sharp flat renders vs blurred, noisy, textured ones."""
    x = images.astype(np.float64)
    lap = 4 * x[:, 1:-1, 1:-1] - x[:, :-2, 1:-1] - x[:, 2:, 1:-1] - x[:, 1:-1, :-2] - x[:, 1:-1, 2:]
    return (lap**2).mean(axis=(1, 2))


# ----------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("domain", [None, STANDIN], ids=["synthetic", "real"])
def test_same_seed_same_bytes_other_seed_differs(domain: EyeDomain | None) -> None:
    a, la = render_eyes(PARAMS, 300, seed=1, domain=domain)
    b, lb = render_eyes(PARAMS, 300, seed=1, domain=domain)
    c, lc = render_eyes(PARAMS, 300, seed=2, domain=domain)
    assert a.tobytes() == b.tobytes()
    pd.testing.assert_frame_equal(la, lb)
    assert (a != c).any(axis=(1, 2)).all()
    assert not np.allclose(la["pitch"], lc["pitch"])


# sha256 of images 0..511 (seed 0) and their labels (CSV, %.17g), the first lines of
# `python -m benchmarks.render_hashes`: the byte format of the default domains.
PINNED = {
    "synthetic": "0e054a5fab6d8c6a3d31b4bb6ee7ded5e9193d63490972ab5e4ed9a5e688f358",
    "standin": "4e0fdcdc09949c36eecda5ab93eb7ecb2bf97f7c9648704be8d76290c623e862",
}


@pytest.mark.parametrize("name", list(PINNED))
def test_default_domains_bytes_are_pinned(name: str) -> None:
    """Adding domains (mpii_like) or hooks (head pose) must not move a byte of these two."""
    images, labels = render_eyes(PARAMS, 512, seed=0, domain=STANDIN if name == "standin" else None)
    h = hashlib.sha256(images.tobytes())
    h.update(labels.to_csv(index=False, float_format="%.17g").encode())
    assert h.hexdigest() == PINNED[name]


def test_domains_use_different_streams(synthetic, real) -> None:
    (s, ls), (r, lr) = synthetic, real
    assert not np.allclose(ls["pitch"], lr["pitch"])
    assert (s != r).any(axis=(1, 2)).all()


@pytest.mark.parametrize("domain", [None, STANDIN], ids=["synthetic", "real"])
def test_shards_and_chunks_equal_one_render(domain: EyeDomain | None, synthetic, real) -> None:
    whole, labels = synthetic if domain is None else real
    a, la = render_eyes(PARAMS, 600, seed=7, domain=domain)
    b, lb = render_eyes(PARAMS, 400, seed=7, start=600, domain=domain)
    assert np.concatenate([a, b]).tobytes() == whole.tobytes()
    pd.testing.assert_frame_equal(pd.concat([la, lb], ignore_index=True), labels)
    for chunk in (97, BLOCK, 1000) if domain is None else (333,):
        parts = list(iter_eye_chunks(PARAMS, 1000, seed=7, chunk_size=chunk, domain=domain))
        assert all(len(p[0]) <= chunk for p in parts)
        assert np.concatenate([p[0] for p in parts]).tobytes() == whole.tobytes()
        pd.testing.assert_frame_equal(pd.concat([p[1] for p in parts], ignore_index=True), labels)


def test_offset_range_and_empty() -> None:
    full, lf = render_eyes(PARAMS, 700, seed=3)
    mid, lm = render_eyes(PARAMS, 250, seed=3, start=333)
    assert mid.tobytes() == full[333:583].tobytes()
    assert lm["id"].tolist() == list(range(333, 583))
    empty, le = render_eyes(PARAMS, 0, seed=3, start=10)
    assert empty.shape == (0, 35, 55) and list(le.columns) == LABEL_COLUMNS
    with pytest.raises(ValueError, match="start"):
        render_eyes(PARAMS, 5, seed=3, start=-1)


# ----------------------------------------------------------------------------- format, labels


def test_shape_dtype_columns(synthetic, real) -> None:
    for images, labels in (synthetic, real):
        assert images.shape == (1000, 35, 55) and images.dtype == np.uint8
        assert list(labels.columns) == LABEL_COLUMNS
        assert labels["id"].dtype == np.int64 and labels["id"].tolist() == list(range(1000))
        assert all(labels[c].dtype == np.float64 for c in LABEL_COLUMNS[1:])
        assert labels.notna().all().all()
    other = EyeRenderParams(height=36, width=60)
    images, labels = render_eyes(other, 10, seed=0)
    assert images.shape == (10, 36, 60)
    assert labels["eyeball_u"].between(25, 34).all()


def test_gaze_vectors_and_angles(synthetic, real) -> None:
    for _, lab in (synthetic, real):
        g = lab[["gaze_x", "gaze_y", "gaze_z"]].to_numpy()
        np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0, atol=1e-9)
        assert (g[:, 2] < 0).all()
        np.testing.assert_allclose(lab["pitch"], np.arcsin(-g[:, 1]), atol=1e-9)
        np.testing.assert_allclose(lab["yaw"], np.arctan2(-g[:, 0], -g[:, 2]), atol=1e-9)
        r = lab["eyeball_radius"]
        np.testing.assert_allclose(lab["pupil_u"], lab["eyeball_u"] + r * g[:, 0], atol=1e-9)
        np.testing.assert_allclose(lab["pupil_v"], lab["eyeball_v"] + r * g[:, 1], atol=1e-9)
        assert (lab["pupil_radius"] < lab["iris_radius"]).all()
        assert lab["pupil_visible"].between(0, 1).all()
    # the real domain draws from its own (MPIIGaze-like, downward) gaze distribution
    assert np.degrees(real[1]["pitch"].mean()) == pytest.approx(REAL.gaze.pitch_mean_deg, abs=1.5)
    assert np.degrees(synthetic[1]["pitch"].mean()) == pytest.approx(0.0, abs=1.5)
    assert np.degrees(np.abs(synthetic[1][["pitch", "yaw"]]).max().max()) <= 35.0 + 1e-9


def test_pupil_label_is_the_dark_blob_centroid(synthetic) -> None:
    images, lab = synthetic
    vis = lab["pupil_visible"].to_numpy() > 0.99
    assert vis.mean() > 0.8
    cu, cv = dark_centroid(images[vis], threshold=48.0)
    err = np.hypot(cu - lab["pupil_u"].to_numpy()[vis], cv - lab["pupil_v"].to_numpy()[vis])
    assert err.max() < 0.5, np.sort(err)[-5:]
    assert err.mean() < 0.15


def test_lids_open_with_pitch() -> None:
    params = EyeRenderParams(gaze=GazeDistribution(pitch_std_deg=20, max_abs_deg=40),
                             blink_prob=0.0)
    _, lab = render_eyes(params, 1500, seed=11)
    gap = lab["lm12_v"] - lab["lm04_v"]  # lower minus upper lid, mid-eye
    up, down = lab["pitch"] > np.radians(10), lab["pitch"] < np.radians(-10)
    assert gap[up].mean() > gap[down].mean() + 2.0
    # and in the drawn shapes: a larger visible eyeball area when looking up
    geom = sample_geometry(params, params.gaze, np.random.default_rng(0), 512)
    area = rasterize(geom, params.height, params.width).m_open.sum(axis=(1, 2))
    g_up, g_down = geom.pitch > np.radians(10), geom.pitch < np.radians(-10)
    assert area[g_up].mean() > 1.2 * area[g_down].mean()
    upper_mid = lab[[f"lm{k:02d}_v" for k in (3, 4, 5)]].mean(axis=1)
    assert (upper_mid < lab["pupil_v"]).mean() > 0.95  # the lid is above the pupil centre
    assert lab["pupil_visible"][up].mean() > lab["pupil_visible"][down].mean()


def test_blinks_hide_the_pupil() -> None:
    _, lab = render_eyes(EyeRenderParams(blink_prob=1.0), 300, seed=5)
    _, lab_open = render_eyes(EyeRenderParams(blink_prob=0.0), 300, seed=5)
    assert lab["pupil_visible"].mean() < 0.6 < 0.95 < lab_open["pupil_visible"].mean()


# ----------------------------------------------------------------------------- domains


def test_same_geometry_two_appearances() -> None:
    """Shading one geometry both ways: same labels, same shapes, different image statistics."""
    rng = np.random.default_rng(0)
    geom = sample_geometry(PARAMS, PARAMS.gaze, rng, 256)
    fields = rasterize(geom, PARAMS.height, PARAMS.width)
    syn = to_uint8(shade_synthetic(geom, fields, rng))
    real = to_uint8(shade_real(geom, fields, rng, REAL))
    lab = labels_frame(geom, 0, fields.pupil_visible)
    # geometry honoured in both: the pupil is darker than the visible sclera around it
    pupil = (fields.m_pupil > 0.99) & (fields.m_open > 0.99)
    sclera = (fields.m_open > 0.99) & (fields.m_iris < 0.01) & (fields.m_caruncle < 0.01)
    ok = (pupil.sum(axis=(1, 2)) > 3) & (sclera.sum(axis=(1, 2)) > 10)
    for img in (syn, real):
        x = img.astype(np.float64)
        mean_pupil = (x * pupil).sum(axis=(1, 2))[ok] / pupil.sum(axis=(1, 2))[ok]
        mean_sclera = (x * sclera).sum(axis=(1, 2))[ok] / sclera.sum(axis=(1, 2))[ok]
        assert (mean_pupil < mean_sclera - 20).mean() > 0.9
    # appearance differs: flat sharp renders vs blurred/noisy/compressed camera images
    assert np.median(high_freq_energy(syn)) > 2 * np.median(high_freq_energy(real))
    assert abs(syn.mean() - real.mean()) > 10
    assert len(lab) == 256


def test_real_differs_from_synthetic_statistically(synthetic, real) -> None:
    s, r = synthetic[0].astype(np.float64), real[0].astype(np.float64)
    # flat regions: synthetic skin is smooth, real skin is textured and noisy
    def flat_noise(x: np.ndarray) -> float:
        d = np.diff(x[:, :4, :], axis=2)  # top rows: skin in both domains
        return float(np.abs(d).mean())

    assert flat_noise(r) > 1.5 * flat_noise(s)
    assert r.std(axis=(1, 2)).mean() < s.std(axis=(1, 2)).mean()


# ----------------------------------------------------------------------------- helpers


def test_camera_helpers() -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 255, (4, 35, 55)).astype(np.float32)
    np.testing.assert_allclose(jpeg_like(x, np.full(4, 100)), x, atol=1.5)
    coarse = jpeg_like(x, np.full(4, 10))
    assert np.abs(coarse - x).mean() > 20
    assert abs(coarse.mean() - x.mean()) < 3
    blurred = gaussian_blur(x, np.full(4, 1.0))
    assert blurred.std() < 0.6 * x.std() and abs(blurred.mean() - x.mean()) < 1
    np.testing.assert_allclose(gaussian_blur(x, np.full(4, 1e-4)), x, atol=1e-3)
    levels = np.array([0.0, 127.5, 255.0], dtype=np.float32)[None, None, :]
    for gamma in (0.5, 1.0, 2.0):
        out = response_curve(levels, np.array([[[gamma]]], dtype=np.float32))
        np.testing.assert_allclose(out.ravel(), 255 * (levels.ravel() / 255) ** gamma, atol=0.01)


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("model", "kwargs", "key"),
    [
        (GazeDistribution, {"pitch_std_deg": -1}, "pitch_std_deg"),
        (GazeDistribution, {"max_abs_deg": 0}, "max_abs_deg"),
        (GazeDistribution, {"yaw_mean_deg": 40, "max_abs_deg": 30}, "yaw_mean_deg"),
        (GazeDistribution, {"pitch_sd": 3}, "pitch_sd"),
        (EyeRenderParams, {"height": 4}, "height"),
        (EyeRenderParams, {"eyeball_radius_frac": 0}, "eyeball_radius_frac"),
        (EyeRenderParams, {"pupil_ratio_min": 0.6, "pupil_ratio_max": 0.4}, "pupil_ratio_min"),
        (EyeRenderParams, {"gaze": {"pitch_std_deg": 99}}, "pitch_std_deg"),
        (EyeRenderParams, {"colour": 1}, "colour"),
        (RealAppearanceParams, {"gamma_min": 2.0, "gamma_max": 1.0}, "gamma_min"),
        (RealAppearanceParams, {"jpeg_quality_min": 0}, "jpeg_quality_min"),
        (RealAppearanceParams, {"lid_shadow": 1.5}, "lid_shadow"),
        (RealAppearanceParams, {"blur": 1.0}, "blur"),
    ],
)
def test_params_validation_names_the_key(model: type, kwargs: dict, key: str) -> None:
    with pytest.raises(ValidationError, match=key):
        model(**kwargs)
