"""The harder built-in real eye domain (mpii_like): determinism, labels, equalisation, gaze and
head pose, glasses, params (validation, profile)."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy.stats import truncnorm

from simgan.core.config import ParamsError, read_yaml, validate
from simgan.gaze.mpii_like import MpiiLikeParams, mpii_like_domain, shade_mpii_like
from simgan.gaze.render import (
    EyeDomain,
    EyeRenderParams,
    GazeDistribution,
    HeadPose,
    iter_eye_chunks,
    landmarks,
    rasterize,
    render_eyes,
    sample_geometry,
    shade_synthetic,
    to_uint8,
    turn_head,
)
from simgan.gaze.standin import RealAppearanceParams, standin_domain
from simgan.gaze.task import GazeParams, GazeTask
from stages.profile import apply_profile

ROOT = Path(__file__).resolve().parents[1]
PARAMS = EyeRenderParams()
APP = MpiiLikeParams()
MPII = mpii_like_domain(APP)


@pytest.fixture(scope="module")
def mpii() -> tuple[np.ndarray, pd.DataFrame]:
    return render_eyes(PARAMS, 1000, seed=7, domain=MPII)


def _ks_uniform(images: np.ndarray) -> np.ndarray:
    """Per image, the largest gap between the grey-level CDF and the uniform one."""
    n = len(images)
    offsets = (np.arange(n) * 256)[:, None]
    hist = np.bincount((images.reshape(n, -1) + offsets).ravel(), minlength=256 * n)
    cdf = np.cumsum(hist.reshape(n, 256), axis=1) / images[0].size
    return np.abs(cdf - (np.arange(256) + 1) / 256.0).max(axis=1)


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_other_seed_differs(mpii) -> None:
    again, labels = render_eyes(PARAMS, 1000, seed=7, domain=MPII)
    assert again.tobytes() == mpii[0].tobytes()
    pd.testing.assert_frame_equal(labels, mpii[1])
    other, _ = render_eyes(PARAMS, 300, seed=8, domain=MPII)
    assert (other != mpii[0][:300]).any(axis=(1, 2)).all()


def test_shards_and_chunks_equal_one_render(mpii) -> None:
    whole, labels = mpii
    a, la = render_eyes(PARAMS, 600, seed=7, domain=MPII)
    b, lb = render_eyes(PARAMS, 400, seed=7, start=600, domain=MPII)
    assert np.concatenate([a, b]).tobytes() == whole.tobytes()
    pd.testing.assert_frame_equal(pd.concat([la, lb], ignore_index=True), labels)
    parts = list(iter_eye_chunks(PARAMS, 1000, seed=7, chunk_size=333, domain=MPII))
    assert np.concatenate([p[0] for p in parts]).tobytes() == whole.tobytes()
    mid, _ = render_eyes(PARAMS, 250, seed=7, start=333, domain=MPII)
    assert mid.tobytes() == whole[333:583].tobytes()


def test_other_domains_other_streams(mpii) -> None:
    standin, ls = render_eyes(PARAMS, 1000, seed=7, domain=standin_domain(RealAppearanceParams()))
    assert not np.allclose(ls["pitch"], mpii[1]["pitch"])


# ----------------------------------------------------------------------------- labels


def test_label_convention_unchanged(mpii) -> None:
    _, lab = mpii
    g = lab[["gaze_x", "gaze_y", "gaze_z"]].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(lab["pitch"], np.arcsin(-g[:, 1]), atol=1e-9)
    np.testing.assert_allclose(lab["yaw"], np.arctan2(-g[:, 0], -g[:, 2]), atol=1e-9)
    r = lab["eyeball_radius"]
    np.testing.assert_allclose(lab["pupil_u"], lab["eyeball_u"] + r * g[:, 0], atol=1e-9)
    np.testing.assert_allclose(lab["pupil_v"], lab["eyeball_v"] + r * g[:, 1], atol=1e-9)


def test_pupil_label_is_the_dark_blob_centroid_with_turned_heads() -> None:
    """This domain's geometry (gaze, turned heads) drawn flat: the label is the pupil's centre."""
    flat = EyeDomain(MPII.code, APP.gaze, partial(shade_synthetic, texture=0.3), APP.head)
    images, lab = render_eyes(PARAMS, 1000, seed=7, domain=flat)
    vis = lab["pupil_visible"].to_numpy() > 0.99
    assert vis.mean() > 0.8
    w = np.clip(48.0 - images[vis].astype(np.float64), 0.0, None)
    vv, uu = np.mgrid[: images.shape[1], : images.shape[2]]
    mass = w.sum(axis=(1, 2))
    cu, cv = (w * uu).sum(axis=(1, 2)) / mass, (w * vv).sum(axis=(1, 2)) / mass
    err = np.hypot(cu - lab["pupil_u"].to_numpy()[vis], cv - lab["pupil_v"].to_numpy()[vis])
    assert err.max() < 0.5 and err.mean() < 0.15


def test_pupil_is_dark_where_the_label_says(mpii) -> None:
    """Shaded mpii_like (equalised): the pupil is black, darker than iris and sclera, and the
    pixel under the label is among the darkest of the image."""
    rng = np.random.default_rng(0)
    geom = sample_geometry(PARAMS, APP.gaze, rng, 256, APP.head)
    fields = rasterize(geom, PARAMS.height, PARAMS.width)
    img = to_uint8(shade_mpii_like(geom, fields, rng, APP)).astype(np.float64)
    inside = fields.m_open > 0.99
    masks = {"pupil": (fields.m_pupil > 0.99) & inside,
             "iris": (fields.m_iris > 0.99) & (fields.m_pupil < 0.01) & inside,
             "sclera": (fields.m_iris < 0.01) & (fields.m_caruncle < 0.01) & inside}
    ok = (masks["pupil"].sum(axis=(1, 2)) > 3) & (masks["sclera"].sum(axis=(1, 2)) > 10)
    assert ok.mean() > 0.9
    mean = {k: (img * m).sum(axis=(1, 2))[ok] / np.maximum(m.sum(axis=(1, 2))[ok], 1)
            for k, m in masks.items()}
    assert (mean["pupil"] < mean["sclera"] - 20).mean() > 0.95
    assert (mean["pupil"] <= mean["iris"]).mean() > 0.9
    images, lab = mpii
    vis = lab["pupil_visible"].to_numpy() > 0.99
    iu, iv = (np.rint(lab[c].to_numpy()[vis]).astype(int) for c in ("pupil_u", "pupil_v"))
    x = images[vis].astype(np.float64)
    at_label = x[np.arange(len(x)), iv, iu]
    rank = (x < at_label[:, None, None]).mean(axis=(1, 2))
    assert np.median(rank) < 0.01 and (rank < 0.1).mean() > 0.9


def test_turn_head_keeps_the_crop_on_the_opening() -> None:
    """A turned head moves the eyeball (and the pupil label) against the face direction while
    the crop stays centred on the lid opening, as MPIIGaze's normalisation does."""
    geom = sample_geometry(PARAMS, PARAMS.gaze, np.random.default_rng(3), 64)
    yaw = np.full(64, np.radians(20.0))
    turned = turn_head(geom, np.zeros(64), yaw)
    np.testing.assert_allclose(landmarks(turned).mean(axis=1), landmarks(geom).mean(axis=1),
                               atol=1e-9)
    shift = turned.eyeball_u - geom.eyeball_u
    np.testing.assert_allclose(shift, 0.9 * geom.radius * np.sin(yaw) * np.cos(geom.roll),
                               rtol=1e-9)
    assert (turned.halfwidth < geom.halfwidth).all()


