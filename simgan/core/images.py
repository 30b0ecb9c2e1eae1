"""Conversions between stored images (uint8 / depth arrays) and network tensors, and the
conventions of depth crops.

One place for the value scaling, so the refiner, the estimators and the realism test all
see images the same way: uint8 [0, 255] <-> float32 [-1, 1], shape (B, 1, H, W). Depth crops
code background and missing depth as -1, nearer brighter; the morphology below (edges, depth
inside the silhouette, noise correlated like sensor artefacts) is shared by the hand's sensor
jitter (an estimator augmentation) and the refiner's learned depth sensor.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from simgan.core.errors import DeviceError
from simgan.core.transfer import to_device

NO_READING = -1.0
"""Grey level 0 as a tensor value: in depth crops, background or missing depth."""
READING_ABOVE = NO_READING + 0.5 / 127.5
"""Above this a depth pixel has a reading (grey level >= 1): halfway between levels 0 and 1."""


def to_tensor(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(B, H, W) uint8 -> (B, 1, H, W) float32 in [-1, 1] on ``device``, channels_last."""
    t = to_device(torch.from_numpy(np.require(images, requirements=["C", "W"])), device)
    t = t.to(torch.float32).unsqueeze(1).mul_(2.0 / 255.0).sub_(1.0)
    return t.contiguous(memory_format=torch.channels_last)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """(B, 1, H, W) float in [-1, 1] -> (B, H, W) uint8, rounded and clipped."""
    x = (t.detach().float().squeeze(1) + 1.0).mul_(127.5).round_().clamp_(0, 255)
    return x.to(torch.uint8).cpu().numpy()


def pick_device(name: str = "auto") -> torch.device:
    """'auto' means CUDA when present, else CPU. A device this machine lacks is a
    DeviceError naming it (torch would fail later, deep inside a stage)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not (torch.cuda.is_available()
                                      and (device.index or 0) < torch.cuda.device_count()):
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        raise DeviceError(f"device {name!r} is not available here ({found} CUDA devices); "
                          "set the params' device to auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {name!r} is not available here (no Apple MPS); set the "
                          "params' device to auto or cpu")
    return device


JUMP = 40.0 / 127.5
"""A depth edge: neighbours more than 40 grey levels apart (the hand against the background
or a finger in front of the palm)."""


def _sum3(x: torch.Tensor, dim: int, weights: tuple[float, float, float]) -> torch.Tensor:
    """Weighted sum of each pixel's two neighbours and itself along ``dim`` (-1 or -2), edges
    replicated: a 3-tap filter as three slices (cheaper than a 1-channel conv on a CPU)."""
    pad = (1, 1, 0, 0) if dim == -1 else (0, 0, 1, 1)
    p = F.pad(x, pad, mode="replicate")
    n = p.shape[dim]
    a, b, c = (p.narrow(dim, i, n - 2) for i in range(3))
    return weights[0] * a + weights[1] * b + weights[2] * c


def smooth_unit(x: torch.Tensor) -> torch.Tensor:
    """White unit-variance noise (N, C, H, W) -> noise correlated over ~2 px with unit
    variance: blurred by [1 2 1]^2 / 16 (whose gain 6/16 on the std is divided out), edges
    replicated."""
    taps = (0.25, 0.5, 0.25)
    return _sum3(_sum3(x, -1, taps), -2, taps) / (6.0 / 16.0)


def smooth_noise(shape: tuple[int, int, int, int], generator: torch.Generator) -> torch.Tensor:
    """Zero-mean, unit-variance noise correlated over ~2 px, drawn from ``generator`` (CPU)."""
    return smooth_unit(torch.randn(shape, generator=generator))


def _extreme3x3(x: torch.Tensor, pick: Callable[..., torch.Tensor], fill: float
                ) -> torch.Tensor:
    """``pick`` (torch.maximum or torch.minimum) over each pixel's 3x3 neighbourhood, with
    ``fill`` beyond the image: separable, as elementwise ops (max_pool2d is ~5x slower on a
    CPU for these sizes); exact, so the same values as a pooling."""
    p = F.pad(x, (1, 1, 1, 1), value=fill)
    h, w = x.shape[-2:]
    rows = pick(pick(p[..., :, :w], p[..., :, 1 : w + 1]), p[..., :, 2:])
    return pick(pick(rows[..., :h, :], rows[..., 1 : h + 1, :]), rows[..., 2:, :])


def depth_inside(hand: torch.Tensor, steps: int) -> torch.Tensor:
    """How far inside the silhouette each pixel of the boolean ``hand`` mask lies, in px of the
    chessboard metric (1 on the boundary, 0 outside), counted up to ``steps``: the number of
    3x3 erosions it survives plus one. The image border is not a boundary (the arm goes on)."""
    inside = hand.float()
    depth = torch.zeros_like(inside)
    for _ in range(steps):
        depth += inside
        inside = _extreme3x3(inside, torch.minimum, 1.0)
    return depth


def neighbour_extremes(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest (max) and farthest (min) value among each pixel and its 8 neighbours."""
    return (_extreme3x3(x, torch.maximum, float("-inf")),
            _extreme3x3(x, torch.minimum, float("inf")))
