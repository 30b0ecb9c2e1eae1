"""Random depth-sensor changes of a batch of depth crops: jagged edges, flying pixels, holes at
the hand's edges and depth noise, per image.

Why: the hourglass trained on clean synthetic depth reads a hand with ragged edges and missing
boundary pixels differently, so as the refiner's label model it charges R for the very sensor
artefacts that make synthetic depth look like a Kinect's. Trained with these changes it reads
the hand's pose rather than the sensor (docs/hand.md, "A sensor-blind label model"). The
artefacts are those the stand-in and NYU share (:mod:`simgan.hand.standin` is the numpy model
of a Kinect that makes the stand-in's images; this is a cheap torch jitter, not that model).

Crops are (N, 1, H, W) tensors in [-1, 1]: background and missing depth -1, nearer brighter.
Every draw comes from ``generator`` (CPU), so a batch is reproducible on any device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from simgan.core.images import (
    JUMP,
    NO_READING,
    READING_ABOVE,
    depth_inside,
    neighbour_extremes,
    smooth_noise,
)


def _uniform(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator)


def jag_edges(x: torch.Tensor, amplitude: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Nearest-neighbour resampling of image i through a smooth random displacement field of
    std ``amplitude[i]`` px in each direction: boundaries turn ragged, flat depth stays flat."""
    n, _, h, w = x.shape
    d = smooth_noise((n, 2, h, w), generator) * amplitude.view(n, 1, 1, 1)
    v, u = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                          torch.arange(w, dtype=torch.float32), indexing="ij")
    # grid_sample's normalised coordinates, align_corners=True: pixel k -> 2k / (size - 1) - 1
    gu = (u + d[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gv = (v + d[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gu, gv], dim=-1).to(x)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="border", align_corners=True)


def erode_silhouette(x: torch.Tensor, width: torch.Tensor, generator: torch.Generator
                     ) -> torch.Tensor:
    """Image i with the hand pixels of a band along its silhouette set to background: a pixel
    goes when its depth inside (:func:`depth_inside`) is at most ``width[i]`` times a factor
    1 + N/2, clipped to [0, 2], that varies smoothly along the edge (N: :func:`smooth_noise`),
    so the band is ragged and never wider than 2 ``width[i]`` (the depth is counted that far).
    Why: a Kinect loses whole strips of the hand where its surface turns away (grazing
    incidence), in the projector's shadow and in dropouts along edges; the stand-in keeps
    about three quarters of the synthetic hand's pixels (docs/hand.md)."""
    n = x.shape[0]
    hand = x > READING_ABOVE
    steps = int(torch.ceil(width.max() * 2.0).item()) + 1 if n else 1
    depth = depth_inside(hand, steps)
    factor = (1.0 + 0.5 * smooth_noise(tuple(x.shape), generator)).clamp(0.0, 2.0).to(x)
    band = hand & (depth <= width.to(x).view(n, 1, 1, 1) * factor)
    return torch.where(band, torch.full_like(x, NO_READING), x)


def sensor_jitter(
    x: torch.Tensor,
    generator: torch.Generator,
    jag: float = 0.0,
    flying: float = 0.0,
    holes: float = 0.0,
    noise: float = 0.0,
    erode: float = 0.0,
) -> torch.Tensor:
    """``x`` with, per image, in this order: edges jagged by a displacement of std U(0, jag) px;
    a band of U(0, erode) px along the silhouette removed (:func:`erode_silhouette`);
    each pixel on either side of a depth edge replaced with probability U(0, flying) by a random
    mix of its nearest and farthest neighbour (flying pixels); hand pixels at an edge dropped to
    background with probability U(0, holes), in ~2 px clusters; Gaussian noise of std
    U(0, noise) grey levels on pixels with depth. A zero amount skips that change and its
    draws. Clamped to [-1, 1]."""
    if not (jag or flying or holes or noise or erode):
        return x
    n = x.shape[0]
    if jag:
        x = jag_edges(x, jag * _uniform(n, generator), generator)
    if erode:
        x = erode_silhouette(x, erode * _uniform(n, generator), generator)
    if flying or holes:
        near, far = neighbour_extremes(x)
        edge = (near - far) > JUMP
        if flying:
            p = (flying * _uniform(n, generator)).view(n, 1, 1, 1)
            hit = torch.rand(x.shape, generator=generator) < p
            mix = torch.rand(x.shape, generator=generator).to(x)
            x = torch.where(edge & hit.to(x.device), far + mix * (near - far), x)
        if holes:
            q = (holes * _uniform(n, generator)).clamp(1e-6, 1 - 1e-6)
            threshold = torch.special.ndtri(1 - q).view(n, 1, 1, 1)
            blobs = smooth_noise(tuple(x.shape), generator) > threshold
            hand_edge = edge & (x > far + JUMP)
            x = torch.where(hand_edge & blobs.to(x.device), torch.full_like(x, NO_READING), x)
    if noise:
        std = (noise / 127.5) * _uniform(n, generator).to(x).view(n, 1, 1, 1)
        jitter = std * torch.randn(x.shape, generator=generator).to(x)
        x = torch.where(x > READING_ABOVE, x + jitter, x)
    return x.clamp(-1, 1)