# ----------------------------------------------------------------------------- distributions


def test_images_are_equalised(mpii) -> None:
    ks = _ks_uniform(mpii[0])
    assert np.median(ks) < 0.03 and ks.max() < 0.08
    standin, _ = render_eyes(PARAMS, 200, seed=7, domain=standin_domain(RealAppearanceParams()))
    assert np.median(_ks_uniform(standin)) > 0.2  # the default stand-in is not equalised
    raw, _ = render_eyes(PARAMS, 200, seed=7, domain=mpii_like_domain(
        MpiiLikeParams(equalize=False)))
    assert np.median(_ks_uniform(raw)) > 0.1


def _truncnorm_moments(mean: float, std: float, bound: float) -> tuple[float, float]:
    a, b = (-bound - mean) / std, (bound - mean) / std
    return float(truncnorm.mean(a, b, mean, std)), float(truncnorm.std(a, b, mean, std))


def test_gaze_follows_the_configured_distribution() -> None:
    gaze = GazeDistribution(pitch_mean_deg=-10.0, pitch_std_deg=5.0, yaw_mean_deg=4.0,
                            yaw_std_deg=8.0, max_abs_deg=22.0)
    _, lab = render_eyes(PARAMS, 2048, seed=2, domain=mpii_like_domain(MpiiLikeParams(gaze=gaze)))
    for col, mean, std in (("pitch", -10.0, 5.0), ("yaw", 4.0, 8.0)):
        deg = np.degrees(lab[col].to_numpy())
        want_mean, want_std = _truncnorm_moments(mean, std, 22.0)
        assert deg.mean() == pytest.approx(want_mean, abs=0.4)
        assert deg.std() == pytest.approx(want_std, abs=0.4)
        assert np.abs(deg).max() <= 22.0 + 1e-9
    # the default: MPIIGaze's range, narrower than the simulator's
    _, lab = render_eyes(PARAMS, 2048, seed=2, domain=MPII)
    pitch, yaw = np.degrees(lab["pitch"]), np.degrees(lab["yaw"])
    assert (np.abs(yaw) <= 20).mean() > 0.95
    assert pitch.between(-20, 5).mean() > 0.9 and pitch.mean() < -6


