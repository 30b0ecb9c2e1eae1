"""What every epoch-based estimator trainer (gaze CNN, hand hourglass) shares: a fingerprint of
its params and data, the learning-rate schedule, resuming from the last epoch's checkpoint, and
keeping the best epoch. One place, so that resumption means the same thing for every task:
a checkpoint is reused only when params and data are the same, and a resumed run gives the
same bytes as one that never stopped.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from simgan.core.dataset import atomic_write_bytes

log = logging.getLogger(__name__)


def data_fingerprint(spec: dict[str, Any], images: np.ndarray, targets: np.ndarray) -> str:
    """sha256 of ``spec`` (params, shapes, format version), 64 evenly spaced images and all
    targets: what decides whether a checkpoint belongs to this run."""
    h = hashlib.sha256()
    h.update(json.dumps(spec, sort_keys=True).encode())
    rows = np.linspace(0, images.shape[0] - 1, min(64, images.shape[0])).astype(np.int64)
    h.update(np.ascontiguousarray(images[rows]).tobytes())
    h.update(np.ascontiguousarray(targets, dtype=np.float32).tobytes())
    return h.hexdigest()


def lr_schedule(
    opt: torch.optim.Optimizer, kind: Literal["cosine", "constant"] | str, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step schedule: cosine from the base lr to 0 over ``total_steps``, or constant."""
    if kind == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda i: 0.5 * (1 + math.cos(math.pi * min(i, total_steps) / total_steps))
        )
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)


@dataclass
class EpochCheckpoint:
    """The training state saved after every epoch (with the model, optimiser and schedule)."""

    path: Path
    fingerprint: str
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best: dict[str, Any] | None = None

    def resume(self, model: nn.Module, opt: torch.optim.Optimizer,
               sched: torch.optim.lr_scheduler.LRScheduler, what: str) -> None:
        """Load the last epoch if the file has this run's fingerprint; otherwise start afresh
        (and say so: params or data changed)."""
        if not self.path.is_file():
            return
        saved = torch.load(self.path, map_location="cpu", weights_only=True)
        if saved.get("fingerprint") != self.fingerprint:
            log.warning("%s was written with other params or data: starting afresh", self.path)
            return
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        self.epoch, self.history, self.best = (
            int(saved["epoch"]), saved["history"], saved["best"]
        )
        log.info("resuming %s training from %s at epoch %d", what, self.path, self.epoch)

    def end_epoch(self, row: dict[str, float], score: float, model: nn.Module) -> None:
        """Record the finished epoch's ``row``; keep the weights if ``score`` (lower is better)
        is the best so far; ``row["best_epoch"]`` says which epoch that is."""
        self.epoch += 1
        self.history.append(row)
        if self.best is None or score < self.best["score"]:
            state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            self.best = {"score": score, "epoch": self.epoch, "state": state}
        row["best_epoch"] = float(self.best["epoch"])

    def save(self, model: nn.Module, opt: torch.optim.Optimizer,
             sched: torch.optim.lr_scheduler.LRScheduler) -> None:
        """Write the state atomically (a kill mid-write leaves the previous epoch's file)."""
        buf = io.BytesIO()
        torch.save(
            {
                "fingerprint": self.fingerprint,
                "epoch": self.epoch,
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "history": self.history,
                "best": self.best,
            },
            buf,
        )
        atomic_write_bytes(self.path, buf.getvalue())


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) sorted indices; the validation part is a seeded random fraction."""
    n_val = int(round(n * val_fraction))
    if val_fraction > 0:
        n_val = min(max(n_val, 1), n - 1)
    perm = np.random.default_rng([seed, 0]).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
