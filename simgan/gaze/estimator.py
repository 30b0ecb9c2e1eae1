"""Training and prediction of the gaze estimator (the downstream proof of SimGAN).

The same estimator, with the same params, is trained on synthetic, refined or real images;
the comparison is only fair if nothing but the training source differs. So the validation
split comes from the training source itself (a held-out fraction, fixed by the seed), the
best epoch is chosen by validation loss on that split, and real *test* images are never seen
here. Training resumes per epoch from ``last.pt`` after a kill; on CPU a resumed run equals an
uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn
from tqdm import tqdm

from simgan.core.epochs import EpochCheckpoint, data_fingerprint, lr_schedule, split_indices
from simgan.core.images import pick_device, to_tensor
from simgan.gaze.net import PAPER_FC_HIDDEN, PAPER_WIDTHS, GazeCNN

log = logging.getLogger(__name__)

MetricsCallback = Callable[[dict[str, float], int], None]
CHECKPOINT = "last.pt"
_FORMAT = 1
_CADENCE = {"device", "compile"}


class EstimatorParams(BaseModel):
    """Gaze CNN size and training schedule (defaults: paper widths, CPU-friendly schedule).

    Measured on the stand-in data (20k images, 2 cores): quarter widths (8, 8, 16, 20, 48) with
    fc_hidden 250, 3 epochs, AdamW 1e-3 cosine, no BatchNorm train in about a minute and beat
    half width at 2 epochs; BatchNorm at lr 2e-3 collapsed to the mean gaze on real images.
    """

    model_config = ConfigDict(extra="forbid")

    widths: tuple[int, int, int, int, int] = PAPER_WIDTHS
    fc_hidden: int = Field(PAPER_FC_HIDDEN, ge=1, le=65536)
    batch_norm: bool = False
    standardize: bool = False
    epochs: int = Field(3, ge=1, le=10000)
    batch_size: int = Field(128, ge=1, le=65536)
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0, le=10)
    weight_decay: float = Field(1e-4, ge=0, le=1)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    val_fraction: float = Field(0.1, ge=0, lt=0.5)
    brightness_jitter: float = Field(0.0, ge=0, le=1)
    contrast_jitter: float = Field(0.0, ge=0, le=1)
    compile: bool = False
    channels_last: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> EstimatorParams:
        if min(self.widths) < 1:
            raise ValueError(f"widths must be >= 1, got {self.widths}")
        return self


def build_gaze_cnn(
    params: EstimatorParams, image_shape: tuple[int, int] = (35, 55), out_dim: int = 3
) -> GazeCNN:
    """The estimator described by ``params`` (untrained)."""
    return GazeCNN(
        widths=params.widths,
        fc_hidden=params.fc_hidden,
        input_shape=image_shape,
        out_dim=out_dim,
        batch_norm=params.batch_norm,
        standardize=params.standardize,
    )


def _fingerprint(params: EstimatorParams, images: np.ndarray, targets: np.ndarray) -> str:
    spec = {
        "format": _FORMAT,
        "params": params.model_dump(mode="json", exclude=_CADENCE),
        "shape": list(images.shape),
        "targets": list(targets.shape),
    }
    return data_fingerprint(spec, images, targets)


def _optimizer(params: EstimatorParams, model: nn.Module) -> torch.optim.Optimizer:
    if params.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    if params.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    return torch.optim.SGD(
        model.parameters(),
        lr=params.lr,
        momentum=0.9,
        weight_decay=params.weight_decay,
        nesterov=True,
    )


def _angles_deg(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    cos = torch.nn.functional.cosine_similarity(pred, target, dim=1, eps=1e-8)
    return torch.rad2deg(torch.arccos(cos.clamp(-1.0, 1.0)))


@torch.inference_mode()
def _evaluate(
    model: nn.Module,
    images: np.ndarray,
    targets: np.ndarray,
    idx: np.ndarray,
    batch_size: int,
    device: torch.device,
    fmt: torch.memory_format,
) -> dict[str, float]:
    model.eval()
    loss_sum, angle_sum = 0.0, 0.0
    for s in range(0, idx.shape[0], batch_size):
        rows = idx[s : s + batch_size]
        x = to_tensor(images[rows], device).contiguous(memory_format=fmt)
        t = torch.from_numpy(np.asarray(targets[rows], dtype=np.float32)).to(device)
        p = model(x).float()
        loss_sum += float(((p - t) ** 2).sum())
        angle_sum += float(_angles_deg(p, t).sum()) if t.shape[1] == 3 else 0.0
    model.train()
    n = max(idx.shape[0], 1)
    out = {"val_loss": loss_sum / n}
    if targets.shape[1] == 3:
        out["val_angle_deg"] = angle_sum / n
    return out


def train_estimator(
    images: np.ndarray,
    targets: np.ndarray,
    params: EstimatorParams,
    checkpoint_dir: str | Path,
    on_metrics: MetricsCallback | None = None,
) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
    """Train a gaze CNN on uint8 (N, H, W) ``images`` and (N, K) ``targets`` (unit gaze vectors).

    Loss: squared Euclidean distance between output and target (the paper's L2 loss), averaged
    over the batch. Returns the state dict of the best epoch by validation loss (the last epoch
    if ``val_fraction`` is 0) and one history row per epoch, also sent to
    ``on_metrics(row, epoch)``.
    """
    targets = np.asarray(targets, dtype=np.float32)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images: expected uint8 (N, H, W), got {images.dtype} {images.shape}")
    if targets.ndim != 2 or targets.shape[0] != images.shape[0]:
        raise ValueError(f"targets: expected ({images.shape[0]}, K), got {targets.shape}")
    if not np.isfinite(targets).all():
        raise ValueError("targets contain NaN or inf")
    checkpoint_dir = Path(checkpoint_dir)
    device = pick_device(params.device)
    fmt = torch.channels_last if params.channels_last else torch.contiguous_format
    train_idx, val_idx = split_indices(images.shape[0], params.val_fraction, params.seed)
    if train_idx.shape[0] == 0:
        raise ValueError("no training images left after the validation split")
    steps_per_epoch = math.ceil(train_idx.shape[0] / params.batch_size)

    torch.manual_seed(params.seed)
    model = build_gaze_cnn(params, images.shape[1:], targets.shape[1])
    with torch.no_grad():  # start at the mean label: saves the first epoch's worth of steps
        model.head[-1].bias.copy_(torch.from_numpy(targets[train_idx].mean(0)))
    model = model.to(device, memory_format=fmt)
    opt = _optimizer(params, model)
    total_steps = params.epochs * steps_per_epoch
    sched = lr_schedule(opt, params.lr_schedule, total_steps)
    ckpt = EpochCheckpoint(Path(checkpoint_dir) / CHECKPOINT, _fingerprint(params, images, targets))
    ckpt.resume(model, opt, sched, "estimator")

    fwd = torch.compile(model) if params.compile else model
    bar = tqdm(
        total=total_steps,
        initial=ckpt.epoch * steps_per_epoch,
        desc="estimator",
        unit="step",
        file=sys.stderr,
        mininterval=1.0,
        dynamic_ncols=True,
    )
    model.train()
    while ckpt.epoch < params.epochs:
        epoch = ckpt.epoch
        t0 = time.perf_counter()
        # per-epoch RNGs derived from (seed, epoch): a resumed epoch draws the same batches
        order = train_idx[
            np.random.default_rng([params.seed, 1, epoch]).permutation(train_idx.shape[0])
        ]
        aug = torch.Generator().manual_seed(params.seed * 100_003 + epoch)
        loss_sum = 0.0
        for s in range(0, order.shape[0], params.batch_size):
            rows = np.sort(order[s : s + params.batch_size])
            x = to_tensor(images[rows], device)
            if params.brightness_jitter or params.contrast_jitter:
                n = x.shape[0]
                c = 1 + params.contrast_jitter * (2 * torch.rand(n, 1, 1, 1, generator=aug) - 1)
                d = params.brightness_jitter * (2 * torch.rand(n, 1, 1, 1, generator=aug) - 1)
                x = (x * c.to(device) + d.to(device)).clamp_(-1, 1)
            x = x.contiguous(memory_format=fmt)
            t = torch.from_numpy(targets[rows]).to(device)
            loss = ((fwd(x).float() - t) ** 2).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * rows.shape[0]
            bar.update(1)
        row: dict[str, float] = {
            "epoch": float(epoch + 1),
            "train_loss": loss_sum / order.shape[0],
            "lr": float(opt.param_groups[0]["lr"]),
        }
        if val_idx.shape[0]:
            row.update(_evaluate(model, images, targets, val_idx, 512, device, fmt))
        row["epoch_seconds"] = time.perf_counter() - t0
        bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k != "epoch"}, refresh=False)
        # no validation: the last epoch wins
        ckpt.end_epoch(row, row.get("val_loss", -float(epoch + 1)), model)
        if on_metrics is not None:
            on_metrics({k: v for k, v in row.items() if k != "epoch"}, ckpt.epoch)
        ckpt.save(model, opt, sched)
    bar.close()
    assert ckpt.best is not None
    return ckpt.best["state"], ckpt.history


@torch.inference_mode()
def predict(
    model: nn.Module,
    images: np.ndarray,
    batch_size: int = 512,
    device: torch.device | str = "auto",
    normalize: bool = True,
) -> np.ndarray:
    """(N, K) float32 predictions for uint8 (N, H, W) images; unit vectors if ``normalize``."""
    dev = pick_device(device) if isinstance(device, str) else device
    model = model.to(dev, memory_format=torch.channels_last).eval()
    out = []
    for s in range(0, images.shape[0], batch_size):
        p = model(to_tensor(images[s : s + batch_size], dev)).float()
        if normalize:
            p = torch.nn.functional.normalize(p, dim=1, eps=1e-8)
        out.append(p.cpu().numpy())
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)
