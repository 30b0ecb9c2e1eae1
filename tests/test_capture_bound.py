"""benchmarks/capture_bound_gaze.py: the frozen stand-in capture must draw the stand-in's own
settings, or the bound it gives is a bound on something else."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from capture_bound_gaze import standin_camera_class  # noqa: E402

from simgan.gaze.standin import RealAppearanceParams  # noqa: E402


def _settings(n: int = 20000) -> tuple[torch.nn.Module, dict[str, np.ndarray]]:
    camera = standin_camera_class(RealAppearanceParams())()
    eps = camera.draw(n, torch.Generator().manual_seed(0), torch.device("cpu"))
    return camera, {k: v.numpy() for k, v in camera.settings(eps).items()}


def test_settings_cover_the_standin_ranges_about_uniformly() -> None:
    app = RealAppearanceParams()
    _, s = _settings()
    for name, lo, hi in (("blur_sigma", app.blur_sigma_min, app.blur_sigma_max),
                         ("gamma", app.gamma_min, app.gamma_max),
                         ("gain", app.contrast_min, app.contrast_max),
                         ("read_noise", app.noise_std_min, app.noise_std_max)):
        v = s[name]
        assert lo <= v.min() and v.max() <= hi, name
        assert abs(v.mean() - (lo + hi) / 2) < 0.02 * (hi - lo), name
        uniform_sd = (hi - lo) / np.sqrt(12)
        assert 0.85 * uniform_sd < v.std() < 1.1 * uniform_sd, name
        # both ends of the range are reached, as a uniform draw reaches them
        assert (v < lo + 0.1 * (hi - lo)).mean() > 0.04 and (v > hi - 0.1 * (hi - lo)).mean() > 0.04
    assert abs(s["offset"].std() - app.brightness_std) < 0.15 * app.brightness_std
    assert abs(s["offset"].mean()) < 0.5
    assert np.allclose(s["shot_noise"], app.shot_noise, rtol=2e-3)


def test_the_capture_is_frozen() -> None:
    camera, _ = _settings(8)
    assert not any(p.requires_grad for p in camera.parameters())
