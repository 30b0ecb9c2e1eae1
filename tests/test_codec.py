"""The refiner's JPEG output stage against the stand-in's own numpy codec and by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simgan.core.refiner.codec import BlockCodec, dct_matrix, step_tables
from simgan.core.refiner.net import Refiner, apply_refiner
from simgan.core.refiner.params import RefinerNetParams
from simgan.gaze.standin import jpeg_like


def to_unit(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32)[:, None] / 127.5 - 1.0


def test_dct_matrix_is_orthonormal_and_its_first_row_is_the_mean() -> None:
    c = dct_matrix(8)
    assert torch.allclose(c @ c.T, torch.eye(8), atol=1e-6)
    assert torch.allclose(c[0], torch.full((8,), 8 ** -0.5))


def test_quality_tables_follow_the_ijg_scaling() -> None:
    t = step_tables(torch.tensor([50, 100, 25]))
    assert t[0, 0, 0] == 16 and t[0, 7, 7] == 99  # quality 50: the Annex K table itself
    assert torch.all(t[1] == 1)  # quality 100: every step 1 grey level
    assert t[2, 0, 0] == 32  # quality 25: scale 200 %


@pytest.mark.parametrize("quality", [30, 57, 85])
def test_codec_equals_the_standin_jpeg(quality: int) -> None:
    rng = np.random.default_rng(quality)
    x = np.clip(rng.normal(120, 40, (3, 35, 55)), 0, 255).astype(np.float32)
    want = np.clip(jpeg_like(x, np.full(3, quality)), 0, 255)
    got = (BlockCodec((quality, quality))(to_unit(x))[:, 0].numpy() + 1.0) * 127.5
    assert np.abs(got - want).max() < 1e-3
    assert np.abs(got - x).mean() > 1.0  # and it did quantise


def test_codec_keeps_a_flat_image_and_passes_gradients_straight_through() -> None:
    flat = torch.full((2, 1, 16, 24), 0.25)
    assert torch.allclose(BlockCodec((10, 10))(flat), flat, atol=0.07)  # DC step 80/127.5
    torch.manual_seed(0)
    x = (0.3 * torch.rand(2, 1, 16, 24) - 0.15).requires_grad_(True)  # far from the clamp
    BlockCodec((40, 40))(x).sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x), atol=1e-4)


def test_refiner_codec_draws_come_from_the_generator() -> None:
    r = Refiner(width=4, blocks=1, noise_channels=0, codec=True, codec_quality=(5, 95))
    assert r.draws_noise
    x = torch.rand(6, 1, 16, 24) * 2 - 1
    a = apply_refiner(r, x, torch.Generator().manual_seed(3))
    b = apply_refiner(r, x, torch.Generator().manual_seed(3))
    c = apply_refiner(r, x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    gen = torch.Generator().manual_seed(3)
    r.skip_noise(2, 16, 24, gen)  # the draws of rows 0-1, skipped
    assert torch.equal(apply_refiner(r, x[2:], gen), a[2:])
    assert not Refiner(width=4, blocks=1, noise_channels=0).draws_noise


def test_codec_quality_params_are_checked() -> None:
    assert RefinerNetParams(codec_quality=[30, 85]).codec_quality == (30, 85)
    assert not RefinerNetParams().codec
    with pytest.raises(ValueError, match="low <= high"):
        RefinerNetParams(codec_quality=[85, 30])
    with pytest.raises(ValueError):
        RefinerNetParams(codec_quality=[0, 50])
