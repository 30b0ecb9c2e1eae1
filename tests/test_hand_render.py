"""Hand depth renderer and stand-in Kinect domain: determinism/sharding, geometry, labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from simgan.hand.joints import (
    JOINT_NAMES,
    N_JOINTS,
    code_to_depth,
    joint_columns,
    keypoints_from_labels,
    normalise_depth,
)
from simgan.hand.render import (
    BLOCK,
    CAPSULE_NAMES,
    JOINT_CAPSULES,
    JOINT_RADII_MM,
    LIMITS_DEG,
    N_CAPSULES,
    HandPose,
    HandRenderParams,
    iter_hand_chunks,
    place_hand,
    render_depth,
    render_hands,
    sample_geometry,
    sample_pose,
)
from simgan.hand.standin import RealDepthParams, apply_kinect_artifacts, standin_domain

PARAMS = HandRenderParams()
REAL = RealDepthParams()


@pytest.fixture(scope="module")
def synthetic() -> tuple[np.ndarray, pd.DataFrame]:
    return render_hands(PARAMS, 2 * BLOCK, seed=5)


@pytest.fixture(scope="module")
def geometry():
    g = sample_geometry(PARAMS, np.random.default_rng(11), 48)
    depth, parts = render_depth(g, PARAMS.size, parts=True)
    return g, depth, parts


# --- determinism and sharding ----------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(synthetic) -> None:
    images, labels = synthetic
    again, labels2 = render_hands(PARAMS, 2 * BLOCK, seed=5)
    assert images.dtype == np.uint8 and images.shape == (2 * BLOCK, 64, 64)
    assert np.array_equal(images, again)
    pd.testing.assert_frame_equal(labels, labels2)
    other, _ = render_hands(PARAMS, 2 * BLOCK, seed=6)
    assert not np.array_equal(images, other)


def test_any_range_chunking_or_thread_count_gives_the_same_bytes(synthetic) -> None:
    images, labels = synthetic
    parts = list(iter_hand_chunks(PARAMS, 300, seed=5, chunk_size=77, start=100, threads=2))
    assert [p[0].shape[0] for p in parts] == [77, 77, 77, 69]
    got = np.concatenate([p[0] for p in parts])
    assert np.array_equal(got, images[100:400])
    lab = pd.concat([p[1] for p in parts], ignore_index=True)
    assert lab["id"].tolist() == list(range(100, 400))
    pd.testing.assert_frame_equal(lab, labels.iloc[100:400].reset_index(drop=True))
    one, _ = render_hands(PARAMS, 1, seed=5, start=BLOCK + 3)
    assert np.array_equal(one[0], images[BLOCK + 3])
    none, empty = render_hands(PARAMS, 0, seed=5)
    assert none.shape == (0, 64, 64) and list(empty.columns) == list(labels.columns)


def test_label_columns_in_nyu_order(synthetic) -> None:
    _, labels = synthetic
    cols = joint_columns()
    assert cols[:3] == ["j00_u", "j00_v", "j00_d"] and cols[-1] == "j13_d"
    assert list(labels.columns[: 1 + 3 * N_JOINTS]) == ["id", *cols]
    assert len(JOINT_NAMES) == N_JOINTS == len(JOINT_CAPSULES)
    assert len(CAPSULE_NAMES) == N_CAPSULES
    kp = keypoints_from_labels(labels)
    assert kp.shape == (len(labels), N_JOINTS, 2)
    assert kp[0, 13, 0] == np.float32(labels["j13_u"].iloc[0])


def test_crop_is_centred_on_the_joint_mean() -> None:
    p = PARAMS.model_copy(update={"crop_jitter_mm": 0.0})
    _, labels = render_hands(p, 64, seed=1)
    kp = keypoints_from_labels(labels)
    centre = (p.size - 1) / 2
    assert np.abs(kp.mean(1) - centre).max() < 1.5  # mean of projections vs projected mean
    d = labels[[f"j{k:02d}_d" for k in range(N_JOINTS)]].to_numpy().mean(1)
    np.testing.assert_allclose(d, labels["ref_depth_mm"], atol=1e-6)


def test_poses_stay_within_joint_limits() -> None:
    pose = sample_pose(PARAMS.pose, np.random.default_rng(0), 5000)
    for name, key in (("mcp", "mcp_flex"), ("pip", "pip_flex"), ("dip", "dip_flex"),
                      ("abduction", "mcp_abduction"), ("thumb_mcp", "thumb_mcp_flex"),
                      ("thumb_ip", "thumb_ip_flex"), ("thumb_cmc", "thumb_cmc_flex"),
                      ("thumb_abduction", "thumb_cmc_abduction")):
        lo, hi = np.deg2rad(LIMITS_DEG[key])
        x = getattr(pose, name)
        assert x.min() >= lo - 1e-12 and x.max() <= hi + 1e-12, name
        assert x.max() - x.min() > 0.3 * (hi - lo), name  # the range is actually used


# --- geometry ---------------------------------------------------------------------------------


def _rays(g, i: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.stack([(u - g.cu[i]) / g.fu[i], (v - g.cv[i]) / g.fv[i], np.ones_like(u)], -1)


def _segment_distance(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of points x (..., 1, 3) to segments a-b (P, 3) -> (..., P)."""
    ba = b - a
    t = np.clip(((x - a) * ba).sum(-1) / (ba * ba).sum(-1), 0.0, 1.0)
    return np.linalg.norm(x - (a + t[..., None] * ba), axis=-1)


