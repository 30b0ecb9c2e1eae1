"""Depth-sensor jitter (the sensor-blind hand label model's augmentation), on hand-built crops:
which pixels each artefact may touch, the values it may give them, amounts drawn per image,
no change and no draws at zero."""

from __future__ import annotations

import numpy as np
import torch

from simgan.core.images import JUMP, depth_inside, smooth_noise
from simgan.hand.sensor_jitter import erode_silhouette, jag_edges, sensor_jitter


def _square_hands(n: int = 4, size: int = 32) -> torch.Tensor:
    """Background -1 with a flat 'hand' square at 0.5 and a nearer 'finger' bar at 0.9."""
    x = torch.full((n, 1, size, size), -1.0)
    x[:, :, 8:24, 8:24] = 0.5
    x[:, :, 12:14, 4:28] = 0.9
    return x


def _edges(x: torch.Tensor) -> torch.Tensor:
    """Pixels with an 8-neighbour more than JUMP away, computed by explicit shifts."""
    edge = torch.zeros_like(x, dtype=torch.bool)
    pad = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    h, w = x.shape[-2:]
    for dv in (-1, 0, 1):
        for du in (-1, 0, 1):
            nb = pad[..., 1 + dv : 1 + dv + h, 1 + du : 1 + du + w]
            edge |= (nb - x).abs() > JUMP
    return edge


def test_zero_amounts_change_nothing_and_draw_nothing():
    x = _square_hands()
    gen = torch.Generator().manual_seed(3)
    before = gen.get_state()
    assert torch.equal(sensor_jitter(x, gen), x)
    assert torch.equal(gen.get_state(), before)


def test_smooth_noise_has_unit_variance_and_is_correlated_between_neighbours():
    z = smooth_noise((8, 1, 64, 64), torch.Generator().manual_seed(0))[..., 2:-2, 2:-2]
    assert abs(float(z.std()) - 1.0) < 0.03
    # [1 2 1]^2 / 16 of white noise: neighbour correlation (1/4 + 1/4) / (6/16) ... = 2/3 along
    # one axis (the 1-D kernel's autocorrelation at lag 1 over its energy: 0.5 / 0.75)
    r = float((z[..., :, 1:] * z[..., :, :-1]).mean())
    assert abs(r - 2.0 / 3.0) < 0.03


def test_jag_with_zero_displacement_is_the_identity_and_keeps_flat_depth_flat():
    x = _square_hands(2)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(jag_edges(x, torch.zeros(2), gen), x)
    flat = torch.full((2, 1, 16, 16), 0.25)
    assert torch.equal(jag_edges(flat, torch.tensor([2.0, 3.0]), gen), flat)


def test_jag_moves_only_pixels_near_edges_and_only_to_values_present_in_the_image():
    x = _square_hands(4)
    y = sensor_jitter(x, torch.Generator().manual_seed(1), jag=1.5)
    assert set(torch.unique(y).tolist()) <= set(torch.unique(x).tolist())  # nearest resampling
    changed = y != x
    assert bool(changed.any())
    # a displacement of a few px cannot reach 6 px into the square's interior
    far_from_edges = torch.ones_like(x, dtype=torch.bool)
    far_from_edges[:, :, 2:30, 0:32] = False
    assert not bool(changed[far_from_edges].any())


def test_flying_pixels_sit_on_edges_between_their_farthest_and_nearest_neighbour():
    x = _square_hands(4)
    y = sensor_jitter(x, torch.Generator().manual_seed(2), flying=1.0)
    changed = y != x
    assert bool(changed.any())
    assert not bool(changed[~_edges(x)].any())
    near = torch.nn.functional.max_pool2d(x, 3, 1, 1)
    far = -torch.nn.functional.max_pool2d(-x, 3, 1, 1)
    assert bool(((y >= far) & (y <= near))[changed].all())


def test_holes_drop_only_hand_pixels_at_an_edge_to_background():
    x = _square_hands(4)
    y = sensor_jitter(x, torch.Generator().manual_seed(4), holes=1.0)
    changed = y != x
    assert bool(changed.any())
    assert bool((y[changed] == -1.0).all())
    near = torch.nn.functional.max_pool2d(x, 3, 1, 1)
    far = -torch.nn.functional.max_pool2d(-x, 3, 1, 1)
    hand_edge = _edges(x) & (x > far + JUMP)
    assert not bool(changed[~hand_edge].any())
    assert bool((near >= x).all())


