"""The SimGAN local discriminator D: a small fully convolutional net whose output is a map of
two-class logits, one real-vs-refined decision per local patch of the input.

Classifying patches instead of whole images limits D's receptive field, so it judges local
texture rather than global shape (which the refiner must not change), and it turns one image
into many training samples. The layout is ``len(widths)`` convs with ReLU, one max-pool after
conv number ``pool_after``, and a final conv1x1 to 2 logits:

- paper eye  (35x55): conv3x3 s2 96, conv3x3 s2 64, maxpool3x3 s1, conv3x3 s1 32, conv1x1 32
  -> ``EYE``;
- paper hand (224x224): conv7x7 s4 96, conv5x5 s2 64, maxpool3x3 s2, conv3x3 s2 32, conv1x1 32
  -> ``HAND``.

All convs and the pool use padding ``kernel // 2``, so the map size is ceil-divided by each
stride (eye: 35x55 -> 9x14 patches).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

EYE: dict[str, Any] = {
    "widths": (96, 64, 32, 32),
    "kernels": (3, 3, 3, 1),
    "strides": (2, 2, 1, 1),
    "pool_kernel": 3,
    "pool_stride": 1,
    "pool_after": 2,
}
HAND: dict[str, Any] = {
    "widths": (96, 64, 32, 32),
    "kernels": (7, 5, 3, 1),
    "strides": (4, 2, 2, 1),
    "pool_kernel": 3,
    "pool_stride": 2,
    "pool_after": 2,
}


class PatchDiscriminator(nn.Module):
    """(B, C, H, W) in [-1, 1] -> logits (B, 2, h, w); channel 1 = "real", 0 = "refined"."""

    def __init__(
        self,
        in_channels: int = 1,
        widths: Sequence[int] = EYE["widths"],
        kernels: Sequence[int] = EYE["kernels"],
        strides: Sequence[int] = EYE["strides"],
        pool_kernel: int = 3,
        pool_stride: int = 1,
        pool_after: int = 2,
        spectral_norm: bool = False,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        if not len(widths) == len(kernels) == len(strides):
            raise ValueError(
                f"widths, kernels and strides need one entry per conv, got "
                f"{len(widths)}, {len(kernels)}, {len(strides)}"
            )
        if not 0 <= pool_after <= len(widths):
            raise ValueError(f"pool_after must be in [0, {len(widths)}], got {pool_after}")
        layers: list[nn.Module] = []
        c = in_channels
        for i, (w, k, s) in enumerate(zip(widths, kernels, strides, strict=True)):
            if i == pool_after and pool_kernel > 0:
                layers.append(nn.MaxPool2d(pool_kernel, pool_stride, padding=pool_kernel // 2))
            if antialias and s > 1:
                layers.append(Blur(c))
            layers += [_conv(c, w, k, s, spectral_norm), nn.ReLU(inplace=True)]
            c = w
        if pool_after == len(widths) and pool_kernel > 0:
            layers.append(nn.MaxPool2d(pool_kernel, pool_stride, padding=pool_kernel // 2))
        layers.append(_conv(c, 2, 1, 1, spectral_norm))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Blur(nn.Module):
    """A fixed binomial [1, 2, 1] x [1, 2, 1] / 16 blur per channel (edge-replicated), put
    before a strided conv (``antialias``; Zhang 2019, "Making convolutional networks
    shift-invariant again"). Why: a stride-2 conv looks at every other pixel, so its gradient
    with respect to its input, which is what trains R, alternates pixel by pixel; R then
    learns a checkerboard texture (seen on refined depth). Low-passing first smooths it."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        kernel = (k[:, None] * k[None, :]) / 16.0
        self.register_buffer("kernel", kernel.expand(channels, 1, 3, 3).clone(), persistent=False)
        self.channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
        return nn.functional.conv2d(x, self.kernel.to(x.dtype), groups=self.channels)


def _conv(c_in: int, c_out: int, kernel: int, stride: int, spectral_norm: bool) -> nn.Module:
    """A same-padded conv; with ``spectral_norm`` its weight is divided by its largest singular
    value (Miyato et al. 2018), which bounds how fast D can sharpen its decision and so keeps
    it from winning outright within a few dozen steps."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
    return nn.utils.parametrizations.spectral_norm(conv) if spectral_norm else conv
