"""Host-to-device copies of mini-batches: pinned and non-blocking when the device is CUDA.

A batch assembled on the host (numpy rows -> tensor) is copied to the GPU every step; from
pageable memory that copy is synchronous and staged. Pinning the batch first lets the copy
run asynchronously (``non_blocking``), overlapping the previous step's kernels. On a CPU the
tensor is returned as it is: no copy, no change to any byte of a CPU run.
"""

from __future__ import annotations

import torch


def to_device(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``t`` (a host tensor) on ``device``; pinned + non-blocking for CUDA, else ``.to``."""
    device = torch.device(device)
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device=device)
