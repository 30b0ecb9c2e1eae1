"""The history buffer of refined images (paper, section 2.3).

D sees half its "refined" mini-batch from the current refiner and half from earlier refiners,
so it keeps penalising artefacts the refiner produced before and R cannot cycle between them.
The buffer is one preallocated tensor: ``push`` first fills it, then overwrites entries at
random; ``sample`` draws uniformly from the filled part. All randomness comes from the
``torch.Generator`` handed in, so a resumed run draws the same indices as an uninterrupted one.
(Several public re-implementations never filled their buffer: the tests check that it fills
and that samples come from earlier steps.)
"""

from __future__ import annotations

from typing import Any

import torch


class HistoryBuffer:
    """Fixed-capacity store of images (C, H, W); ``len()`` is how many slots are filled."""

    def __init__(
        self,
        capacity: int,
        image_shape: tuple[int, ...],
        generator: torch.Generator,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.data = torch.empty((capacity, *image_shape), dtype=dtype, device=device)
        self.count = 0
        self.generator = generator

    def __len__(self) -> int:
        return self.count

    def _randint(self, high: int, n: int) -> torch.Tensor:
        return torch.randint(high, (n,), generator=self.generator).to(self.data.device)

    def push(self, images: torch.Tensor) -> None:
        """Store ``images``: free slots first, then overwrite random filled slots."""
        images = images.detach().to(self.data.device, self.data.dtype)
        free = min(self.capacity - self.count, images.shape[0])
        if free > 0:
            self.data[self.count : self.count + free] = images[:free]
            self.count += free
        rest = images[free:]
        if rest.shape[0] > 0:
            # distinct slots, so no image of this batch is overwritten by another one of it
            perm = torch.randperm(self.capacity, generator=self.generator)[: rest.shape[0]]
            self.data[perm.to(self.data.device)] = rest[: self.capacity]

    def sample(self, n: int) -> torch.Tensor:
        """``n`` images drawn uniformly (with replacement) from the filled part."""
        if self.count == 0:
            raise RuntimeError("sample() from an empty history buffer")
        return self.data[self._randint(self.count, n)]

    def state_dict(self) -> dict[str, Any]:
        return {"data": self.data[: self.count].clone(), "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        count = int(state["count"])
        if count > self.capacity:
            raise ValueError(f"saved buffer holds {count} images, capacity is {self.capacity}")
        self.data[:count] = state["data"].to(self.data.device, self.data.dtype)
        self.count = count
