"""Training and prediction of the gaze estimator (the downstream proof of SimGAN).

The same estimator, with the same params, is trained on synthetic, refined or real images;
the comparison is only fair if nothing but the training source differs. So the validation
split comes from the training source itself (a held-out fraction, fixed by the seed), the
best epoch is chosen by validation loss on that split, and real *test* images are never seen
here. Training resumes per epoch from ``last.pt`` after a kill; on CPU a resumed run equals an
uninterrupted one. The loop is :func:`simgan.core.epochs.train_epochs`, shared with the hand
estimator; this module adds the net, the batches, the loss and the validation metrics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from simgan.core.distributed import setup  # a rank's own GPU under torchrun
from simgan.core.epochs import (
    CHECKPOINT,
    EpochCheckpoint,
    check_finite,
    check_images,
    params_fingerprint,
    train_epochs,
)
from simgan.core.images import pick_device, to_tensor
from simgan.core.task import MetricsCallback
from simgan.core.transfer import to_device
from simgan.gaze.estimator_params import EstimatorParams
from simgan.gaze.net import GazeCNN
from simgan.gaze.photometric import photometric_jitter

log = logging.getLogger(__name__)

_FORMAT = 1


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
    """Validation loss (the training loss, per image) and mean angle for 3-D gaze; the epoch
    loop puts the model in eval mode around it."""
    loss_sum, angle_sum = 0.0, 0.0
    for s in range(0, idx.shape[0], batch_size):
        rows = idx[s : s + batch_size]
        x = to_tensor(images[rows], device).contiguous(memory_format=fmt)
        t = torch.from_numpy(np.asarray(targets[rows], dtype=np.float32)).to(device)
        p = model(x).float()
        loss_sum += float(((p - t) ** 2).sum())
        angle_sum += float(_angles_deg(p, t).sum()) if t.shape[1] == 3 else 0.0
    n = max(idx.shape[0], 1)
    out = {"val_loss": loss_sum / n}
    if targets.shape[1] == 3:
        out["val_angle_deg"] = angle_sum / n
    return out


@dataclass
class _GazeTask:
    """The gaze CNN's part of the epoch loop: the net starts at the mean label, batches get
    optional brightness/contrast jitter, the loss is the paper's L2 on gaze vectors and the
    best epoch has the lowest validation loss."""

    images: np.ndarray
    targets: np.ndarray
    params: EstimatorParams
    device: torch.device
    fmt: torch.memory_format
    name: str = "estimator"
    score_key: str = "val_loss"

    def build_model(self, train_idx: np.ndarray) -> nn.Module:
        model = build_gaze_cnn(self.params, self.images.shape[1:], self.targets.shape[1])
        with torch.no_grad():  # start at the mean label: saves the first epoch's worth of steps
            model.head[-1].bias.copy_(torch.from_numpy(self.targets[train_idx].mean(0)))
        return model.to(self.device, memory_format=self.fmt)

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return _optimizer(self.params, model)

    def make_batch(
        self, rows: np.ndarray, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        x = to_tensor(self.images[rows], self.device)
        x = photometric_jitter(x, generator, brightness=p.brightness_jitter,
                               contrast=p.contrast_jitter, gamma=p.gamma_jitter,
                               blur=p.blur_jitter, noise=p.noise_jitter)
        x = x.contiguous(memory_format=self.fmt)
        return x, to_device(torch.from_numpy(self.targets[rows]), self.device)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((output.float() - target) ** 2).sum(1).mean()

    def validate(self, model: nn.Module, val_idx: np.ndarray) -> dict[str, float]:
        return _evaluate(model, self.images, self.targets, val_idx, 512, self.device, self.fmt)


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
    check_images(images)
    if targets.ndim != 2 or targets.shape[0] != images.shape[0]:
        raise ValueError(f"targets: expected ({images.shape[0]}, K), got {targets.shape}")
    check_finite(targets, "targets")
    fmt = torch.channels_last if params.channels_last else torch.contiguous_format
    task = _GazeTask(images, targets, params, setup(params.device).device, fmt)
    fingerprint = params_fingerprint(params, images, targets, _FORMAT)
    ckpt = EpochCheckpoint(Path(checkpoint_dir) / CHECKPOINT, fingerprint)
    return train_epochs(images.shape[0], params, task, ckpt, on_metrics)


class GazeReading(nn.Module):
    """A gaze CNN whose output is the unit gaze vector (B, 3): what the refiner's
    label-consistency term compares between x and R(x), so that only the direction counts."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.model(x).float(), dim=1, eps=1e-8)


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
