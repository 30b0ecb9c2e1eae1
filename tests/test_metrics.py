"""Metrics on hand-computed cases: gaze angles, summaries, curves, pupil drift, realism."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from simgan.core import realism
from simgan.core.curves import GAZE_THRESHOLDS_DEG, cumulative_curve
from simgan.core.params import RealismParams
from simgan.core.realism import (
    RealismResult,
    auc_delong,
    auc_null_se,
    summarise,
    two_sample_test,
    verdict,
)
from simgan.gaze.drift import (
    PupilParams,
    estimate_pupil_centres,
    fit_pupil_ellipses,
    pupil_drift,
)
from simgan.gaze.metrics import (
    angular_error_deg,
    gaze_summary,
    pitchyaw_to_vector,
    vector_to_pitchyaw,
)

# --- gaze -------------------------------------------------------------------------------


def test_angular_error_known_pairs() -> None:
    pred = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 0], [3, 4, 0], [0, 0, -2]], dtype=float)
    true = np.array([[2, 0, 0], [0, 1, 0], [-1, 0, 0], [1, 0, 0], [0, 0, -1]], dtype=float)
    got = angular_error_deg(pred, true)
    want = [0.0, 90.0, 180.0, math.degrees(math.acos(3 / 5)), 0.0]  # 3-4-5: 53.13 deg
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert not np.isnan(got).any()  # the clip protects acos at 0 and 180 deg


def test_pitchyaw_known_values() -> None:
    np.testing.assert_allclose(pitchyaw_to_vector(0.0, 0.0), [0, 0, -1], atol=1e-12)
    pitch, yaw = vector_to_pitchyaw([0.0, 0.0, -1.0])
    assert pitch == pytest.approx(0.0) and yaw == pytest.approx(0.0)
    # Looking up (towards -y, still towards the camera): positive pitch of 45 deg.
    pitch, yaw = vector_to_pitchyaw([0.0, -1.0, -1.0])
    assert math.degrees(pitch) == pytest.approx(45.0) and yaw == pytest.approx(0.0)
    # Looking towards the camera's -x: positive yaw.
    pitch, yaw = vector_to_pitchyaw([-1.0, 0.0, -1.0])
    assert pitch == pytest.approx(0.0) and math.degrees(yaw) == pytest.approx(45.0)
    np.testing.assert_allclose(
        pitchyaw_to_vector(math.radians(30), 0.0), [0, -0.5, -math.sqrt(3) / 2], atol=1e-12
    )


def test_pitchyaw_round_trip() -> None:
    rng = np.random.default_rng(0)
    pitch = rng.uniform(-1.2, 1.2, 100)
    yaw = rng.uniform(-2.5, 2.5, 100)
    g = pitchyaw_to_vector(pitch, yaw)
    assert g.shape == (100, 3)
    np.testing.assert_allclose(np.linalg.norm(g, axis=1), 1.0)
    p2, y2 = vector_to_pitchyaw(g * 3.0)  # length does not matter
    np.testing.assert_allclose(p2, pitch, atol=1e-12)
    np.testing.assert_allclose(y2, yaw, atol=1e-12)


def test_gaze_summary_by_hand() -> None:
    s = gaze_summary([1.0, 7.0, 7.0, 10.0], within_deg=7.0)
    # mean 6.25; median (7 + 7) / 2; var = (5.25^2 + .75^2 + .75^2 + 3.75^2) / 4 = 10.6875
    assert s == pytest.approx(
        {"mean": 6.25, "median": 7.0, "std": math.sqrt(10.6875), "pct_within": 75.0, "n": 4}
    )
    assert gaze_summary([])["n"] == 0
    with pytest.raises(ValueError):
        gaze_summary([1.0, float("nan")])


# --- curves -----------------------------------------------------------------------------


def test_cumulative_curve_by_hand() -> None:
    df = cumulative_curve([5.0, 2.0, 1.0, 2.0], [0, 1, 2, 3, 5, 6])
    assert list(df.columns) == ["threshold", "pct_within"]
    # ties at the threshold count as within: <= 1 -> 1 of 4, <= 2 -> 3 of 4, <= 5 -> all
    np.testing.assert_allclose(df["pct_within"], [0, 25, 75, 75, 100, 100])
    np.testing.assert_allclose(df["threshold"], [0, 1, 2, 3, 5, 6])


def test_cumulative_curve_matches_summary_and_any_shape() -> None:
    errors = np.random.default_rng(1).gamma(2.0, 4.0, size=(50, 14))  # e.g. images x joints
    df = cumulative_curve(errors, GAZE_THRESHOLDS_DEG)
    assert len(df) == 26 and df["pct_within"].is_monotonic_increasing
    at7 = float(df.loc[df["threshold"] == 7, "pct_within"].iloc[0])
    assert at7 == pytest.approx(gaze_summary(errors, within_deg=7.0)["pct_within"])


# --- pupil drift ------------------------------------------------------------------------


def _discs(
    centres: np.ndarray,
    radius: float = 6.0,
    shape: tuple[int, int] = (35, 55),
    dark: float = 40.0,
    bright: float = 200.0,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """Anti-aliased dark discs (8x8 supersampled coverage) at sub-pixel (u, v) centres."""
    h, w = shape
    ss = 8
    off = (np.arange(ss) + 0.5) / ss - 0.5
    ys = (np.arange(h)[:, None] + off).ravel()  # sample v coordinates, row-major
    xs = (np.arange(w)[:, None] + off).ravel()
    c = np.asarray(centres, dtype=float)
    inside = (ys[None, :, None] - c[:, 1, None, None]) ** 2 + (
        xs[None, None, :] - c[:, 0, None, None]
    ) ** 2 <= radius**2
    cover = inside.reshape(len(c), h, ss, w, ss).mean(axis=(2, 4))
    img = bright + (dark - bright) * cover
    img += np.random.default_rng(seed).normal(0.0, noise, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def test_pupil_centres_subpixel_on_discs() -> None:
    rng = np.random.default_rng(3)
    centres = np.column_stack([rng.uniform(18, 37, 40), rng.uniform(11, 24, 40)])
    images = _discs(centres, radius=rng.uniform(2.5, 5.5), noise=4.0)
    prior = centres + rng.normal(0, 1.5, centres.shape)  # a rough prior is enough
    est = estimate_pupil_centres(images, prior)
    assert est.shape == (40, 2)
    assert np.linalg.norm(est - centres, axis=1).max() < 0.3
    # an iris-sized blob is found once the area cap allows it
    big = _discs(centres[:5], radius=8.5, noise=4.0)
    assert np.isnan(estimate_pupil_centres(big, centres[:5])).all()
    est = estimate_pupil_centres(big, centres[:5], params=PupilParams(max_radius=10.0))
    assert np.linalg.norm(est - centres[:5], axis=1).max() < 0.3


def test_pupil_inside_iris_with_glint() -> None:
    """The pupil (darkest plateau) is preferred to the iris; a glint on it does no harm."""
    centre = np.array([[27.4, 17.3]])
    iris = _discs(centre, radius=8.0, dark=110.0, bright=210.0).astype(float)
    pupil = _discs(centre, radius=3.0, dark=20.0, bright=210.0).astype(float)
    img = np.minimum(iris, pupil)
    img[0, 17, 27] = 200.0  # a one-pixel glint on the pupil
    fit = fit_pupil_ellipses(np.clip(img, 0, 255).astype(np.uint8), centre)
    assert fit.valid[0] and fit.axes[0, 0] < 4.0
    assert np.linalg.norm(fit.centre[0] - centre[0]) < 0.3


def test_pupil_ellipse_axes_on_disc() -> None:
    fit = fit_pupil_ellipses(_discs(np.array([[27.3, 17.6]]), radius=6.0), [[27, 18]])
    assert fit.valid[0]
    np.testing.assert_allclose(fit.axes[0], [6.0, 6.0], atol=0.15)
    assert fit.area[0] == pytest.approx(math.pi * 36, rel=0.03)


def test_drift_of_known_shift() -> None:
    rng = np.random.default_rng(4)
    centres = np.column_stack([rng.uniform(20, 34, 30), rng.uniform(12, 22, 30)])
    synthetic = _discs(centres, noise=2.0, seed=1)
    refined = _discs(centres + [1.0, 0.5], dark=60.0, bright=180.0, noise=5.0, seed=2)
    d = pupil_drift(synthetic, refined, centres)
    assert d["mean"] == pytest.approx(math.hypot(1.0, 0.5), abs=0.05)  # 1.118
    assert d["n"] == d["n_valid"] == 30 and d["n_invalid"] == 0
    assert d["distances"].shape == (30,)
    assert pupil_drift(synthetic, synthetic, centres)["mean"] < 1e-9


def test_closed_eyes_are_excluded_and_counted() -> None:
    centres = np.array([[27.0, 17.0], [25.5, 16.2], [30.0, 18.0], [27.0, 17.0]])
    images = _discs(centres, noise=2.0)
    images[1] = 150  # closed: flat skin, no contrast
    images[2] = 150
    images[2, 17:19, 8:48] = 40  # closed: a dark lid line, far too elongated for a pupil
    refined = images.copy()
    refined[3] = 180  # blob lost in refinement: counted apart from closed eyes
    est = estimate_pupil_centres(images, centres)
    assert np.isfinite(est[[0, 3]]).all() and np.isnan(est[[1, 2]]).all()
    d = pupil_drift(images, refined, centres, params=PupilParams())
    assert (d["n"], d["n_valid"], d["n_invalid"], d["n_no_blob"], d["n_lost"]) == (4, 1, 3, 2, 1)
    assert np.isnan(d["distances"][1:]).all()


def test_drift_chunks_and_memmap(tmp_path) -> None:
    centres = np.tile([[27.2, 17.4]], (7, 1))
    path = tmp_path / "images.npy"
    np.save(path, _discs(centres, noise=3.0))
    images = np.load(path, mmap_mode="r")
    small = estimate_pupil_centres(images, centres, params=PupilParams(chunk_size=3))
    np.testing.assert_allclose(small, estimate_pupil_centres(np.asarray(images), centres))


# --- realism ----------------------------------------------------------------------------


@pytest.fixture
def one_thread() -> Iterator[None]:
    """The test is deterministic for a fixed thread count; restore the caller's after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _smooth_images(n: int, seed: int) -> np.ndarray:
    """Random smooth gradients plus a blob: structure without pixel-level noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:35, 0:55]
    a = rng.uniform(-1, 1, (n, 1, 1))
    b = rng.uniform(-1, 1, (n, 1, 1))
    cu, cv = rng.uniform(15, 40, (n, 1, 1)), rng.uniform(10, 25, (n, 1, 1))
    img = (
        128
        + 40 * (a * xx / 55 + b * yy / 35)
        - 60 * np.exp(-((xx - cu) ** 2 + (yy - cv) ** 2) / 40)
    )
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


FAST = RealismParams(n_per_set=300, epochs=3, batch_size=32, widths=(8, 16), seed=0)


def test_two_sample_same_distribution_is_chance(one_thread: None) -> None:
    pool = _smooth_images(600, seed=1)
    r = two_sample_test(pool[:300], pool[300:], FAST)
    assert isinstance(r, RealismResult) and r.n_test == 300
    assert 0.4 < r.accuracy < 0.6
    assert r.ci95_low < 0.5 < r.ci95_high
    assert r.auc_ci95_low < 0.5 < r.auc_ci95_high < 0.6
    assert r.verdict == "indistinguishable (n=300)" and r.n_needed is None


def test_two_sample_noise_vs_smooth_is_separable(one_thread: None) -> None:
    smooth = _smooth_images(300, seed=2)
    noisy = np.random.default_rng(3).integers(0, 256, (300, 35, 55), dtype=np.uint8)
    r = two_sample_test(noisy, smooth, FAST)
    assert r.accuracy > 0.97 and r.auc > 0.99 and r.ci95_low > 0.9
    assert r.verdict == "distinguishable"


def test_two_sample_is_deterministic_and_balanced(one_thread: None) -> None:
    a = _smooth_images(200, seed=4)
    b = np.clip(a.astype(int) + 6, 0, 255).astype(np.uint8)[:150]  # fewer B: balanced at 150
    params = RealismParams(n_per_set=1000, epochs=1, widths=(4,), seed=7, threads=2)
    r1 = two_sample_test(a, b, params)
    assert r1 == two_sample_test(a, b, params)
    assert torch.get_num_threads() == 1  # the caller's (fixture's) setting is restored
    assert r1.n_test == 150  # 75 + 75 held out
    with pytest.raises(ValueError):
        RealismParams(n_per_set=10, unknown=1)


def _smooth_and_noisy(n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    noisy = _smooth_images(n, seed=2) + rng.normal(0, noise, (n, 35, 55))
    return _smooth_images(n, seed=1), np.clip(noisy, 0, 255).astype(np.uint8)


def test_precise_bn_removes_the_batchnorm_lag(
    one_thread: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two clearly different sets at a high learning rate: with the running statistics as
    training left them, every held-out logit lands on one side (accuracy 0.5 at AUC 1); with
    the precise-BN pass the accuracy agrees with the AUC."""
    a, b = _smooth_and_noisy(300, noise=10.0)
    params = RealismParams(n_per_set=300, epochs=2, lr=1e-2, widths=(8, 16), seed=0)
    fixed = two_sample_test(a, b, params)
    assert fixed.auc > 0.99 and fixed.accuracy > 0.95 and fixed.verdict == "distinguishable"
    monkeypatch.setattr(realism, "_precise_bn", lambda *args: None)
    lagged = two_sample_test(a, b, params)
    assert lagged.auc > 0.99 and lagged.accuracy == 0.5  # the artefact, reproduced


