"""A camera's block transform coding (JPEG's 8x8 DCT quantisation) as a refiner output stage.

Why: real crops stored as JPEG carry 8x8 block artefacts at fixed positions of the image grid.
A translation-equivariant refiner cannot place them, and on the stand-in they alone kept
otherwise perfectly refined eyes separable from real (docs/science.md, "What gives refined
eyes away"). Like the camera-effect models of sim-to-real work (blur, noise, compression as
explicit stages), this stage compresses R's output the way the real camera did, and R learns
what to feed it.

The quantisation follows ITU-T T.81 with the IJG quality scaling of its Annex K luminance
table; each image gets a quality drawn uniformly from ``quality`` (a camera's encoder adapts
its quality to the content and bit budget). Rounding passes gradients straight through, so R
is trained through the codec.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

BLOCK = 8
"""JPEG's block size in pixels."""
# The stand-in camera (simgan/gaze/standin.py) keeps its own numpy copy of this table, so that
# rendering never loads torch; tests/test_codec.py pins the two codecs to the same output.
# ITU-T T.81 Annex K.1 luminance quantisation table (the JPEG standard's example table).
JPEG_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.float64,
)

LEVEL_SHIFT = 0.5 / 127.5
"""JPEG codes x - 128 grey levels; images in [-1, 1] are centred on 127.5."""


def dct_matrix(n: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix C (n x n): coefficients of a block X are C X C^T."""
    k = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(n, dtype=torch.float64)[None, :]
    c = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    c[0] /= math.sqrt(2.0)
    return c.float()


def step_tables(quality: torch.Tensor) -> torch.Tensor:
    """(B, 8, 8) quantisation steps in grey levels for JPEG qualities 1-100, scaled as the
    IJG encoder (libjpeg) scales the Annex K table."""
    q = quality.cpu().numpy().astype(np.float64)
    scale = np.where(q < 50, 5000.0 / q, 200.0 - 2.0 * q)
    steps = np.clip(np.floor((JPEG_LUMA[None] * scale[:, None, None] + 50.0) / 100.0), 1, 255)
    return torch.from_numpy(steps).to(quality.device, torch.float32)


def straight_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward (the straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


class BlockCodec(nn.Module):
    """JPEG-style quantisation of (B, 1, H, W) images in [-1, 1], blocks anchored at (0, 0)."""

    def __init__(self, quality: tuple[int, int] = (50, 50)) -> None:
        super().__init__()
        lo, hi = quality
        if not 1 <= lo <= hi <= 100:
            raise ValueError(f"codec quality must satisfy 1 <= low <= high <= 100, got {quality}")
        self.quality = (lo, hi)
        self.register_buffer("dct", dct_matrix(BLOCK), persistent=False)

    def draw(self, b: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
        """Per-image qualities, drawn from ``generator`` (or the global RNG)."""
        gen_device = generator.device if generator is not None else device
        lo, hi = self.quality
        q = torch.randint(lo, hi + 1, (b,), generator=generator, device=gen_device)
        return q.to(device)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        steps = step_tables(self.draw(b, generator, x.device)).to(x.dtype) / 127.5
        hp, wp = -(-h // BLOCK) * BLOCK, -(-w // BLOCK) * BLOCK
        p = nn.functional.pad(x - LEVEL_SHIFT, (0, wp - w, 0, hp - h), mode="replicate")
        blocks = p.reshape(b, c, hp // BLOCK, BLOCK, wp // BLOCK, BLOCK).transpose(3, 4)
        d = self.dct.to(x.dtype)
        coef = d @ blocks @ d.T
        step = steps[:, None, None, None]
        coef = straight_round(coef / step) * step
        out = (d.T @ coef @ d).transpose(3, 4).reshape(b, c, hp, wp)
        return (out[:, :, :h, :w] + LEVEL_SHIFT).clamp(-1.0, 1.0)
