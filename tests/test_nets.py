"""Shapes of the three networks, at paper sizes and at narrow CPU sizes."""

from __future__ import annotations

import pytest
import torch

from simgan.core.refiner.discriminator import EYE, HAND, PatchDiscriminator
from simgan.core.refiner.net import Refiner
from simgan.gaze.net import GazeCNN


@pytest.mark.parametrize("output", ["residual", "tanh"])
def test_refiner_keeps_shape_and_range(output: str) -> None:
    r = Refiner(width=8, blocks=2, output=output)
    x = torch.rand(3, 1, 35, 55) * 2 - 1
    y = r(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


def test_residual_refiner_starts_as_identity() -> None:
    x = torch.rand(2, 1, 35, 55) * 2 - 1
    assert torch.equal(Refiner(width=8, blocks=1)(x), x)


def _trained_looking(**kwargs) -> Refiner:
    """A refiner whose zero-initialised residual tail has small weights, as after training
    (small: the output must not saturate at the clamp, which would hide any seam)."""
    torch.manual_seed(0)
    r = Refiner(**kwargs)
    torch.nn.init.normal_(r.tail.weight, std=0.05)
    torch.nn.init.normal_(r.tail.bias, std=0.05)
    return r


def test_zero_padding_leaves_a_seam_that_replicate_padding_does_not() -> None:
    flat = torch.full((1, 1, 12, 16), 0.2)
    seam = _trained_looking(width=4, blocks=2, padding="zeros")(flat)
    assert seam.abs().max() < 0.99  # not saturated
    assert (seam[0, 0, 0] - seam[0, 0, 6]).abs().max() > 1e-3  # the edge sees a black frame
    out = _trained_looking(width=4, blocks=2, padding="replicate")(flat)
    assert torch.allclose(out, out[0, 0, 0, 0].expand_as(out), atol=1e-6)  # flat stays flat


def test_grid_phase_is_one_hot_in_the_pixels_block_position() -> None:
    r = Refiner(width=4, blocks=1, grid_period=8)
    g = r._grid_phase(torch.zeros(2, 1, 11, 19))
    assert g.shape == (2, 16, 11, 19)
    assert torch.equal(g.sum(1), torch.full((2, 11, 19), 2.0))  # one column, one row phase
    assert g[0, 17 % 8, 3, 17] == 1 and g[0, 8 + 10 % 8, 10, 4] == 1


def test_grid_phase_makes_the_refiner_periodic_not_translation_invariant() -> None:
    r = _trained_looking(width=4, blocks=1, grid_period=8, padding="replicate")
    out = r(torch.full((1, 1, 24, 32), 0.1))[0, 0]
    assert torch.allclose(out[:, 4:12], out[:, 12:20], atol=1e-6)  # period 8 across columns
    assert (out[8, 4:12] - out[8, 5:13]).abs().max() > 1e-4  # but not shift-invariant


def test_refiner_paper_sizes() -> None:
    eye = Refiner(width=64, blocks=4, kernel=3)
    assert eye(torch.zeros(1, 1, 35, 55)).shape == (1, 1, 35, 55)
    convs = [m for m in eye.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 + 2 * 4 + 1 and convs[-1].kernel_size == (1, 1)
    hand = Refiner(width=8, blocks=10, kernel=7)
    assert hand(torch.zeros(1, 1, 64, 64)).shape == (1, 1, 64, 64)


def test_discriminator_paper_eye_and_hand_layouts() -> None:
    d = PatchDiscriminator(**EYE)
    assert d(torch.zeros(2, 1, 35, 55)).shape == (2, 2, 9, 14)
    widths = [m.out_channels for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert widths == [96, 64, 32, 32, 2]
    hand = PatchDiscriminator(**HAND)
    out = hand(torch.zeros(1, 1, 224, 224))
    assert out.shape[:2] == (1, 2) and out.shape[2:] == (7, 7)
    narrow = PatchDiscriminator(widths=(16, 16, 8, 8))
    assert narrow(torch.zeros(4, 1, 35, 55)).shape == (4, 2, 9, 14)


def test_discriminator_rejects_inconsistent_layout() -> None:
    with pytest.raises(ValueError):
        PatchDiscriminator(widths=(8, 8), kernels=(3,), strides=(1, 1))


def test_gaze_cnn_paper_flatten_is_9600() -> None:
    net = GazeCNN()
    assert net.flat_size == 9600
    assert net(torch.zeros(2, 1, 35, 55)).shape == (2, 3)


def test_gaze_cnn_half_width_and_batch_norm_untouched_by_probe() -> None:
    net = GazeCNN(widths=(16, 16, 32, 40, 96), fc_hidden=500, batch_norm=True)
    assert net.flat_size == 96 * 5 * 10
    bn = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(int(m.num_batches_tracked) == 0 for m in bn)
    out = net(torch.zeros(2, 1, 35, 55).contiguous(memory_format=torch.channels_last))
    assert out.shape == (2, 3)


def test_noise_refiner_is_reproducible_with_a_generator() -> None:
    r = Refiner(width=4, blocks=1, noise_channels=2)
    torch.nn.init.normal_(r.tail.weight, std=0.1)  # leave the identity so noise shows
    x = torch.zeros(2, 1, 8, 8)
    a = r(x, generator=torch.Generator().manual_seed(5))
    b = r(x, generator=torch.Generator().manual_seed(5))
    c = r(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a[0].std() > 0  # a flat input gets texture


def test_multi_scale_noise_keeps_the_single_scale_draws_and_adds_smooth_fields():
    from simgan.core.refiner.net import Refiner

    torch.manual_seed(0)
    one = Refiner(width=4, blocks=1, noise_channels=2)
    x = torch.zeros(3, 1, 7, 10)
    a = one._noise(x, torch.Generator().manual_seed(5))
    b = torch.randn(3, 2, 7, 10, generator=torch.Generator().manual_seed(5))
    assert len(a) == 1 and torch.equal(a[0], b)  # scale 1 alone: the draws of before
    multi = Refiner(width=4, blocks=1, noise_channels=2, noise_scales=(1, 4))
    maps = multi._noise(x, torch.Generator().manual_seed(5))
    assert torch.equal(maps[0], b)  # the per-pixel field comes first, as before
    coarse = maps[1]
    assert coarse.shape == (3, 2, 7, 10)
    # upsampled from a 2x3 field: neighbours are far more alike than in per-pixel noise
    def roughness(z):
        return float((z[..., 1:] - z[..., :-1]).abs().mean() / z.std())
    assert roughness(coarse) < 0.5 * roughness(b)
    assert multi.head[0].in_channels == 1 + 2 * 2
    out = multi(x, generator=torch.Generator().manual_seed(1))
    again = multi(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again) and out.shape == x.shape


def test_spectral_norm_bounds_every_conv_of_the_discriminator():
    from simgan.core.refiner.discriminator import PatchDiscriminator

    torch.manual_seed(0)
    d = PatchDiscriminator(widths=(8, 8), kernels=(3, 1), strides=(2, 1), pool_after=1,
                           spectral_norm=True)
    d.train()
    x = torch.randn(4, 1, 12, 16)
    for _ in range(30):  # power iterations converge during forward passes in train mode
        d(x)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 3
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
        assert float(sigma) == pytest.approx(1.0, abs=0.05)


def _checkerboard_share(g: torch.Tensor) -> float:
    """The share of ``g``'s energy at the Nyquist frequency (a +-1 checkerboard pattern)."""
    h, w = g.shape[-2:]
    sign = (-1.0) ** (torch.arange(h)[:, None] + torch.arange(w)[None, :])
    return float((g * sign).sum(dim=(-2, -1)).pow(2).sum() / (g.pow(2).sum() * h * w))


def test_antialias_blurs_before_each_strided_conv_and_smooths_ds_gradient() -> None:
    from simgan.core.refiner.discriminator import Blur

    flat = torch.full((1, 3, 5, 7), 0.3)
    assert torch.allclose(Blur(3)(flat), flat)  # a blur keeps a flat image
    layout = {"widths": (8, 8, 4, 4), "kernels": (3, 3, 3, 1), "strides": (2, 2, 1, 1)}
    shares = {}
    for antialias in (False, True):
        torch.manual_seed(0)
        d = PatchDiscriminator(**layout, antialias=antialias)
        blurs = [m for m in d.net if isinstance(m, Blur)]
        assert len(blurs) == (2 if antialias else 0)
        x = torch.rand(4, 1, 32, 48).requires_grad_(True)
        out = d(x)
        assert out.shape == (4, 2, 8, 12)  # the patch map is unchanged
        out[:, 1].sum().backward()
        shares[antialias] = _checkerboard_share(x.grad)
    assert shares[True] < 0.1 * shares[False]


def test_straight_through_saturation_keeps_the_gradient_of_clipped_pixels() -> None:
    x = torch.tensor([[[[-0.99, 0.0, 0.99]]]])
    grads = {}
    for saturation in ("clamp", "straight_through"):
        r = Refiner(width=2, blocks=0, kernel=1, noise_channels=0, saturation=saturation)
        torch.nn.init.zeros_(r.tail.weight)
        torch.nn.init.constant_(r.tail.bias, -0.5)  # R darkens by 0.5: pixel 0 clips at -1
        y = r(x)
        assert torch.allclose(y, torch.tensor([[[[-1.0, -0.5, 0.49]]]]))
        y[0, 0, 0, 0].backward()
        grads[saturation] = float(r.tail.bias.grad)
    assert grads == {"clamp": 0.0, "straight_through": 1.0}


def test_warp_starts_as_identity_and_moves_at_most_warp_px() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 1, 12, 16) * 2 - 1
    r = Refiner(width=4, blocks=1, noise_channels=0, warp_px=1.0)
    assert torch.allclose(r(x), x, atol=1e-5)  # zero-initialised map: no displacement
    torch.nn.init.constant_(r.warp.bias, 50.0)  # tanh saturates: du = dv = +1 px exactly
    shifted = r(x)
    assert torch.allclose(shifted[..., :-1, :-1], x[..., 1:, 1:], atol=1e-5)
    torch.nn.init.constant_(r.warp.bias, 0.0)
    torch.nn.init.constant_(r.warp.weight, 0.0)
    r.warp.bias.data[0] = 0.5493  # atanh(0.5): half a pixel to the right, bilinear
    half = r(x)
    assert torch.allclose(half[..., :-1], 0.5 * (x[..., :-1] + x[..., 1:]), atol=1e-4)


def test_warp_learns_from_the_first_step() -> None:
    """Zero-initialised like the residual, but with a gradient: R can start moving edges."""
    x = torch.zeros(1, 1, 8, 8)
    x[..., :, 4:] = 1.0  # a vertical edge
    r = Refiner(width=4, blocks=1, noise_channels=0, warp_px=2.0)
    r(x)[..., :, 3].sum().backward()
    assert r.warp.bias.grad[0] != 0  # moving horizontally changes the column at the edge
    assert r.warp.bias.grad[1] == 0  # moving vertically does not


def test_warp_px_is_left_out_of_dumps_when_off() -> None:
    """Runs recorded before the key existed keep their hashes and saved architectures."""
    from simgan.core.refiner.net import load_refiner, refiner_file
    from simgan.core.refiner.params import RefinerNetParams

    assert "warp_px" not in RefinerNetParams().model_dump()
    net = RefinerNetParams(width=4, blocks=1, warp_px=1.5)
    assert net.model_dump()["warp_px"] == 1.5
    r = Refiner(**net.model_dump())
    loaded = load_refiner(refiner_file(r.state_dict(), net, {}))
    assert loaded.warp_px == 1.5 and loaded.warp is not None


def test_warp_needs_the_residual_output() -> None:
    """A tanh refiner has no input to move: the key would be ignored, so it is refused."""
    from pydantic import ValidationError

    from simgan.core.refiner.params import RefinerNetParams

    with pytest.raises(ValidationError, match="warp_px"):
        RefinerNetParams(output="tanh", warp_px=1.0)
    with pytest.raises(ValueError, match="warp_px"):
        Refiner(width=4, blocks=1, output="tanh", warp_px=1.0)


def test_holes_start_as_identity_drop_where_the_logit_is_positive_and_learn() -> None:
    """At init no pixel drops (exact identity); a positive logit makes the pixel exactly -1;
    the gradient reaches the map from the first step through sigmoid(logit)."""
    from simgan.core.refiner.net import HOLES_INIT_LOGIT

    torch.manual_seed(0)
    x = torch.rand(2, 1, 6, 7) * 2 - 1
    r = Refiner(width=4, blocks=1, noise_channels=0, holes=True)
    assert torch.equal(r(x), x)
    r.holes.bias.data.fill_(1.0)  # weights 0: logit 1 everywhere, every pixel drops
    assert torch.equal(r(x), torch.full_like(x, -1.0))
    r.holes.bias.data.fill_(HOLES_INIT_LOGIT)
    r(x).sum().backward()
    # d out / d logit = -(x + 1) * sigmoid'(-2), summed over pixels
    s = torch.sigmoid(torch.tensor(HOLES_INIT_LOGIT))
    want = -((x + 1).sum() * s * (1 - s))
    assert r.holes.bias.grad.item() == pytest.approx(want.item(), rel=1e-4)


def test_holes_are_left_out_of_dumps_when_off_and_travel_with_the_weights() -> None:
    from simgan.core.refiner.net import load_refiner, refiner_file
    from simgan.core.refiner.params import RefinerNetParams

    assert "holes" not in RefinerNetParams().model_dump()
    net = RefinerNetParams(width=4, blocks=1, holes=True)
    r = Refiner(**net.model_dump())
    r.holes.bias.data.fill_(0.5)
    loaded = load_refiner(refiner_file(r.state_dict(), net, {}))
    assert loaded.holes is not None and loaded.holes.bias.item() == 0.5