def test_tiles_give_the_same_image_as_full_frame_evaluation(geometry) -> None:
    g, depth, parts = geometry
    full, full_parts = render_depth(g, PARAMS.size, parts=True, tiled=False)
    assert np.array_equal(depth, full) and np.array_equal(parts, full_parts)
    assert np.isinf(depth).mean() > 0.5 and np.isfinite(depth).mean() > 0.05


def test_foreground_lies_on_the_capsule_surfaces_and_background_misses_them(geometry) -> None:
    g, depth, _ = geometry
    vv, uu = np.mgrid[: PARAMS.size, : PARAMS.size].astype(np.float64)
    for i in range(5):
        fg = np.isfinite(depth[i])
        x = _rays(g, i, uu[fg], vv[fg]) * depth[i][fg].astype(np.float64)[:, None]
        signed = _segment_distance(x[:, None], g.cap_a[i], g.cap_b[i]) - g.cap_r[i]
        # the first hit is on the boundary of the union: on one surface, inside none
        assert np.abs(signed.min(1)).max() < 0.01
        # background rays pass every capsule axis farther than its radius
        d = _rays(g, i, uu[~fg], vv[~fg])
        d /= np.linalg.norm(d, axis=-1, keepdims=True)
        s = np.linspace(0.0, 1.0, 201)
        axis = g.cap_a[i][:, None] + s[None, :, None] * (g.cap_b[i] - g.cap_a[i])[:, None]
        along = np.einsum("rk,psk->rps", d, axis)
        perp2 = (axis**2).sum(-1)[None] - along**2
        lengths = np.linalg.norm(g.cap_b[i] - g.cap_a[i], axis=1)
        slack = lengths / 200.0  # sampling step along the axis
        assert (np.sqrt(perp2.min(2)) > g.cap_r[i] - slack).all()


def test_every_joint_label_is_under_the_surface_drawn_over_it(geometry) -> None:
    """Along the ray through a joint's pixel the surface comes at least where the ray enters the
    ball of the joint's radius (occluders can only make it nearer)."""
    g, depth, _ = geometry
    uvd = g.project(g.joints)
    ui, vi = np.rint(uvd[..., 0]).astype(int), np.rint(uvd[..., 1]).astype(int)
    inside = (ui >= 0) & (ui < PARAMS.size) & (vi >= 0) & (vi < PARAMS.size)
    assert inside.mean() > 0.95
    checked = 0
    for i, k in zip(*np.nonzero(inside), strict=True):
        d = _rays(g, i, np.float64(ui[i, k]), np.float64(vi[i, k]))
        j = g.joints[i, k]
        t_star = j @ d / (d @ d)
        delta2 = ((j - t_star * d) ** 2).sum()
        r = JOINT_RADII_MM[k] * g.scale[i]
        assert delta2 < r * r
        z_entry = t_star - np.sqrt(r * r - delta2) / np.linalg.norm(d)  # d_z = 1: t is z
        assert depth[i, vi[i, k], ui[i, k]] <= z_entry + 1e-2
        checked += 1
    assert checked > 600


def test_open_hand_facing_the_camera_shows_each_joint_on_its_own_bones() -> None:
    n = 4
    zero = np.zeros(n)
    centre = np.stack([np.full(n, 320.0), np.full(n, 240.0), np.linspace(600, 950, n)], 1)
    g = place_hand(PARAMS, HandPose.open_hand(n), np.ones(n), zero, zero, zero, centre,
                   np.zeros((n, 3)), PARAMS.forearm_length_mm)
    depth, parts = render_depth(g, 96, parts=True)
    uvd = g.project(g.joints)
    for i in range(n):
        for k in range(N_JOINTS):
            u, v = int(np.rint(uvd[i, k, 0])), int(np.rint(uvd[i, k, 1]))
            assert parts[i, v, u] in JOINT_CAPSULES[k], (i, JOINT_NAMES[k])
            gap = uvd[i, k, 2] - depth[i, v, u]  # the surface is about a radius in front
            assert 0.5 * JOINT_RADII_MM[k] < gap <= JOINT_RADII_MM[k] + 1e-3, (i, JOINT_NAMES[k])
    # palm toward the camera, fingers up: tips above the wrist, thumb on the image right
    assert (uvd[:, 6, 1] < uvd[:, 11, 1]).all() and (uvd[:, 8, 0] > uvd[:, 0, 0]).all()


