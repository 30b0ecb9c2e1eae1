"""The refiner's learned camera stage: its pieces by hand, its start, its draws and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from simgan.core.refiner.camera import SETTINGS, LearnedCamera, gaussian_blur, tone_curve
from simgan.core.refiner.net import Refiner, apply_refiner, load_refiner, refiner_file
from simgan.core.refiner.params import RefinerNetParams
from simgan.core.refiner.settings import LR_GAIN
from simgan.gaze.standin import response_curve
from tests.refiner_draws import assert_skip_matches_refining


def test_tone_curve_is_the_standins_response_and_the_identity_at_gamma_one() -> None:
    x = torch.tensor([0.0, 40.0, 127.5, 200.0, 255.0])
    assert torch.allclose(tone_curve(x, torch.tensor(1.0)), x, atol=1e-4)
    for g in (0.6, 1.6):
        want = response_curve(x.numpy(), np.float64(g))
        assert np.allclose(tone_curve(x, torch.tensor(g)).numpy(), want, atol=1e-3)
    # x^gamma at mid-grey: 255 * 0.5^2 = 63.75
    assert tone_curve(torch.tensor(127.5), torch.tensor(2.0)).item() == pytest.approx(63.75)


def test_blur_spreads_an_impulse_as_a_normalised_gaussian_per_image() -> None:
    img = torch.zeros(2, 1, 11, 11)
    img[:, 0, 5, 5] = 1.0
    out = gaussian_blur(img, torch.tensor([0.2, 1.0]))
    assert torch.allclose(out.sum((1, 2, 3)), torch.ones(2), atol=1e-6)
    taps = torch.exp(-0.5 * torch.arange(-4.0, 5.0) ** 2)
    taps = taps / taps.sum()
    assert torch.allclose(out[1, 0, 5, 1:10], taps * taps[4], atol=1e-6)  # the centre row
    assert out[0, 0, 5, 5] > 0.99  # sigma 0.2: almost no blur
    flat = torch.full((1, 1, 6, 9), 0.3)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([1.5])), flat, atol=1e-6)


def test_camera_starts_near_the_identity() -> None:
    cam = LearnedCamera()
    start = {name: value for name, _, _, value in SETTINGS}
    got = cam.settings(torch.zeros(1, len(SETTINGS)))
    for name, value in start.items():
        assert got[name].item() == pytest.approx(value, rel=1e-4, abs=1e-6)
    smooth = torch.linspace(-0.8, 0.8, 55).expand(4, 1, 35, 55).contiguous()
    out = cam(smooth, torch.Generator().manual_seed(0))
    diff = (out - smooth).abs() * 127.5  # grey levels; the settings' start spread moves a few
    assert diff.mean().item() < 2.5
    with torch.no_grad():
        cam.log_spread.fill_(-30.0 / LR_GAIN)  # no spread: the start settings themselves
    still = (cam(smooth, torch.Generator().manual_seed(0)) - smooth).abs() * 127.5
    assert still.mean().item() < 0.5


def test_forced_settings_give_the_camera_they_name() -> None:
    cam = LearnedCamera()
    cam.pin({"blur_sigma": 0.21, "gamma": 1.0, "gain": 0.5, "offset": 10.0, "read_noise": 6.0,
             "shot_noise": 0.0001})
    flat = torch.full((8, 1, 35, 55), -1.0)  # black
    out = (cam(flat, torch.Generator().manual_seed(1)) + 1.0) * 127.5
    # black -> (0 - 128) * 0.5 + 128 + 10 = 74, with noise of std ~6 grey levels
    assert out.mean().item() == pytest.approx(74.0, abs=0.5)
    assert out.std().item() == pytest.approx(6.0, rel=0.05)


def test_settings_spread_over_images_and_stay_in_range() -> None:
    cam = LearnedCamera()
    with torch.no_grad():
        cam.log_spread.fill_(math.log(3.0) / LR_GAIN)
    s = cam.settings(torch.randn(4000, len(SETTINGS), generator=torch.Generator().manual_seed(0)))
    for name, lo, hi, _ in SETTINGS:
        assert lo <= s[name].min() and s[name].max() <= hi
        assert s[name].std() > 0.1 * (hi - lo)


def test_camera_learns_its_settings_from_the_first_step() -> None:
    cam = LearnedCamera()
    x = torch.rand(4, 1, 16, 24) * 1.6 - 0.8
    (cam(x, torch.Generator().manual_seed(0)) - 0.5).pow(2).mean().backward()
    assert cam.mu.grad is not None and bool(torch.all(cam.mu.grad != 0))
    assert cam.log_spread.grad is not None and bool(torch.all(cam.log_spread.grad != 0))


@pytest.mark.parametrize("channels", [1, 3])
def test_refiner_camera_draws_come_from_the_generator_and_can_be_skipped(channels: int) -> None:
    r = Refiner(in_channels=channels, width=4, blocks=1, noise_channels=1, camera=True,
                codec=channels == 1, codec_quality=(30, 85))
    assert r.draws_noise and Refiner(width=4, blocks=1, noise_channels=0, camera=True).draws_noise
    x = torch.rand(6, channels, 16, 24) * 2 - 1
    a = apply_refiner(r, x, torch.Generator().manual_seed(3))
    assert torch.equal(a, apply_refiner(r, x, torch.Generator().manual_seed(3)))
    assert not torch.equal(a, apply_refiner(r, x, torch.Generator().manual_seed(4)))
    assert_skip_matches_refining(r, x, 2, seed=3)


def test_camera_is_left_out_of_dumps_when_off_and_travels_with_the_weights() -> None:
    assert "camera" not in RefinerNetParams().model_dump()
    net = RefinerNetParams(width=4, blocks=1, camera=True)
    r = Refiner(**net.model_dump())
    r.camera.pin({"gain": 0.7})
    loaded = load_refiner(refiner_file(r.state_dict(), net, {}))
    assert loaded.camera is not None
    assert loaded.camera.expected()["camera_gain"] == pytest.approx(0.7, rel=1e-5)


def test_the_label_terms_judge_the_cameras_output_not_what_came_before_it() -> None:
    """Only a depth sensor hands the trainer a scene before it: with a camera, the
    self-regularisation and label terms see the camera's output, as they always have."""
    r = Refiner(width=4, blocks=1, noise_channels=0, camera=True)
    r.camera.pin({"gain": 0.5, "offset": 20.0})
    x = torch.rand(3, 1, 16, 24) * 2 - 1
    scene, out = r(x, torch.Generator().manual_seed(0), with_scene=True)
    assert scene is out and not torch.allclose(out, x, atol=0.05)


