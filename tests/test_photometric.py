"""Photometric jitter (the appearance-blind label model's augmentation), on hand-computed
cases: the blur kernel's taps and spread, gamma and noise amounts drawn per image, no change
and no draws at zero."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simgan.gaze.photometric import gaussian_blur, photometric_jitter


def test_blur_of_an_impulse_is_the_normalised_gaussian_and_zero_sigma_is_identity():
    x = torch.zeros(2, 1, 9, 9)
    x[:, 0, 4, 4] = 1.0
    y = gaussian_blur(x, torch.tensor([1.0, 0.0]), radius=3)
    t = np.arange(-3, 4)
    k = np.exp(-0.5 * t**2)
    k /= k.sum()
    np.testing.assert_allclose(y[0, 0, 1:8, 1:8].numpy(), np.outer(k, k), atol=1e-6)
    assert float(y[0].sum()) == pytest.approx(1.0, abs=1e-5)
    assert torch.equal(y[1], x[1])


def test_blur_keeps_flat_images_flat_up_to_the_border():
    x = torch.full((3, 1, 6, 10), 0.3)
    y = gaussian_blur(x, torch.tensor([0.5, 1.0, 2.0]), radius=6)
    torch.testing.assert_close(y, x)


def test_jitter_draws_gamma_blur_and_noise_per_image_from_the_generator():
    x = torch.linspace(-1, 1, 4 * 8 * 8).view(4, 1, 8, 8)
    out = photometric_jitter(x, torch.Generator().manual_seed(5), gamma=0.5)
    u = torch.rand(4, generator=torch.Generator().manual_seed(5))
    g = torch.exp(0.5 * (2 * u - 1)).view(4, 1, 1, 1)
    torch.testing.assert_close(out, ((x + 1) / 2).pow(g) * 2 - 1)

    flat = torch.zeros(4, 1, 64, 64)
    noisy = photometric_jitter(flat, torch.Generator().manual_seed(6), noise=10.0)
    u = torch.rand(4, generator=torch.Generator().manual_seed(6))
    std = noisy.flatten(1).std(1) * 127.5
    np.testing.assert_allclose(std.numpy(), (10 * u).numpy(), rtol=0.05)


def test_tone_draws_contrast_then_brightness_per_image_and_clamps():
    x = torch.linspace(-1, 1, 3 * 4 * 4).view(3, 1, 4, 4)
    out = photometric_jitter(x, torch.Generator().manual_seed(2), brightness=0.2, contrast=0.5)
    gen = torch.Generator().manual_seed(2)
    c = 1 + 0.5 * (2 * torch.rand(3, 1, 1, 1, generator=gen) - 1)
    d = 0.2 * (2 * torch.rand(3, 1, 1, 1, generator=gen) - 1)
    torch.testing.assert_close(out, (x * c + d).clamp(-1, 1), rtol=0, atol=0)
    # brightness alone still draws the contrast factor first (the estimator's batch order)
    only_b = photometric_jitter(x, torch.Generator().manual_seed(2), brightness=0.2)
    torch.testing.assert_close(only_b, (x + d).clamp(-1, 1), rtol=0, atol=0)


def test_zero_amounts_change_nothing_and_draw_nothing():
    x = torch.rand(3, 1, 5, 7) * 2 - 1
    gen = torch.Generator().manual_seed(1)
    before = gen.get_state()
    assert torch.equal(photometric_jitter(x, gen), x)
    assert torch.equal(gen.get_state(), before)


def test_blur_radius_covers_three_sigma():
    # the jitter picks radius ceil(3 * blur): a 1.5 px blur gets 5 taps a side, and the
    # truncated kernel's spread is within 2 % of the requested sigma
    sigma, radius = 1.5, math.ceil(3 * 1.5)
    x = torch.zeros(1, 1, 1, 2 * radius + 1)
    x[..., radius] = 1.0
    row = gaussian_blur(x.expand(1, 1, 2 * radius + 1, 2 * radius + 1).contiguous(),
                        torch.tensor([sigma]), radius)[0, 0, radius]
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    spread = math.sqrt(float((row * t**2).sum() / row.sum()))
    assert abs(spread - sigma) / sigma < 0.02


def test_label_model_section_adds_its_augmentation_to_the_estimator_or_stands_aside():
    from simgan.gaze.estimator_params import EstimatorParams, LabelModelParams

    base = EstimatorParams(widths=(4, 4, 8, 8, 16), fc_hidden=8, epochs=2)
    off = LabelModelParams(brightness_jitter=0, contrast_jitter=0, gamma_jitter=0,
                           blur_jitter=0, noise_jitter=0)
    assert off.estimator(base) is None  # the synthetic-trained estimator serves
    on = off.model_copy(update={"blur_jitter": 1.5, "noise_jitter": 10.0})
    label = on.estimator(base)
    assert (label.blur_jitter, label.noise_jitter, label.gamma_jitter) == (1.5, 10.0, 0.0)
    assert label.model_dump(exclude={"blur_jitter", "noise_jitter"}) == base.model_dump()
    # at zero the new keys stay out of dumps: earlier estimators keep their fingerprints
    assert not {"gamma_jitter", "blur_jitter", "noise_jitter"} & set(base.model_dump())
    with pytest.raises(ValueError, match="blur_jitter"):
        LabelModelParams(**{**off.model_dump(), "blur_jitter": 9.0})
