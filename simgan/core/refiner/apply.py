"""Apply a trained refiner to a whole (memory-mapped) image array, chunk by chunk."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from simgan.core.images import pick_device, to_tensor, to_uint8
from simgan.core.refiner.net import apply_refiner


def refine_images(
    refiner: nn.Module,
    images_uint8: np.ndarray,
    batch_size: int = 256,
    device: torch.device | str = "auto",
    channels_last: bool = True,
    seed: int = 0,
) -> Iterator[np.ndarray]:
    """Yield refined uint8 (b, H, W) chunks of ``images_uint8`` (N, H, W), in order.

    Only one chunk is in memory at a time, so the caller can stream the chunks into a memmap.
    The refiner is moved to ``device`` and put in eval mode. A refiner with noise inputs draws
    its noise from a CPU generator seeded by ``seed``, so the output is reproducible.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = pick_device(device) if isinstance(device, str) else device
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    refiner = refiner.to(dev, memory_format=fmt).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        for start in range(0, images_uint8.shape[0], batch_size):
            x = to_tensor(images_uint8[start : start + batch_size], dev).contiguous(
                memory_format=fmt
            )
            yield to_uint8(apply_refiner(refiner, x, gen))