def test_with_label_terms_on_the_scene_the_camera_is_not_charged() -> None:
    """``label_terms: scene``: the trainer's terms and the selector's guards read the conv
    layers' scene, before the camera and codec; what comes out is the camera's."""
    from simgan.core.refiner.net import scene_and_refined

    r = Refiner(width=4, blocks=1, noise_channels=0, camera=True, label_terms="scene")
    r.camera.pin({"gain": 0.5, "offset": 20.0})
    x = torch.rand(3, 1, 16, 24) * 2 - 1
    scene, out = r(x, torch.Generator().manual_seed(0), with_scene=True)
    painted = r._paint(x, None)  # no noise inputs: the same scene
    assert torch.equal(scene, painted)
    assert not torch.allclose(out, scene, atol=0.05)  # gain 0.5 about mid-grey, +20 levels
    s2, o2 = scene_and_refined(r, x, torch.Generator().manual_seed(0))
    assert torch.equal(s2, scene) and torch.equal(o2, out)
    # the same net with the default judges the output, as before
    r.label_terms = "output"
    s3, o3 = r(x, torch.Generator().manual_seed(0), with_scene=True)
    assert s3 is o3 and torch.equal(o3, out)
    with pytest.raises(ValueError, match="label_terms"):
        Refiner(width=4, blocks=1, camera=True, label_terms="camera")
