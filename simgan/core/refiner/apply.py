"""Apply a trained refiner to a whole (memory-mapped) image array, chunk by chunk, here or as
row ranges on a cluster (:class:`RefineShards`), with the same bytes either way."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from simgan.core.images import pick_device, to_tensor, to_uint8
from simgan.core.refiner.net import apply_refiner, load_refiner
from simgan.core.task import ShardPlan


def refine_images(
    refiner: nn.Module,
    images_uint8: np.ndarray,
    batch_size: int = 256,
    device: torch.device | str = "auto",
    channels_last: bool = True,
    seed: int = 0,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield refined uint8 (b, H, W) chunks of ``images_uint8[start:stop]`` (N, H, W), in order.

    Only one chunk is in memory at a time, so the caller can stream the chunks into a memmap.
    The refiner is moved to ``device`` and put in eval mode. A refiner with noise inputs draws
    its noise from a CPU generator seeded by ``seed``, so the output is reproducible; a range
    starting at row ``start`` first advances the generator past the noise of the rows before
    it, so any range gives the bytes the whole run gives there. Both ends must fall on the
    whole run's batch boundaries: torch draws the noise of a 2-image batch differently from
    the first 2 images of a 4-image one.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = images_uint8.shape[0]
    stop = n if stop is None else stop
    if start % batch_size or (stop % batch_size and stop != n) or not 0 <= start <= stop <= n:
        raise ValueError(f"rows [{start}, {stop}) of {n}: start and stop (unless it is {n}) "
                         f"must be multiples of batch_size {batch_size}, inside the array")
    dev = pick_device(device) if isinstance(device, str) else device
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    refiner = refiner.to(dev, memory_format=fmt).eval()
    gen = torch.Generator().manual_seed(seed)
    skip = getattr(refiner, "skip_noise", None)
    if skip is not None and getattr(refiner, "draws_noise", False):
        for _ in range(start // batch_size):
            skip(batch_size, *images_uint8.shape[1:3], gen)
    with torch.inference_mode():
        for lo in range(start, stop, batch_size):
            x = to_tensor(images_uint8[lo : min(lo + batch_size, stop)], dev).contiguous(
                memory_format=fmt
            )
            yield to_uint8(apply_refiner(refiner, x, gen))


def refine_rows(saved: dict[str, Any], images_path: str, start: int, stop: int,
                batch_size: int, device: str) -> np.ndarray:
    """Rows ``[start, stop)`` of the refined images of the ``images.npy`` at ``images_path``
    (read memory-mapped: only the range is read), as one array. Runs in a cluster worker."""
    images = np.load(images_path, mmap_mode="r")
    refiner = load_refiner(saved, pick_device(device))
    parts = list(refine_images(refiner, images, batch_size, device, start=start, stop=stop))
    if not parts:
        return np.zeros((0, *images.shape[1:]), np.uint8)
    return np.concatenate(parts)


class RefineShards(ShardPlan):
    """Refining a dataset's images as row ranges aligned to ``batch_size``.

    The refiner's file content (``saved``, small) travels with each range; the images are
    read from ``images_path``, which the workers must see (a shared file system). :meth:`chunks`
    cuts the range results back into ``batch_size`` chunks with their label rows: the chunks
    the single-process loop hands the writer, so labels.parquet is cut the same way too."""

    def __init__(self, saved: dict[str, Any], images_path: str | Path, labels: pd.DataFrame,
                 batch_size: int, device: str) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.saved, self.images_path = saved, str(Path(images_path).resolve())
        self.labels, self.batch_size, self.device = labels, batch_size, device
        self.size, self.align = len(labels), batch_size

    def work(self, lo: int, hi: int) -> Callable[[], np.ndarray]:
        return partial(refine_rows, self.saved, self.images_path, lo, hi, self.batch_size,
                       self.device)

    def chunks(self, results: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        done = 0
        for refined in results:
            for lo in range(0, refined.shape[0], self.batch_size):
                part = refined[lo : lo + self.batch_size]
                yield part, self.labels.iloc[done : done + part.shape[0]]
                done += part.shape[0]
        if done != self.size:
            raise RuntimeError(f"shards refined {done} of {self.size} images")
