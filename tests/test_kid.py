"""KID in the fixed random feature space: the estimator by hand, null and shifted cases,
determinism, and the fixed (data- and seed-independent) features."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from simgan.core import kid as kid_module
from simgan.core.kid import (
    KidResult,
    kid,
    kid_against,
    kid_from_indicators,
    mmd2_unbiased,
    random_features,
)
from simgan.core.params import KidParams

SMALL = KidParams(n_per_set=400, subset_size=200, n_subsets=30, widths=(8, 16, 32), seed=0)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _eyes(n: int, seed: int) -> np.ndarray:
    """Smooth shading plus a dark blob: structure without pixel-level noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:35, 0:55]
    a, b = rng.uniform(-1, 1, (2, n, 1, 1))
    cu, cv = rng.uniform(15, 40, (n, 1, 1)), rng.uniform(10, 25, (n, 1, 1))
    img = 128 + 40 * (a * xx / 55 + b * yy / 35) - 60 * np.exp(
        -((xx - cu) ** 2 + (yy - cv) ** 2) / 40
    )
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def test_mmd2_unbiased_by_hand() -> None:
    # d = 1, k(x, y) = (xy + 1)^3. X = {0, 1}: off-diagonal k(0, 1) = 1, twice, / (2 * 1) = 1.
    # Y = {1, 2}: k(1, 2) = 27 -> 27. XY: k(0,1) = k(0,2) = 1, k(1,1) = 8, k(1,2) = 27 -> 37 / 4.
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[1.0], [2.0]])
    assert mmd2_unbiased(x, y) == pytest.approx(1 + 27 - 2 * 37 / 4)
    # unequal sizes and a negative estimate: X = {0, 1, 2}: (1 + 1 + 27) * 2 / (3 * 2);
    # XY adds k(2, 1) = 27, k(2, 2) = 125: (37 + 152) / 6
    x3 = torch.tensor([[0.0], [1.0], [2.0]])
    assert mmd2_unbiased(x3, y) == pytest.approx(58 / 6 + 27 - 2 * 189 / 6)
    # d = 2 divides the dot product: k((1, 1), (1, 1)) = (2 / 2 + 1)^3 = 8
    assert mmd2_unbiased(torch.ones(2, 2), torch.zeros(2, 2)) == pytest.approx(8 + 1 - 2)


def test_subset_sums_match_the_estimator_per_subset(monkeypatch: pytest.MonkeyPatch) -> None:
    """The blockwise S K S^T sums equal mmd2_unbiased run on each subset by itself."""
    monkeypatch.setattr(kid_module, "_BLOCK", 3)  # several blocks on 10 rows
    gen = torch.Generator().manual_seed(0)
    fa, fb = torch.rand(10, 4, generator=gen), torch.rand(9, 4, generator=gen) + 0.2
    rng = np.random.default_rng(1)
    subsets = [(rng.choice(10, 4, replace=False), rng.choice(9, 4, replace=False))
               for _ in range(5)]
    sa, sb = torch.zeros(5, 10, dtype=torch.float64), torch.zeros(5, 9, dtype=torch.float64)
    for i, (ia, ib) in enumerate(subsets):
        sa[i, ia], sb[i, ib] = 1.0, 1.0
    each = np.array([mmd2_unbiased(fa[ia], fb[ib]) for ia, ib in subsets])
    r = kid_from_indicators(fa, fb, sa, sb)
    assert r.mean == pytest.approx(each.mean()) and r.std == pytest.approx(each.std(ddof=1))
    assert (r.subset_size, r.n_subsets) == (4, 5)


def test_one_distribution_is_near_zero_and_a_shift_is_not() -> None:
    pool = _eyes(1200, seed=1)
    same = kid_against(pool[:400], {"b": pool[400:800]}, SMALL)["b"]
    assert abs(same.mean) < 2 * same.std
    rng = np.random.default_rng(2)
    noisy = np.clip(pool[800:] + rng.normal(0, 4, (400, 35, 55)), 0, 255).astype(np.uint8)
    darker = (pool[800:] - 30).clip(0, 255).astype(np.uint8)
    r = kid_against(pool[:400], {"noisy": noisy, "darker": darker, "same": pool[800:]}, SMALL)
    assert r["noisy"].mean > 10 * r["noisy"].std
    assert r["darker"].mean > 10 * r["darker"].std
    assert abs(r["same"].mean) < 2 * r["same"].std


def test_kid_is_deterministic_and_pairs_like_with_like() -> None:
    a, b = _eyes(300, seed=3), _eyes(300, seed=4)
    noisy = np.clip(b + np.random.default_rng(0).normal(0, 6, b.shape), 0, 255).astype(np.uint8)
    params = SMALL.model_copy(update={"threads": 2})
    torch.manual_seed(123)  # the features must not depend on torch's global seed
    r1 = kid_against(a, {"b": b, "noisy": noisy, "b_again": b.copy()}, params)
    torch.manual_seed(7)
    r2 = kid_against(a.copy(), {"b": b.copy(), "noisy": noisy, "b_again": b}, params)
    assert r1 == r2
    assert torch.get_num_threads() == 1  # the caller's (fixture's) setting is restored
    assert r1["b"] == r1["b_again"]  # same rows and subsets drawn for every compared set
    assert isinstance(r1["b"], KidResult) and r1["b"].subset_size == 150  # half of 300


def test_depth_is_scaled_jointly_like_uint8() -> None:
    """Other dtypes map the joint min/max to [-1, 1]: 0..255 floats give the uint8 result."""
    a, b = _eyes(100, seed=5), _eyes(100, seed=6)
    a[0, 0, 0], b[0, 0, 0] = 0, 255
    params = SMALL.model_copy(update={"n_per_set": 100})
    as_uint8 = kid_against(a, {"b": b}, params)["b"]
    as_float = kid_against(a.astype(np.float32), {"b": b.astype(np.float32)}, params)["b"]
    assert as_float.mean == pytest.approx(as_uint8.mean, rel=1e-5, abs=1e-12)


def test_the_features_are_fixed_and_dc_free() -> None:
    x = torch.rand(5, 1, 35, 55) * 2 - 1
    f = random_features(x, (8, 16), seed=0)
    assert f.shape == (5, 24) and bool((f >= 0).all())
    assert torch.equal(f, random_features(x, (8, 16), seed=0))
    assert not torch.equal(f, random_features(x, (8, 16), seed=1))
    # a flat mid-grey image (0 in [-1, 1], the padding value) excites no detector
    assert float(random_features(torch.zeros(1, 1, 35, 55), (8, 16), 0).abs().max()) == 0.0


def test_too_few_or_unpaired_sets_are_refused() -> None:
    a = _eyes(10, seed=0)
    with pytest.raises(ValueError, match="at least 4"):
        kid_against(a, {"b": a[:3]}, SMALL)
    with pytest.raises(ValueError, match="differ in length"):
        kid_against(a, {"b": a[:5], "c": a[:6]}, SMALL)
    with pytest.raises(ValueError, match="at least 4"):
        kid(torch.rand(3, 2), torch.rand(8, 2), n_subsets=2, subset_size=2, seed=0)
