"""The frozen label model's reading of each synthetic training image, computed once.

The label-consistency term compares the label model's reading of R(x) with its reading of x.
The second never changes during training, yet reading it at every refiner update costs one
forward pass of the label model per update: ``kg`` updates of a batch per step come to about
three times the synthetic training set over the default schedules (hand: the hourglass's
forward is ~12 % of a step). Here every training image is read once, the first time a target
is needed, and a batch's targets are rows of that table.

Same bytes as reading per update, or no table: the table is filled in batches of the training
batch's shape, loaded by the trainer's own loader, so each image is read by the same kernels.
Whether an image's reading then depends on where it sits in its batch is the kernels' business:
measured at 1 thread on CPU, the hand's hourglass (convolutions only) reads an image the same
anywhere in the batch, while the gaze CNN does not (last-bit differences, ~1e-7; its fully
connected layers, whose GEMM blocks rows, are the likely place). So before the table is filled,
the first batch is loaded again rolled by one place and by half a batch, and after it the first
``CHECKED_READS`` reads from the table are compared with reading the batch itself; on any
difference there is no table and x is read at every update, as before.
``tests/test_label_targets.py`` checks the reads, the fallback, and a short run with the table
against one without it, bit for bit. A table larger than ``budget_bytes`` (e.g. heatmaps at the
paper's hand size over all of NYU) is not built either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

DEFAULT_BUDGET_BYTES = 1 << 30  # 1 GiB of CPU memory
CHECKED_READS = 4  # the first reads from the table are compared with reading the batch

log = logging.getLogger(__name__)


class LabelTargets:
    """``read(rows, x)``: the label model's reading of the images at ``rows``, loaded as ``x``.

    ``load(rows)`` loads a batch exactly as training does (the trainer's own loader), so that
    the table is filled from the same tensors."""

    def __init__(
        self,
        model: nn.Module,
        load: Callable[[np.ndarray], torch.Tensor],
        n_images: int,
        pool: np.ndarray,
        batch_size: int,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
    ) -> None:
        self.model = model
        self.load = load
        self.n_images = n_images
        self.pool = pool  # the rows that batches are drawn from (sorted)
        self.batch_size = batch_size
        self.budget_bytes = budget_bytes
        self.table: torch.Tensor | None = None  # (n_images, *reading) on the CPU
        self.cached = budget_bytes > 0 and pool.size >= batch_size  # decided on first read
        self.checks_left = CHECKED_READS

    @torch.no_grad()
    def _fill(self) -> None:
        """Read the pool in chunks of ``batch_size`` rows; the last chunk overlaps the one
        before it rather than being shorter, so every read has the training batch's shape."""
        b, n = self.batch_size, self.pool.size
        starts = list(range(0, n - b + 1, b))
        if starts[-1] != n - b:
            starts.append(n - b)
        first = self.model(self.load(self.pool[:b]))
        row_bytes = first[0].numel() * first.element_size()
        if row_bytes * self.n_images > self.budget_bytes:
            self.cached = False
            return
        table = torch.empty((self.n_images, *first.shape[1:]), dtype=first.dtype)
        for s in starts:
            rows = self.pool[s : s + b]
            out = first if s == 0 else self.model(self.load(rows))
            table[torch.from_numpy(rows)] = out.to("cpu")
        self.table = table

    @torch.no_grad()
    def _same_anywhere(self, rows: np.ndarray, direct: torch.Tensor) -> bool:
        """Whether the batch at ``rows``, rolled by one place and by half a batch, is read the
        same (cheap: two forwards, against filling a table that would then be dropped)."""
        for shift in sorted({1, rows.size // 2} - {0}):
            rolled = self.model(self.load(np.roll(rows, shift)))
            if not torch.equal(rolled, direct.roll(shift, 0)):
                return False
        return True

    def _give_up(self, direct: torch.Tensor, detail: str) -> torch.Tensor:
        log.info("the label model's reading of an image depends on its place in the batch%s: "
                 "reading x at every update", detail)
        self.table, self.cached = None, False
        return direct

    @torch.no_grad()
    def read(self, rows: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        direct = None
        if self.cached and self.table is None:
            direct = self.model(x)
            if not self._same_anywhere(rows, direct):
                return self._give_up(direct, "")
            self._fill()
        if self.table is None:
            return self.model(x) if direct is None else direct
        cached = self.table[torch.from_numpy(rows)].to(x.device, non_blocking=True)
        if self.checks_left > 0:  # the table must give what reading the batch would
            self.checks_left -= 1
            direct = self.model(x) if direct is None else direct
            if not torch.equal(cached, direct):
                diff = float((cached - direct).abs().max())
                return self._give_up(direct, f" (max difference {diff:.3g})")
        return cached
