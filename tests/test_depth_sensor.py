"""The refiner's learned depth sensor: each artefact by hand on a square 'hand', its draws,
its gradients, and the trainer and selector judging the scene before it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simgan.core.refiner.depth_sensor import LearnedDepthSensor, hard_with_soft_gradient, resample
from simgan.core.refiner.identity import capture_only_note, identity_reason
from simgan.core.refiner.net import Refiner, load_refiner, refiner_file
from simgan.core.refiner.params import DiscriminatorParams, RefinerNetParams, RefinerTrainParams
from simgan.core.refiner.selection import Selector
from simgan.core.refiner.trainer import RefinerTrainer
from tests.refiner_draws import assert_skip_matches_refining

NONE = {"jag_px": 1e-4, "erode_px": 1e-4, "flying": 1e-6, "holes": 1e-6, "noise": 1e-4}
"""Every amount as close to 0 as the logit allows: the sensor does (almost) nothing."""


def _square(n: int = 4, size: int = 16, level: float = 0.5) -> torch.Tensor:
    """``n`` flat 8 x 8 'hands' at ``level`` in the middle of an empty (-1) crop."""
    x = torch.full((n, 1, size, size), -1.0)
    x[:, :, 4:12, 4:12] = level
    return x


def _lost_and_outer_ring(x: torch.Tensor, out: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """The hand pixels of :func:`_square` that lost their reading, and its outer ring."""
    ring = torch.zeros_like(x, dtype=torch.bool)
    ring[:, :, 4:12, 4:12] = True
    ring[:, :, 5:11, 5:11] = False
    return (out < -0.99) & (x > -0.99), ring


def _sensor(**amounts: float) -> LearnedDepthSensor:
    sensor = LearnedDepthSensor()
    sensor.pin({**NONE, **amounts})
    return sensor


def test_hard_decision_with_the_gradient_of_its_sigmoid() -> None:
    z = torch.tensor([-2.0, -0.1, 0.3, 4.0], requires_grad=True)
    out = hard_with_soft_gradient(z)
    assert out.tolist() == [0.0, 0.0, 1.0, 1.0]
    out.sum().backward()
    s = torch.sigmoid(z.detach())
    assert torch.allclose(z.grad, s * (1 - s))


def test_resample_is_nearest_forward_and_bilinear_backward() -> None:
    ramp = torch.arange(8.0).expand(1, 1, 4, 8).contiguous()  # value = column
    shift = torch.zeros(1, 2, 4, 8)
    shift[:, 0] = 0.6  # 0.6 px to the right: nearest takes the next column
    shift.requires_grad_(True)
    out = resample(ramp, shift)
    assert torch.equal(out[0, 0, :, :7], ramp[0, 0, :, 1:])
    assert torch.equal(out[0, 0, :, 7], ramp[0, 0, :, 7])  # border replicated
    out[0, 0, 1, 3].backward()
    assert shift.grad[0, 0, 1, 3].item() == pytest.approx(1.0)  # d(bilinear)/du = the slope
    assert shift.grad[0, 1].abs().sum().item() == 0.0  # nothing changes along v


def test_nothing_pinned_leaves_the_crop_as_it_was() -> None:
    x = _square()
    out = _sensor()(x, torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=0.01)


def test_an_erosion_band_of_one_pixel_removes_the_ring_and_no_more() -> None:
    # widths 1.4 x a factor in [0, 2] that varies along the edge: the outer ring (inside = 1)
    # goes wherever the factor exceeds 1/1.4, the next ring only beyond 2/1.4; nothing deeper
    x = _square()
    out = _sensor(erode_px=1.4)(x, torch.Generator().manual_seed(0))
    lost, ring = _lost_and_outer_ring(x, out)
    assert lost[ring].float().mean() > 0.5  # most of the outer ring
    assert not lost[:, :, 6:10, 6:10].any()  # never 3 px deep (1.4 x 2 = 2.8 < 3)


def test_holes_at_share_one_take_every_hand_edge_pixel_and_only_those() -> None:
    x = _square()
    out = _sensor(holes=0.999)(x, torch.Generator().manual_seed(0))
    lost, ring = _lost_and_outer_ring(x, out)
    assert torch.equal(lost, ring)  # the hand side of the edge; the background side is empty


def test_flying_pixels_take_values_between_their_neighbours() -> None:
    x = _square()
    out = _sensor(flying=0.999)(x, torch.Generator().manual_seed(0))
    changed = (out - x).abs() > 0.01  # (the pinned noise is 1e-4 grey levels)
    away = torch.ones_like(changed)
    away[:, :, 3:13, 3:13] = False
    away[:, :, 6:10, 6:10] = True
    assert not changed[away].any()  # away from the edge: untouched
    assert out.min() >= -1.0 and out.max() <= 0.5 + 1e-5
    assert changed[:, :, 3:13, 3:13].float().mean() > 0.3  # most edge pixels (both sides) fly


def test_depth_noise_has_the_pinned_std_and_spares_the_background() -> None:
    x = _square(n=16, size=32)
    x[:, :, 4:28, 4:28] = 0.2  # a larger flat hand: noise std measured on its inside
    out = _sensor(noise=4.0)(x, torch.Generator().manual_seed(0))
    inside = (out - x)[:, :, 6:26, 6:26] * 127.5
    assert inside.std().item() == pytest.approx(4.0, rel=0.05)
    assert torch.equal(out[:, :, :3], x[:, :, :3])


def test_jagged_edges_move_the_silhouette_not_the_flat_inside() -> None:
    x = _square(n=8, size=32)
    x[:, :, 4:28, 4:28] = 0.2
    out = _sensor(jag_px=1.5)(x, torch.Generator().manual_seed(0))
    changed = (out - x).abs() > 0.01  # (the pinned noise is 1e-4 grey levels)
    assert not changed[:, :, 8:24, 8:24].any()  # flat depth stays flat
    assert changed.float().mean() > 0.02  # the edge moved
    mid = (out > -0.99) & (out < 0.19)
    assert not mid.any()  # nearest: no depth between the hand's and the background's


def test_every_learned_amount_gets_a_gradient() -> None:
    sensor = LearnedDepthSensor()
    x = _square(n=8, size=32)
    x[:, :, 4:28, 4:28] = torch.linspace(0.0, 0.6, 24)
    out = sensor(x, torch.Generator().manual_seed(0))
    (out * torch.randn_like(out)).sum().backward()
    assert sensor.mu.grad is not None and sensor.log_spread.grad is not None
    assert (sensor.mu.grad != 0).all() and (sensor.log_spread.grad != 0).all()


def test_refiner_scene_is_before_the_sensor_and_draws_can_be_skipped() -> None:
    net = RefinerNetParams(width=4, blocks=1, noise_channels=1, padding="replicate",
                           depth_sensor=True)
    r = Refiner(**net.model_dump()).eval()
    r.sensor.pin({**NONE, "holes": 0.9, "noise": 3.0})
    x = _square(n=6)
    scene, out = r(x, torch.Generator().manual_seed(0), with_scene=True)
    assert torch.equal(scene, x)  # a residual refiner starts as the identity
    assert not torch.equal(out, x)
    assert_skip_matches_refining(r, x, 3, seed=5)
    loaded = load_refiner(refiner_file(r.state_dict(), net, {}))
    assert loaded.sensor is not None
    assert "depth_sensor" not in RefinerNetParams(width=4).model_dump()


def test_selection_guards_judge_the_scene_and_mmd_the_output() -> None:
    rng = np.random.default_rng(0)
    synthetic = ((_square(n=40)[:, 0] + 1) * 127.5).round().numpy().astype(np.uint8)
    real = synthetic.copy()
    real[:, 4:12, 4] = 0  # real crops lost a column of the hand's edge
    real = np.clip(real.astype(int) + rng.integers(-3, 4, real.shape) * (real > 0), 0, 255)
    sel = Selector(synthetic, real.astype(np.uint8), torch.device("cpu"), 0.99, 5.0)
    net = RefinerNetParams(width=4, blocks=1, noise_channels=0, depth_sensor=True)
    r = Refiner(**net.model_dump())
    r.sensor.pin({**NONE, "holes": 0.99, "noise": 3.0})
    record = sel.score(r)
    assert record["drift"] == 0.0 and record["structure"] == pytest.approx(1.0)
    assert record["output_drift"] > 1.0  # what comes out did change
    assert record["mmd"] != pytest.approx(record["mmd_synthetic"])


def test_trainer_holds_the_self_regularisation_to_the_scene_not_the_sensor() -> None:
    """A residual R at the identity has nothing to regularise, however much its depth sensor
    changes: the sensor's holes and noise cost the refiner no self-regularisation."""
    synthetic = ((_square(n=40)[:, 0] + 1) * 127.5).round().numpy().astype(np.uint8)
    params = RefinerTrainParams(batch_size=8, pretrain_refiner_steps=1,
                                pretrain_discriminator_steps=0, steps=0, select_size=16,
                                history_size=8, device="cpu", seed=0)
    net = RefinerNetParams(width=4, blocks=1, noise_channels=0, depth_sensor=True)
    t = RefinerTrainer(synthetic, synthetic.copy(), net,
                       DiscriminatorParams(widths=(4, 4, 4, 4)), params)
    t.refiner.sensor.pin({**NONE, "holes": 0.99, "noise": 6.0})
    out = t.refiner_step(adversarial=False)
    assert out["loss_r_reg"].item() == 0.0 and out["drift"].item() == 0.0
    x = torch.from_numpy(synthetic[:8, None].astype(np.float32)) / 127.5 - 1.0
    assert (t.refiner(x) - x).abs().mean() * 127.5 > 1.0  # what D sees did change