def test_noise_touches_only_depth_and_its_std_is_drawn_per_image():
    x = torch.full((4, 1, 64, 64), 0.0)
    x[:, :, :, :8] = -1.0  # a background strip stays exactly background
    y = sensor_jitter(x, torch.Generator().manual_seed(6), noise=10.0)
    assert bool((y[..., :8] == -1.0).all())
    u = torch.rand(4, generator=torch.Generator().manual_seed(6))
    std = y[..., 8:].flatten(1).std(1) * 127.5
    np.testing.assert_allclose(std.numpy(), (10 * u).numpy(), rtol=0.05)


def test_same_generator_seed_gives_the_same_bytes():
    x = _square_hands(3)
    kw = dict(jag=1.0, flying=0.5, holes=0.8, noise=3.0)
    a = sensor_jitter(x, torch.Generator().manual_seed(9), **kw)
    b = sensor_jitter(x, torch.Generator().manual_seed(9), **kw)
    assert torch.equal(a, b)
    assert float(a.min()) >= -1.0 and float(a.max()) <= 1.0


def test_label_model_section_adds_its_augmentation_to_the_hourglass_or_stands_aside():
    from simgan.hand.estimator_params import PoseEstimatorParams, SensorLabelModelParams

    base = PoseEstimatorParams(width=4, epochs=1)
    off = SensorLabelModelParams(jag_jitter=0, flying_jitter=0, hole_jitter=0,
                                 depth_noise_jitter=0)
    assert off.estimator(base) is None  # the synthetic-trained hourglass serves
    on = off.model_copy(update={"hole_jitter": 0.8, "depth_noise_jitter": 3.0})
    label = on.estimator(base)
    assert (label.hole_jitter, label.depth_noise_jitter, label.jag_jitter) == (0.8, 3.0, 0.0)
    assert label.model_dump(exclude={"hole_jitter", "depth_noise_jitter"}) == base.model_dump()
    # at zero the new keys stay out of dumps: earlier hourglasses keep their fingerprints
    assert "jag_jitter" not in base.model_dump() and "hole_jitter" in label.model_dump()
    assert "erode_jitter" not in on.model_dump() and "erode_jitter" not in label.model_dump()
    eroding = on.model_copy(update={"erode_jitter": 2.5})
    assert eroding.model_dump()["erode_jitter"] == 2.5
    assert eroding.estimator(base).erode_jitter == 2.5


def test_depth_inside_counts_rings_of_a_square_and_ignores_the_image_border():
    hand = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    hand[..., 2:7, 2:7] = True
    d = depth_inside(hand, 5)[0, 0]
    expected = torch.zeros(9, 9)
    expected[2:7, 2:7] = 1
    expected[3:6, 3:6] = 2
    expected[4, 4] = 3
    assert torch.equal(d, expected)
    # counted up to ``steps`` only; a hand filling the image has no boundary at the border
    assert float(depth_inside(hand, 2).max()) == 2
    full = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    assert torch.equal(depth_inside(full, 3), torch.full((1, 1, 4, 4), 3.0))


def test_erosion_removes_a_ragged_band_of_the_drawn_width_from_the_silhouette_only():
    n, size = 64, 40
    x = torch.full((n, 1, size, size), -1.0)
    x[..., 8:32, 8:32] = 0.4
    gen = torch.Generator().manual_seed(5)
    assert torch.equal(erode_silhouette(x, torch.zeros(n), gen), x)  # width 0: nothing goes
    y = erode_silhouette(x, torch.ones(n), gen)
    gone = (y != x)
    assert bool((y[gone] == -1.0).all()) and bool((x[gone] == 0.4).all())
    d = depth_inside(x > -0.9, 4)
    # width 1, factor 1 + N/2 (N ~ unit normal): a ring-1 pixel goes when N >= 0 (half of
    # them), a ring-2 pixel when N >= 2 (2.3 %), a ring-3 pixel when N >= 4 (none)
    share = [float(gone[d == k].float().mean()) for k in (1, 2, 3)]
    assert abs(share[0] - 0.5) < 0.05
    assert 0.005 < share[1] < 0.05
    assert share[2] < 0.002
    # the band is never wider than twice the width, however deep the hand: a 40 px square
    # eroded at width 2 keeps everything 5 px or more inside
    big = torch.full((16, 1, 48, 48), -1.0)
    big[..., 4:44, 4:44] = 0.4
    kept = erode_silhouette(big, torch.full((16,), 2.0), torch.Generator().manual_seed(1))
    assert bool((kept[..., 8:40, 8:40] == 0.4).all())


def test_wider_erosion_removes_more_of_the_hand():
    x = _square_hands(32)
    kept = [float((sensor_jitter(x, torch.Generator().manual_seed(2), erode=e) > -0.99).sum())
            for e in (0.0, 1.0, 2.0, 3.0)]
    assert kept[0] > kept[1] > kept[2] > kept[3]
