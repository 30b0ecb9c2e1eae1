"""What every epoch-based estimator trainer (gaze CNN, hand hourglass) shares: a fingerprint of
its params and data, the learning-rate schedule, resuming from the last epoch's checkpoint,
keeping the best epoch, and the epoch loop itself (:func:`train_epochs`). One place, so that
resumption means the same thing for every task: a checkpoint is reused only when params and
data are the same, and a resumed run gives the same bytes as one that never stopped. A task
plugs in through :class:`EpochTask` (its net, optimiser, batches, loss and validation score).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn
from tqdm import tqdm

from simgan.core import distributed
from simgan.core.amp import Amp, torch_threads
from simgan.core.checkpoint import load_checkpoint, write_checkpoint
from simgan.core.precision import FP32
from simgan.core.task import MetricsCallback

log = logging.getLogger(__name__)

#: the per-epoch checkpoint's file name in an estimator's checkpoint directory
CHECKPOINT = "last.pt"
#: params that change how fast training runs, not what it computes: not in the fingerprint
CADENCE = frozenset({"device", "compile"})


def data_fingerprint(spec: dict[str, Any], images: np.ndarray, targets: np.ndarray) -> str:
    """sha256 of ``spec`` (params, shapes, format version), 64 evenly spaced images and all
    targets: what decides whether a checkpoint belongs to this run."""
    h = hashlib.sha256()
    h.update(json.dumps(spec, sort_keys=True).encode())
    rows = np.linspace(0, images.shape[0] - 1, min(64, images.shape[0])).astype(np.int64)
    h.update(np.ascontiguousarray(images[rows]).tobytes())
    h.update(np.ascontiguousarray(targets, dtype=np.float32).tobytes())
    return h.hexdigest()


def params_fingerprint(
    params: BaseModel, images: np.ndarray, targets: np.ndarray, version: int,
    cadence: Iterable[str] = CADENCE,
) -> str:
    """:func:`data_fingerprint` of an estimator's params (without ``cadence``), the data shapes
    and the checkpoint format ``version``: bump the version when saved state changes meaning."""
    spec = {
        "format": version,
        "params": params.model_dump(mode="json", exclude=set(cadence)),
        "shape": list(images.shape),
        "targets": list(targets.shape),
    }
    return data_fingerprint(spec, images, targets)


def check_images(images: np.ndarray) -> None:
    """Estimators train on uint8 (N, H, W) crops; anything else is a caller's mistake."""
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images: expected uint8 (N, H, W), got {images.dtype} {images.shape}")


