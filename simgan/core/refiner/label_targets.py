"""The frozen label model's reading of each synthetic training image, computed once.

The label-consistency term compares the label model's reading of R(x) with its reading of x.
The second never changes during training, yet reading it at every refiner update costs one
forward pass of the label model per update: ``kg`` updates of a batch per step come to about
three times the synthetic training set over the default schedules (hand: the hourglass's
forward is ~12 % of a step). Here every training image is read once, the first time a target
is needed, and a batch's targets are rows of that table.

Same bytes as reading per update, or no table: the table is filled in batches of the
training batch's shape and memory format, so each image is read by the same kernels. Whether
an image's reading then depends on where it sits in its batch is the kernels' business:
measured at 1 thread on CPU, the hand's hourglass (convolutions only) reads an image the same
anywhere in the batch, while the gaze CNN does not (last-bit differences, ~1e-7; its fully
connected layers, whose GEMM blocks rows, are the likely place). So before the table is
filled, the first batch is read again rolled by one place and by half a batch, and after it
the first ``CHECKED_READS`` reads from the table are compared with reading the batch itself;
on any difference there is no table and x is read at every update, as before.
``tests/test_label_targets.py`` checks the reads, the fallback, and a short run with the table
against one without it, bit for bit. A table larger than ``budget_bytes`` (e.g. heatmaps at
the paper's hand size over all of NYU) is not built either.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

from simgan.core.images import to_tensor

DEFAULT_BUDGET_BYTES = 1 << 30  # 1 GiB of CPU memory
CHECKED_READS = 4  # the first reads from the table are compared with reading the batch

log = logging.getLogger(__name__)


class LabelTargets:
    """``read(rows, x)``: the label model's reading of ``images[rows]``, loaded as ``x``."""

    def __init__(
        self,
        model: nn.Module,
        images: np.ndarray,
        pool: np.ndarray,
        batch_size: int,
        memory_format: torch.memory_format,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
    ) -> None:
        self.model = model
        self.images = images
        self.pool = pool  # the rows that batches are drawn from (sorted)
        self.batch_size = batch_size
        self.memory_format = memory_format
        self.budget_bytes = budget_bytes
        self.table: torch.Tensor | None = None  # (len(images), *reading) on the CPU
        self.cached = budget_bytes > 0 and pool.size >= batch_size  # decided on first read
        self.checks_left = CHECKED_READS

    def _load(self, rows: np.ndarray, device: torch.device) -> torch.Tensor:
        t = to_tensor(self.images[rows], device)
        return t.contiguous(memory_format=self.memory_format)

    @torch.no_grad()
    def _fill(self, device: torch.device) -> None:
        """Read the pool in chunks of ``batch_size`` rows; the last chunk overlaps the one
        before it rather than being shorter, so every read has the training batch's shape."""
        b, n = self.batch_size, self.pool.size
        starts = list(range(0, n - b + 1, b))
        if starts[-1] != n - b:
            starts.append(n - b)
        first = self.model(self._load(self.pool[:b], device))
        row_bytes = first[0].numel() * first.element_size()
        if row_bytes * self.images.shape[0] > self.budget_bytes:
            self.cached = False
            return
        table = torch.empty((self.images.shape[0], *first.shape[1:]), dtype=first.dtype)
        for s in starts:
            rows = self.pool[s : s + b]
            out = first if s == 0 else self.model(self._load(rows, device))
            table[torch.from_numpy(rows)] = out.to("cpu")
        self.table = table

    @torch.no_grad()
    def _same_anywhere(self, x: torch.Tensor, direct: torch.Tensor) -> bool:
        """Whether the batch ``x``, rolled by one place and by half a batch, is read the same
        (cheap: two forwards, against filling a table that would then be dropped)."""
        for shift in sorted({1, x.shape[0] // 2} - {0}):
            rolled = x.roll(shift, 0).contiguous(memory_format=self.memory_format)
            if not torch.equal(self.model(rolled), direct.roll(shift, 0)):
                return False
        return True

    @torch.no_grad()
    def read(self, rows: np.ndarray, x: torch.Tensor) -> torch.Tensor:
        if self.cached and self.table is None:
            direct = self.model(x)
            if not self._same_anywhere(x, direct):
                log.info("the label model's reading of an image depends on its place in the "
                         "batch: reading x at every update")
                self.cached = False
                return direct
            self._fill(x.device)
        if self.table is None:
            return self.model(x)
        cached = self.table[torch.from_numpy(rows)].to(x.device, non_blocking=True)
        if self.checks_left > 0:  # the table must give what reading the batch would
            self.checks_left -= 1
            direct = self.model(x)
            if not torch.equal(cached, direct):
                log.info("the label model's reading of an image depends on its place in the "
                         "batch (max difference %.3g): reading x at every update",
                         float((cached - direct).abs().max()))
                self.table, self.cached = None, False
                return direct
        return cached