def test_auc_delong_by_hand() -> None:
    # positives 0.9, 0.4; negatives 0.5, 0.1: 3 of 4 pairs ordered, AUC 0.75.
    # V10 = (1, 0.5), V01 = (0.5, 1): Var = 0.125 / 2 + 0.125 / 2 = 0.125
    auc, se = auc_delong(np.array([0.9, 0.4, 0.5, 0.1]), np.array([1, 1, 0, 0]))
    assert auc == pytest.approx(0.75) and se == pytest.approx(math.sqrt(0.125))
    # ties count half: positives 1, 1; negatives 1, 0. V10 = (0.75, 0.75), V01 = (0.5, 1)
    auc, se = auc_delong(np.array([1.0, 1.0, 1.0, 0.0]), np.array([1, 1, 0, 0]))
    assert auc == pytest.approx(0.75) and se == pytest.approx(math.sqrt(0.125 / 2))
    assert auc_null_se(2, 2) == pytest.approx(math.sqrt(5 / 48))


def test_auc_delong_matches_the_null_se_on_one_distribution() -> None:
    rng = np.random.default_rng(0)
    scores, labels = rng.normal(size=4000), np.repeat([1, 0], 2000)
    auc, se = auc_delong(scores, labels)
    assert abs(auc - 0.5) < 3 * auc_null_se(2000, 2000)
    assert se == pytest.approx(auc_null_se(2000, 2000), rel=0.05)