def test_a_refiner_whose_sensor_made_every_change_is_not_called_the_identity() -> None:
    """With a depth sensor the guards' drift is the scene's; "refined ~= synthetic" is judged
    on what comes out, and a scene left as it was is reported as such."""
    only_sensor = {"selected_step": 400, "last_step": 400, "drift": 0.01, "output_drift": 5.3}
    assert identity_reason(only_sensor) is None
    note = capture_only_note(only_sensor)
    assert note is not None and "0.01" in note and "5.30" in note
    assert "before the capture stages" in note and "conv" not in note  # true without conv layers
    both = {**only_sensor, "drift": 1.4}
    assert identity_reason(both) is None and capture_only_note(both) is None
    neither = {**only_sensor, "output_drift": 0.2}
    assert "0.20 gray levels" in identity_reason(neither) and capture_only_note(neither) is None
    assert capture_only_note({"selected_step": 400, "last_step": 400, "drift": 0.01}) is None


def test_a_refiner_without_conv_layers_is_its_sensor_alone() -> None:
    """``scene: false``: no conv layers, the scene is x itself and every learned parameter is
    the sensor's; it draws no noise inputs, so skipping still matches refining."""
    net = RefinerNetParams(width=4, blocks=1, noise_channels=1, depth_sensor=True, scene=False)
    r = Refiner(**net.model_dump())
    assert {n.split(".")[0] for n, _ in r.named_parameters()} == {"sensor"}
    r.sensor.pin({**NONE, "holes": 0.99})
    x = _square(n=6)
    scene, out = r(x, torch.Generator().manual_seed(0), with_scene=True)
    assert scene is x and not torch.equal(out, x)
    assert_skip_matches_refining(r, x, 3, seed=7)
    loaded = load_refiner(refiner_file(r.state_dict(), net, {}))
    assert loaded.head is None and loaded.sensor is not None
    assert "scene" not in RefinerNetParams(width=4).model_dump()  # on: left out of dumps
    with pytest.raises(ValueError, match="scene: false"):
        RefinerNetParams(width=4, scene=False)  # nothing left to learn
    with pytest.raises(ValueError, match="scene: false"):
        RefinerNetParams(width=4, scene=False, depth_sensor=True, holes=True)


def test_a_sensor_only_refiner_trains_through_pretraining_and_adversarial_steps() -> None:
    synthetic = ((_square(n=40)[:, 0] + 1) * 127.5).round().numpy().astype(np.uint8)
    params = RefinerTrainParams(batch_size=8, pretrain_refiner_steps=1,
                                pretrain_discriminator_steps=1, steps=2, select_size=16,
                                history_size=8, device="cpu", seed=0)
    net = RefinerNetParams(width=4, blocks=1, depth_sensor=True, scene=False)
    t = RefinerTrainer(synthetic, synthetic.copy(), net,
                       DiscriminatorParams(widths=(4, 4, 4, 4)), params)
    before = t.refiner.sensor.mu.detach().clone()
    for _ in range(t.total):
        t.train_step()
    assert t.step == 4 and not torch.equal(t.refiner.sensor.mu, before)
