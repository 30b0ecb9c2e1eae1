"""The two SimGAN losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from simgan.core.refiner.losses import REAL, REFINED, adversarial_loss, self_regularisation


def _ce(logit_target: float, logit_other: float) -> float:
    """-log softmax for one patch, written out."""
    return -logit_target + math.log(math.exp(logit_target) + math.exp(logit_other))


def test_adversarial_loss_sums_patches_of_a_1x2x2x2_map() -> None:
    # channel 0 = refined, channel 1 = real; 2x2 patches
    refined_logits = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    real_logits = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    logits = torch.stack([refined_logits, real_logits]).unsqueeze(0)  # (1, 2, 2, 2)
    patches = [(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (-1.0, 1.0)]  # (refined, real) per patch
    want_real = sum(_ce(r, f) for f, r in patches)
    want_refined = sum(_ce(f, r) for f, r in patches)
    assert adversarial_loss(logits, REAL).item() == pytest.approx(want_real, rel=1e-6)
    assert adversarial_loss(logits, REFINED).item() == pytest.approx(want_refined, rel=1e-6)
    assert adversarial_loss(logits, REAL, "mean").item() == pytest.approx(want_real / 4, rel=1e-6)


def test_adversarial_loss_averages_over_batch() -> None:
    one = torch.randn(1, 2, 3, 4)
    two = torch.cat([one, one])
    assert adversarial_loss(two, REAL).item() == pytest.approx(adversarial_loss(one, REAL).item())
    zeros = torch.zeros(5, 2, 3, 4)  # chance: log 2 per patch, 12 patches
    assert adversarial_loss(zeros, REFINED).item() == pytest.approx(12 * math.log(2), rel=1e-6)


def test_self_regularisation_identity_mean_and_sum() -> None:
    x = torch.zeros(2, 1, 2, 2)
    r = torch.tensor([[1.0, -1.0], [0.5, 0.0]]).expand(2, 1, 2, 2)
    assert self_regularisation(r, x, 0.5).item() == pytest.approx(0.5 * 2.5 / 4)
    assert self_regularisation(r, x, 0.5, reduction="sum").item() == pytest.approx(0.5 * 2.5)


def test_self_regularisation_local_mean_ignores_zero_mean_texture() -> None:
    x = torch.zeros(1, 1, 6, 6)
    checker = (torch.arange(6)[:, None] + torch.arange(6)[None, :]) % 2 * 2.0 - 1.0
    r = checker.view(1, 1, 6, 6) * 0.2
    ident = self_regularisation(r, x, 1.0)
    local = self_regularisation(r, x, 1.0, feature="local_mean", kernel=3)
    assert ident.item() == pytest.approx(0.2)
    assert local.item() < 0.1 * ident.item()
