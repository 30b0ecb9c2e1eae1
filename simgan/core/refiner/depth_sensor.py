"""A learned depth sensor as the refiner's last stage: a ragged silhouette, a band of missing
depth along it, flying pixels, holes at the edges and depth noise, each with a per-image
amount drawn from a distribution that R learns.

Why: what gives refined depth away is the silhouette (docs/hand.md, "What gives refined depth
away"): a structured-light sensor loses a ragged band of the hand along its edge (real crops
keep ~412 of the synthetic hand's ~559 pixels), while a conv refiner, which can only paint,
lines the clean edge with a bright rim and a chain of near-black pixels. Its label and
self-regularisation terms charge it for every pixel it erases, since the frozen estimator reads
an eroded hand as another pose. This stage does what the sensor does, by construction: it only
removes depth, moves the edge by a pixel or so, mixes edge pixels with their neighbours and adds
noise, never moves a joint, so the trainer holds R's label and self-regularisation terms (and
the selection guards) to the scene R paints *before* it, and only the discriminator judges
what comes out. It is the depth counterpart of the learned camera
(:mod:`simgan.core.refiner.camera`), with the stand-in's artefact list (Kinect v1:
Khoshelham & Elberink 2012) but none of its code or parameters.

The decisions (which pixel is lost, which flies) are hard in the forward pass; their gradient
is that of a logistic relaxation (straight-through), so the discriminator's verdict on a lost
edge pixel moves the amount that lost it. The jagged edge is a nearest-neighbour resampling
with the gradient of the bilinear one. Crops are (B, C, H, W) in [-1, 1], -1 = no reading.
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
    smooth_unit,
)
from simgan.core.refiner.settings import LearnedSettings, Setting, normal, uniform

SETTINGS: tuple[Setting, ...] = (
    ("jag_px", 0.0, 2.0, 0.3),  # std of the smooth displacement of the silhouette, px
    ("erode_px", 0.0, 3.0, 0.3),  # width of the band lost along the silhouette, px
    ("flying", 0.0, 1.0, 0.05),  # share of edge pixels mixed with a neighbour
    ("holes", 0.0, 1.0, 0.05),  # share of the hand's edge pixels lost, in ~2 px clusters
    ("noise", 0.0, 8.0, 0.5),  # depth noise std on pixels with a reading, grey levels
)
START_SPREAD = 0.05
"""exp(log_spread) at the start: amounts barely vary between images."""
ERODE_FACTOR_MAX = 2.0
"""The band's width varies along the edge by a factor 1 + N/2 clipped to [0, this]."""
ERODE_STEPS = int(SETTINGS[1][2] * ERODE_FACTOR_MAX) + 1
"""How far inside the hand :func:`depth_inside` counts: the widest band there can be."""
TAU_PX = 0.5
"""Temperature of the band's relaxation, px."""
TAU_SHARE = 0.05
"""Temperature of the flying pixels' and holes' relaxations, in probability."""


def hard_with_soft_gradient(z: torch.Tensor) -> torch.Tensor:
    """1 where ``z`` > 0, else 0; gradient that of sigmoid(z) (straight-through)."""
    soft = torch.sigmoid(z)
    return (z > 0).to(z.dtype) + (soft - soft.detach())  # exactly 0 or 1 forward


def _col(v: torch.Tensor) -> torch.Tensor:
    return v[:, None, None, None]


def resample(x: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """``x`` at each pixel plus ``displacement`` (B, 2, H, W: du, dv px), nearest neighbour
    (a sensor reads a surface or not; it never averages across an edge) with the gradient of
    bilinear resampling (straight-through), borders replicated."""
    b, _, h, w = x.shape
    v, u = torch.meshgrid(torch.arange(h, dtype=x.dtype, device=x.device),
                          torch.arange(w, dtype=x.dtype, device=x.device), indexing="ij")
    # grid_sample's normalised coordinates, align_corners=True: pixel k -> 2k / (size - 1) - 1
    gu = (u + displacement[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gv = (v + displacement[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gu, gv], dim=-1)
    kw = {"padding_mode": "border", "align_corners": True}
    smooth = F.grid_sample(x, grid, mode="bilinear", **kw)
    return smooth + (F.grid_sample(x, grid, mode="nearest", **kw) - smooth).detach()


class LearnedDepthSensor(LearnedSettings):
    """(B, C, H, W) depth crops in [-1, 1] -> the same crops through a depth sensor with
    per-image amounts drawn from learned distributions (:data:`SETTINGS`), in [-1, 1]."""

    def __init__(self) -> None:
        super().__init__(SETTINGS, START_SPREAD, "sensor")

    def draws(self, b: int, c: int, h: int, w: int, generator: torch.Generator | None,
              device: torch.device) -> dict[str, torch.Tensor]:
        """Every random number a forward pass on a (b, c, h, w) batch uses, in a fixed order."""
        return {
            "eps": self.draw(b, generator, device),
            "jag": smooth_unit(normal((b, 2, h, w), generator, device)),
            "erode": smooth_unit(normal((b, c, h, w), generator, device)),
            "fly": uniform((b, c, h, w), generator, device),
            "mix": uniform((b, c, h, w), generator, device),
            "holes": smooth_unit(normal((b, c, h, w), generator, device)),
            "noise": normal((b, c, h, w), generator, device),
        }

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        d = {k: v.to(x.dtype) for k, v in self.draws(b, c, h, w, generator, x.device).items()}
        s = self.settings(d["eps"])
        x = x.clamp(-1.0, 1.0)
        x = resample(x, _col(s["jag_px"]) * d["jag"])
        x = self._erode(x, s["erode_px"], d["erode"])
        # where the edges are, and what a flying pixel mixes: read off the depth, not learned
        # through (the amounts get their gradient from the mix; the scene from the rest)
        near, far = neighbour_extremes(x.detach())
        edge = (near - far) > JUMP
        hand_edge = edge & (x.detach() > far + JUMP)
        flies = hard_with_soft_gradient((_col(s["flying"]) - d["fly"]) / TAU_SHARE)
        flying = far + d["mix"] * (near - far)
        x = torch.where(edge, x + flies * (flying - x), x)
        # a hole where the cluster noise is in its top ``holes`` share: 1 - ndtr(N) < holes
        lost = hard_with_soft_gradient(
            (_col(s["holes"]) - (1.0 - torch.special.ndtr(d["holes"]))) / TAU_SHARE)
        x = torch.where(hand_edge, x + lost * (NO_READING - x), x)
        noisy = x + _col(s["noise"]) * (1.0 / 127.5) * d["noise"]
        return torch.where(x.detach() > READING_ABOVE, noisy, x).clamp(-1.0, 1.0)

    @staticmethod
    def _erode(x: torch.Tensor, width: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The hand's pixels within ``width`` (B,) times a factor 1 + N/2 (clipped to
        [0, 2], varying smoothly along the edge) of the silhouette, set to no reading."""
        hand = x.detach() > READING_ABOVE
        inside = depth_inside(hand, ERODE_STEPS).to(x.dtype)
        reach = _col(width) * (1.0 + 0.5 * noise).clamp(0.0, ERODE_FACTOR_MAX)
        lost = hard_with_soft_gradient((reach - inside) / TAU_PX)
        return torch.where(hand, x + lost * (NO_READING - x), x)

    def skip(self, b: int, c: int, h: int, w: int, generator: torch.Generator) -> None:
        """Advance ``generator`` as a forward pass on a (b, c, h, w) batch would."""
        self.draws(b, c, h, w, generator, generator.device)
