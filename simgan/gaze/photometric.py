"""Random photometric changes of a batch: tone, gamma, blur and sensor noise, per image.

Why: an estimator trained on clean synthetic images reads a blurred, noisier or darker version
of the same eye differently (measured on the default: a 1 px blur moves the frozen gaze
reading by ~3.5 deg rms). Used as the refiner's label model, such an estimator penalises the
very appearance changes refinement exists to make. Trained with these changes, it reads the
geometry and not the camera (docs/science.md, "An appearance-blind label model").

Images are (N, 1, H, W) tensors in [-1, 1]; every draw comes from ``generator`` (CPU), so a
batch is reproducible on any device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _uniform(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor, radius: int) -> torch.Tensor:
    """Blur image i of ``x`` with a Gaussian of std ``sigma[i]`` px (0: unchanged), separably,
    with kernels of ``2 * radius + 1`` taps and the edge pixels repeated beyond the border."""
    n, c, h, w = x.shape
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    s = sigma.to(x).clamp_min(1e-6).view(n, 1)
    k = torch.exp(-0.5 * (t / s) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n * c, taps)
    y = x.reshape(1, n * c, h, w)
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode="replicate"), k.view(n * c, 1, 1, -1),
                 groups=n * c)
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode="replicate"), k.view(n * c, 1, -1, 1),
                 groups=n * c)
    return y.view(n, c, h, w)


def photometric_jitter(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    brightness: float = 0.0,
    contrast: float = 0.0,
    gamma: float = 0.0,
    blur: float = 0.0,
    noise: float = 0.0,
) -> torch.Tensor:
    """``x`` with, per image: a tone change x * (1 + U(-contrast, contrast)) + U(-brightness,
    brightness), clamped (both factors are drawn when either amount is set); a gamma
    exp(U(-gamma, gamma)) on [0, 1] grey levels; a Gaussian blur of std U(0, blur) px; then
    Gaussian noise of std U(0, noise) grey levels (of 255); clamped to [-1, 1]. A zero amount
    skips that change and its draws."""
    if not (brightness or contrast or gamma or blur or noise):
        return x
    n = x.shape[0]
    if brightness or contrast:
        c = 1 + contrast * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1)
        d = brightness * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1)
        x = (x * c.to(x.device) + d.to(x.device)).clamp(-1, 1)
    if gamma:
        g = torch.exp(gamma * (2 * _uniform(n, generator) - 1)).to(x).view(n, 1, 1, 1)
        x = ((x + 1) / 2).clamp(0, 1).pow(g) * 2 - 1
    if blur:
        x = gaussian_blur(x, blur * _uniform(n, generator), max(1, math.ceil(3 * blur)))
    if noise:
        std = (noise / 127.5) * _uniform(n, generator).to(x).view(n, 1, 1, 1)
        x = x + std * torch.randn(x.shape, generator=generator).to(x)
    return x.clamp(-1, 1)
