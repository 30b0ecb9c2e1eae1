"""Conversions between stored images (uint8 / depth arrays) and network tensors.

One place for the value scaling, so the refiner, the estimators and the realism test all
see images the same way: uint8 [0, 255] <-> float32 [-1, 1], shape (B, 1, H, W).
"""

from __future__ import annotations

import numpy as np
import torch

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