def test_the_verdict_needs_enough_images() -> None:
    # at AUC 0.5 the null SE decides: 64 + 64 test images leave 0.6004 as the upper bound
    # (too few), 65 + 65 give 0.5997 (indistinguishable): n* = 130
    assert verdict(0.5, auc_null_se(65, 65), 65, 65, 0.6) == ("indistinguishable (n=130)", None)
    said, need = verdict(0.5, auc_null_se(64, 64), 64, 64, 0.6)
    assert (said, need) == ("too few images to tell (need n >= 130)", 130)
    # the 29-image split at AUC 0.947 separates: 0.947 - 1.96 * 0.109 > 0.5
    assert verdict(0.947, 0.03, 15, 14, 0.6) == ("distinguishable", None)
    # a significant but small difference is not called indistinguishable
    assert verdict(0.52, 0.005, 20000, 20000, 0.6)[0] == "distinguishable"
    # perfect separation of 2 + 2 images: DeLong's SE is 0, the null SE (0.323) is not;
    # 3 + 3 would do: 1 - 1.96 * sqrt(7 / 108) = 0.501 > 0.5
    r = summarise(np.array([2.0, 1.0, 0.0, -1.0]), np.array([1, 1, 0, 0]), 0.6)
    assert r.auc == 1.0 and r.auc_ci95_low == pytest.approx(1 - 1.959964 * math.sqrt(5 / 48))
    assert r.verdict == "too few images to tell (need n >= 6)" and r.n_needed == 6


def test_accuracy_can_read_chance_when_the_auc_does_not() -> None:
    """Every logit positive, perfectly ordered: accuracy 0.5, AUC 1. The verdict reads the AUC."""
    scores = np.concatenate([np.linspace(2, 3, 100), np.linspace(0.1, 1, 100)])
    r = summarise(scores, np.repeat([1, 0], 100), 0.6)
    assert r.accuracy == 0.5 and r.auc == 1.0 and r.verdict == "distinguishable"