def check_finite(values: np.ndarray, what: str) -> None:
    """A NaN label would silently turn every later weight into NaN: refuse it up front."""
    if not np.isfinite(values).all():
        raise ValueError(f"{what} contain NaN or inf")


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
               sched: torch.optim.lr_scheduler.LRScheduler, what: str,
               ranks: distributed.Ranks | None = None) -> None:
        """Load the last epoch if the file (or the one before it, if it is damaged) has this
        run's fingerprint; otherwise start afresh (and say so). Under DDP (``ranks``) rank 0
        reads and every rank continues from it: nothing in it depends on the world size."""
        load = lambda: load_checkpoint(self.path, self.fingerprint, what)  # noqa: E731
        saved = distributed.from_main(load, ranks) if ranks is not None else load()
        if saved is None:
            return
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        sched.load_state_dict(saved["sched"])
        self.epoch, self.history, self.best = (
            int(saved["epoch"]), saved["history"], saved["best"]
        )
        log.info("resuming %s training at epoch %d", what, self.epoch)

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
        """Write the state atomically and checksummed, keeping the previous epoch's file (a
        kill mid-write, or a damaged file, leaves an earlier epoch to resume from)."""
        write_checkpoint(
            self.path,
            {
                "fingerprint": self.fingerprint,
                "epoch": self.epoch,
                "model": model.state_dict(),
                "opt": opt.state_dict(),
                "sched": sched.state_dict(),
                "history": self.history,
                "best": self.best,
            },
        )


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) sorted indices; the validation part is a seeded random fraction."""
    n_val = int(round(n * val_fraction))
    if val_fraction > 0:
        n_val = min(max(n_val, 1), n - 1)
    perm = np.random.default_rng([seed, 0]).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def shard_rows(rows: np.ndarray, ranks: distributed.Ranks) -> tuple[np.ndarray, float]:
    """This rank's share of a global batch and the weight of its mean loss, ``n_rank *
    world_size / n``: DDP averages gradients over ranks, so the weighted shares give exactly
    the gradient of the mean over the global batch even when it does not split evenly (a
    short last batch). A rank left without rows trains on one row at weight 0."""
    if not ranks.active:
        return rows, 1.0
    mine = distributed.shard(rows, ranks)
    if mine.shape[0] == 0:
        return rows[:1], 0.0
    return mine, mine.shape[0] * ranks.world_size / rows.shape[0]


# ----------------------------------------------------------------------------- the epoch loop


class EpochParams(Protocol):
    """The schedule fields the loop reads; every estimator's params model has them."""

    @property
    def epochs(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def lr_schedule(self) -> str: ...
    @property
    def val_fraction(self) -> float: ...
    @property
    def seed(self) -> int: ...
    @property
    def compile(self) -> bool: ...


class EpochTask(Protocol):
    """What one estimator adds to :func:`train_epochs`: everything but the schedule."""

    #: names the run in the progress bar and the log
    name: str
    #: the validation row entry that picks the best epoch (lower is better)
    score_key: str

    def build_model(self, train_idx: np.ndarray) -> nn.Module:
        """The untrained net, on its device; called right after ``torch.manual_seed(seed)``
        (``train_idx``: e.g. to start the output at the mean training label)."""
        ...

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer: ...

    def make_batch(self, rows: np.ndarray, generator: torch.Generator) -> tuple[Any, Any]:
        """(model input, target) of the sorted training ``rows``; random augmentation draws
        from ``generator``, which is seeded per epoch (so a resumed epoch draws the same)."""
        ...

    def loss(self, output: Any, target: Any) -> torch.Tensor:
        """The scalar to minimise, from the model's output on a batch and its target."""
        ...

    def validate(self, model: nn.Module, val_idx: np.ndarray) -> dict[str, float]:
        """Validation metrics with ``score_key`` among them (the model is in eval mode)."""
        ...


@dataclass
class _Run:
    """One training run's moving parts, passed between the loop's steps."""

    params: EpochParams
    task: EpochTask
    ckpt: EpochCheckpoint
    model: nn.Module
    fwd: Callable[[Any], Any]
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    train_idx: np.ndarray
    val_idx: np.ndarray
    bar: tqdm
    ranks: distributed.Ranks
    amp: Amp


def train_epochs(
    n: int,
    params: EpochParams,
    task: EpochTask,
    checkpoint: EpochCheckpoint,
    on_metrics: MetricsCallback | None = None,
) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
    """Train ``task``'s model on samples ``0..n-1`` for ``params.epochs`` epochs, resuming from
    ``checkpoint``. Returns the state of the best epoch by ``task.score_key`` (the last epoch
    if ``val_fraction`` is 0) and one history row per epoch, also sent to
    ``on_metrics(row, epoch)`` with the epoch's wall time (``epoch_seconds``) added. Every
    random draw after the model's init derives from (seed, epoch), so a resumed run gives the
    same bytes (the checkpoint's and the model's) as an uninterrupted one (on CPU), with the
    ``threads`` of ``params``."""
    with torch_threads(getattr(params, "threads", None)):
        train_idx, val_idx = split_indices(n, params.val_fraction, params.seed)
        if train_idx.shape[0] == 0:
            raise ValueError("no training images left after the validation split")
        steps_per_epoch = math.ceil(train_idx.shape[0] / params.batch_size)
        total_steps = params.epochs * steps_per_epoch
        torch.manual_seed(params.seed)
        model = task.build_model(train_idx)
        opt = task.build_optimizer(model)
        sched = lr_schedule(opt, params.lr_schedule, total_steps)
        # under torchrun: join the group (batch_size stays the global batch); else just the device
        ranks = distributed.setup(getattr(params, "device", "auto"))
        checkpoint.resume(model, opt, sched, task.name, ranks)
        amp = Amp.for_training(_device_of(model), getattr(params, "precision", FP32))
        trained = distributed.wrap(model, ranks)
        fwd = amp.wrap(torch.compile(trained) if params.compile else trained)  # type: ignore[arg-type]
        with tqdm(total=total_steps, initial=checkpoint.epoch * steps_per_epoch, desc=task.name,
                  unit="step", file=sys.stderr, mininterval=1.0, dynamic_ncols=True,
                  disable=not ranks.is_main) as bar:
            run = _Run(params, task, checkpoint, model, fwd, opt, sched, train_idx, val_idx, bar,
                       ranks, amp)
            model.train()
            while checkpoint.epoch < params.epochs:
                t0 = time.perf_counter()
                train_loss = _train_epoch(run, checkpoint.epoch)
                _end_epoch(run, train_loss, t0, on_metrics)
        assert checkpoint.best is not None
        return checkpoint.best["state"], checkpoint.history


def _device_of(model: nn.Module) -> torch.device:
    """Where ``task.build_model`` put the net (its first parameter; CPU if it has none)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _train_epoch(run: _Run, epoch: int) -> float:
    """One pass over the training split in an order drawn from (seed, epoch); the mean loss."""
    p = run.params
    perm = np.random.default_rng([p.seed, 1, epoch]).permutation(run.train_idx.shape[0])
    order = run.train_idx[perm]
    generator = torch.Generator().manual_seed(p.seed * 100_003 + epoch)
    if run.ranks.active:  # each rank its own augmentation draws
        generator.manual_seed(distributed.rank_seed(p.seed, run.ranks.rank, epoch))
    losses = []  # read after the epoch: reading a CUDA scalar per step would wait for the GPU
    for s in range(0, order.shape[0], p.batch_size):
        rows = np.sort(order[s : s + p.batch_size])
        rows, weight = shard_rows(rows, run.ranks)
        x, target = run.task.make_batch(rows, generator)
        loss = run.task.loss(run.fwd(x), target)
        run.opt.zero_grad(set_to_none=True)
        run.amp.step(loss * weight if run.ranks.active else loss, run.opt)
        run.sched.step()
        losses.append((loss.detach(), rows.shape[0] if weight else 0))
        run.bar.update(1)
    loss_sum = 0.0
    for loss, n in losses:
        loss_sum += float(loss) * n
    return distributed.all_sum([loss_sum], run.ranks)[0] / order.shape[0]


def _end_epoch(
    run: _Run, train_loss: float, t0: float, on_metrics: MetricsCallback | None
) -> None:
    """Validate, record the epoch (and the best one), report it, then checkpoint: a kill
    before the save repeats this epoch on resume."""
    epoch = run.ckpt.epoch
    row: dict[str, float] = {
        "epoch": float(epoch + 1),
        "train_loss": train_loss,
        "lr": float(run.opt.param_groups[0]["lr"]),
    }
    if run.val_idx.shape[0]:
        run.model.eval()
        row.update(run.task.validate(run.model, run.val_idx))
        run.model.train()
    # wall time is reported, not recorded: the history (in the checkpoint) stays a function
    # of params and data, so a resumed run's checkpoint has the same bytes
    timing = {"epoch_seconds": time.perf_counter() - t0}
    run.bar.set_postfix({k: f"{v:.3g}" for k, v in (row | timing).items() if k != "epoch"},
                        refresh=False)
    # no validation: the last epoch wins
    run.ckpt.end_epoch(row, row.get(run.task.score_key, -float(epoch + 1)), run.model)
    if not run.ranks.is_main:  # DDP: every rank validates the same model, rank 0 writes
        return
    if on_metrics is not None:
        on_metrics({k: v for k, v in (row | timing).items() if k != "epoch"}, run.ckpt.epoch)
    run.ckpt.save(run.model, run.opt, run.sched)