# --- normalisation ----------------------------------------------------------------------------


def test_normalisation_background_zero_foreground_depth_minus_reference() -> None:
    ref = np.array([800.0])
    z = np.array([[[np.inf, 0.0, 649.0, 650.0, 800.0, 950.0, 951.0, 2000.0]]], np.float32)
    code = normalise_depth(z, ref, 300.0)
    # back face 950 mm -> 0 (kept foreground as 1), front face 650 -> 255, outside -> 0
    assert code.tolist() == [[[0, 0, 0, 255, 128, 1, 0, 0]]]
    back = code_to_depth(code, ref, 300.0)
    np.testing.assert_allclose(back[0, 0, 3:6], [650.0, 800.0 - 0.5 * 300 / 255, 948.8],
                               atol=0.7)
    paper = normalise_depth(z, ref, 300.0, mode="paper")
    assert paper[0, 0, 3] == round((2000 - 650) * 255 / 2000) and paper[0, 0, 0] == 0


def test_image_background_zero_and_hand_in_the_middle_of_the_code_range(synthetic) -> None:
    images, _ = synthetic
    fg = images > 0
    assert 0.05 < fg.mean() < 0.4
    assert 80 < images[fg].mean() < 180  # the hand sits around the cube centre


# --- stand-in real domain ---------------------------------------------------------------------


def _boundary_fraction(images: np.ndarray) -> float:
    """Share of foreground pixels with a background 4-neighbour (jagged, holey -> larger)."""
    fg = images > 0
    pad = np.pad(fg, ((0, 0), (1, 1), (1, 1)))
    nb_bg = ~pad[:, :-2, 1:-1] | ~pad[:, 2:, 1:-1] | ~pad[:, 1:-1, :-2] | ~pad[:, 1:-1, 2:]
    return float((fg & nb_bg).sum() / fg.sum())


def test_real_domain_is_deterministic_and_has_kinect_artefacts(synthetic) -> None:
    syn, _ = synthetic
    real, labels = render_hands(PARAMS, BLOCK, seed=5, domain=standin_domain(REAL))
    again, _ = render_hands(PARAMS, BLOCK, seed=5, domain=standin_domain(REAL),
                            threads=2)
    assert np.array_equal(real, again)
    assert list(labels.columns) == list(render_hands(PARAMS, 1, seed=0)[1].columns)
    syn = syn[:BLOCK]
    assert _boundary_fraction(real) > 1.3 * _boundary_fraction(syn)
    # the arm continues off-frame: foreground reaches the border more often
    def touches(x: np.ndarray) -> float:
        return float(((x[:, 0] > 0).any(1) | (x[:, -1] > 0).any(1) | (x[:, :, 0] > 0).any(1)
                      | (x[:, :, -1] > 0).any(1)).mean())
    assert touches(real) > touches(syn) + 0.2


def test_artefacts_on_a_flat_plate_noise_grows_with_depth_and_is_quantised() -> None:
    """A plate filling the crop: noise and quantisation in disparity grow ~ z^2."""
    stds = []
    for zc in (600.0, 1000.0):
        g = sample_geometry(PARAMS, np.random.default_rng(0), 16)
        g.ref_depth[:] = zc
        g.crop_scale[:] = PARAMS.size * zc / (PARAMS.cube_mm * 588.03)
        g.fu[:] = PARAMS.size * zc / PARAMS.cube_mm
        depth = np.full((16, 64, 64), zc, np.float32)
        quiet = REAL.model_copy(update={"disparity_noise_min": 0.1, "disparity_noise_max": 0.1})
        out = apply_kinect_artifacts(depth, g, np.random.default_rng(1), quiet)
        assert np.array_equal(out, np.rint(out))  # whole millimetres, as in NYU's PNGs
        valid = out > 0
        assert valid.mean() > 0.95  # a flat plate has no edges: almost no holes
        stds.append(out[valid].std())
    assert stds[1] > 2.0 * stds[0]  # (1000/600)^2 = 2.8


# --- params ----------------------------------------------------------------------------------


def test_params_are_strict() -> None:
    with pytest.raises(ValidationError):
        HandRenderParams(sizee=64)
    with pytest.raises(ValidationError):
        HandRenderParams(depth_min_mm=900, depth_max_mm=800)
    with pytest.raises(ValidationError):
        RealDepthParams(wall_offset_min_mm=900, wall_offset_max_mm=800)
