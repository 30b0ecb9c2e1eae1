"""The two SimGAN losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from simgan.core.refiner.losses import (
    REAL,
    REFINED,
    adversarial_loss,
    background_fill,
    far_background_mask,
    interior_detail,
    interior_mask,
    r1_penalty,
    self_regularisation,
)


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


def test_adversarial_loss_image_decision_pools_the_patch_logits() -> None:
    # the same 2x2 map: mean refined logit (0+1+2-1)/4 = 0.5, mean real logit 0.25
    refined_logits = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    real_logits = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    logits = torch.stack([refined_logits, real_logits]).unsqueeze(0)
    assert adversarial_loss(logits, REAL, "image").item() == pytest.approx(
        4 * _ce(0.25, 0.5), rel=1e-6)
    assert adversarial_loss(logits, REFINED, "image").item() == pytest.approx(
        4 * _ce(0.5, 0.25), rel=1e-6)
    # at chance it weighs what "sum" does, so lambda_reg keeps its meaning
    zeros = torch.zeros(5, 2, 3, 4)
    assert adversarial_loss(zeros, REAL, "image").item() == pytest.approx(12 * math.log(2))
    # uniform weak evidence (0.2 on each of 12 patches): pooling changes no decision
    weak = torch.zeros(1, 2, 3, 4)
    weak[:, REFINED] = 0.2
    per_patch = adversarial_loss(weak, REFINED, "sum").item() / 12
    pooled = adversarial_loss(weak, REFINED, "image").item() / 12
    assert pooled == pytest.approx(per_patch)  # uniform evidence: the same decision
    mixed = weak.clone()
    mixed[0, REFINED, 0, :] = -0.2  # a third of the patches say the opposite
    assert adversarial_loss(mixed, REFINED, "image").item() < adversarial_loss(
        mixed, REFINED, "sum").item()


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


def test_r1_penalty_of_a_1x1_conv_discriminator_by_hand() -> None:
    """D = 1x1 conv with weights (w_refined, w_real) = (0.5, 2.0) on a 1-channel 3x4 image:
    realness = sum over pixels of (2.0 - 0.5) * x, so its gradient is 1.5 at every pixel and
    the penalty 1.5^2 * 12 = 27 per image, whatever the image; the square of a second-order
    term, x^2 with weight 1 on the real logit, adds 2x to the gradient."""
    conv = torch.nn.Conv2d(1, 2, 1, bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.5, 2.0]).view(2, 1, 1, 1))
        conv.bias.copy_(torch.tensor([3.0, -1.0]))
    y = torch.randn(2, 1, 3, 4, requires_grad=True)
    assert r1_penalty(conv(y), y).item() == pytest.approx(27.0, rel=1e-6)
    # a quadratic D: real logit x^2 + 1.5 x -> gradient 2x + 1.5 per pixel
    y2 = torch.tensor([[[[0.0, 1.0], [-1.0, 2.0]]]], requires_grad=True)
    logits = torch.cat([torch.zeros_like(y2), y2.pow(2) + 1.5 * y2], 1)
    want = sum((2 * v + 1.5) ** 2 for v in (0.0, 1.0, -1.0, 2.0))
    assert r1_penalty(logits, y2).item() == pytest.approx(want, rel=1e-6)
    # the graph is kept: the penalty has a gradient with respect to D's weights
    r1_penalty(conv(y), y).backward()
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def _square(value: float = 0.0) -> torch.Tensor:
    """11x11 depth crop: a 9x9 surface (rows and columns 1-9) at ``value`` on no-reading -1."""
    x = torch.full((1, 1, 11, 11), -1.0)
    x[..., 1:10, 1:10] = value
    return x


def test_interior_mask_erodes_the_surface_by_the_margin() -> None:
    x = _square()
    for margin, side in ((1, 7), (2, 5), (4, 1)):
        m = interior_mask(x, margin)
        assert m.sum().item() == side * side
        lo = 1 + margin
        assert m[..., lo:lo + side, lo:lo + side].min().item() == 1.0
    # the image border is not a silhouette: a surface filling the crop is interior throughout
    assert interior_mask(torch.zeros(1, 1, 6, 6), 2).sum().item() == 36


def test_interior_detail_counts_new_fine_detail_inside_only() -> None:
    x = _square()
    bump = x.clone()
    bump[..., 5, 5] += 0.4  # a spike at the centre: Laplacian -1.6 there, +0.4 at 4 neighbours
    assert interior_detail(bump, x, 1).item() == pytest.approx(3.2 / 121, rel=1e-6)
    edge = x.clone()
    edge[..., 1, 5] += 0.4  # on the silhouette: only the inner neighbour (2, 5) is interior
    assert interior_detail(edge, x, 1).item() == pytest.approx(0.4 / 121, rel=1e-6)
    assert interior_detail(edge, x, 2).item() == 0.0
    hole = x.clone()
    hole[..., 1, 4:7] = -1.0  # a hole eaten into the edge: free at margin 2
    assert interior_detail(hole, x, 2).item() == 0.0
    # a change of the low frequencies (a constant offset of the surface inside) is free too
    shifted = _square(0.3)
    assert interior_detail(shifted, _square(0.0), 2).item() == 0.0


def _small_hand() -> torch.Tensor:
    """15x15 crop: a 5x5 surface (rows and columns 5-9) at 0.5 on no-reading -1."""
    x = torch.full((1, 1, 15, 15), -1.0)
    x[..., 5:10, 5:10] = 0.5
    return x


def test_far_background_mask_leaves_a_band_of_the_margin_around_the_silhouette() -> None:
    x = _small_hand()
    # margin m: everything but the surface dilated to (5 + 2m)^2
    for margin, kept in ((0, 225 - 25), (1, 225 - 49), (2, 225 - 81)):
        m = far_background_mask(x, margin)
        assert m.sum().item() == kept
        assert m[..., 5:10, 5:10].max().item() == 0.0
    assert far_background_mask(x, 2)[..., 0, 0].item() == 1.0


def test_background_fill_charges_depth_far_from_the_hand_only() -> None:
    x = _small_hand()
    haze = x.clone()
    haze[x < 0] += 0.2  # the whole background lifted by 0.2
    assert background_fill(haze, x, 2).item() == pytest.approx(144 * 0.2 / 225, rel=1e-6)
    # an eroded edge and a flying pixel next to the hand are free; so is any change inside
    edge = x.clone()
    edge[..., 5, 5:10] = -1.0
    edge[..., 4, 7] = 0.1
    edge[..., 7, 7] = 0.9
    assert background_fill(edge, x, 2).item() == 0.0
    assert background_fill(edge, x, 0).item() == pytest.approx(1.1 / 225, rel=1e-6)