def test_glasses_fraction_is_the_configured_one() -> None:
    """Draws do not depend on the probabilities, so the images that differ from a render
    without glasses are exactly those with a frame."""
    def render(prob: float) -> np.ndarray:
        return render_eyes(PARAMS, 2048, seed=4,
                           domain=mpii_like_domain(MpiiLikeParams(glasses_prob=prob)))[0]

    none = render(0.0)
    for prob in (0.25, 1.0):
        framed = (render(prob) != none).any(axis=(1, 2)).mean()
        assert framed == pytest.approx(prob, abs=0.04)


# ----------------------------------------------------------------------------- params


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"glasses_prob": 1.5}, "glasses_prob"),
        ({"brow_offset_min": 2.0, "brow_offset_max": 1.0}, "brow_offset_min"),
        ({"noise_std_min": 9.0, "noise_std_max": 1.0}, "noise_std_min"),
        ({"head": {"roll_std_deg": -1}}, "roll_std_deg"),
        ({"head": {"yaw_mean_deg": 30, "max_abs_deg": 25}}, "yaw_mean_deg"),
        ({"gaze": {"pitch_std_deg": 99}}, "pitch_std_deg"),
        ({"eyebrow": 1}, "eyebrow"),
        ({"kind": "standin"}, "kind"),
    ],
)
def test_params_validation_names_the_key(kwargs: dict, key: str) -> None:
    with pytest.raises(ValidationError, match=key):
        MpiiLikeParams(**kwargs)


def _gaze_params() -> dict:
    return read_yaml(ROOT / "params.yaml")["gaze"]


def test_params_errors_name_the_appearance_key() -> None:
    data = _gaze_params()
    data["real"]["appearance"]["kind"] = "mpii"
    with pytest.raises(ParamsError, match=r"gaze\.real\.appearance\.kind: unknown kind 'mpii'; "
                                          r"allowed kinds here: standin, mpii_like"):
        validate(GazeParams, data, "gaze")
    data["real"]["appearance"] = MpiiLikeParams().model_dump()
    del data["real"]["appearance"]["brow_prob"]
    data["real"]["appearance"]["glasses_thickness_max"] = 0.5
    with pytest.raises(ParamsError) as exc:
        validate(GazeParams, data, "gaze")
    msg = str(exc.value)
    assert "gaze.real.appearance.brow_prob: missing (expected float)" in msg
    assert "glasses_thickness_min=1.5 must not exceed glasses_thickness_max=0.5" in msg


def test_hard_standin_profile_switches_the_real_domain(tmp_path) -> None:
    out = tmp_path / "params.yaml"
    merged = apply_profile(ROOT / "params.yaml", ROOT / "configs/hard-standin.yaml", out)
    p = validate(GazeParams, merged["gaze"], "gaze")
    assert p.real.appearance == MpiiLikeParams()  # the profile spells out the defaults
    assert merged["gaze"]["render"] == _gaze_params()["render"]
    plans = GazeTask().real_splits(p)
    assert plans["train"].meta["source"] == "builtin-mpii_like-real"
    images, labels = next(iter(plans["test"].chunks()))
    want, _ = render_eyes(PARAMS, len(images), seed=p.real.seed, start=p.real.n_train,
                          domain=MPII)
    assert images.tobytes() == want.tobytes()


def test_head_pose_model_defaults_are_frontal() -> None:
    head = HeadPose()
    assert head.pitch_std_deg == head.yaw_std_deg == 0.0 and head.pitch_mean_deg == 0.0
