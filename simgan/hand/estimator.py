"""Training and prediction of the hand-pose estimator: a stacked hourglass on joint heatmaps.

Mirrors :mod:`simgan.gaze.estimator` (the gaze estimator) so that the same comparison holds:
one estimator, one set of params, trained on synthetic, refined or real images; the validation
split is a seeded fraction of the training source itself; the best epoch is chosen on it (mean
joint error in px after decoding); training resumes per epoch from ``last.pt``.

Targets: a Gaussian per joint (``sigma`` heatmap px) at the joint's heatmap position; heatmap
pixel j of a stride-s net covers image pixels [s j, s j + s), so its centre is at image
coordinate s j + (s - 1) / 2 (pixel centres at integers everywhere in this project).
Augmentation (the paper's): a random rotation within +-``rotation_deg`` about the image centre
and a random crop (zoom by 1 +- ``scale_jitter``, shift by up to ``shift_px``), applied to the
images with one batched ``affine_grid``/``grid_sample`` call and to the keypoints with the same
matrix, so labels stay consistent; empty space is background (code 0); depth is resampled by
nearest neighbour (interpolating depth across an edge would invent flying pixels).
Decoding (:func:`decode_heatmaps`): the argmax refined to sub-pixel precision by a parabola
through the log heatmap (exact for a Gaussian), or a local soft-argmax.
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
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from tqdm import tqdm

from simgan.core.epochs import EpochCheckpoint, data_fingerprint, lr_schedule, split_indices
from simgan.core.images import pick_device, to_tensor
from simgan.hand.hourglass import StackedHourglass

log = logging.getLogger(__name__)

MetricsCallback = Callable[[dict[str, float], int], None]
CHECKPOINT = "last.pt"
_FORMAT = 1
_CADENCE = {"device", "compile"}
Decode = Literal["quadratic", "soft_argmax"]


class PoseEstimatorParams(BaseModel):
    """Hourglass size, heatmap targets, augmentation and schedule.

    The default is sized for the CPU budget (a 10-minute hand pipeline on 2 cores): width 32,
    depth 2, stem stride 4 (16x16 heatmaps from 64 px crops), which trained at ~290 img/s per
    core here against ~100 for stride 2 (32x32 heatmaps). Paper-like: width 256, depth 4,
    stride 4 on 224 px crops (see :data:`simgan.hand.hourglass.PAPER`).
    """

    model_config = ConfigDict(extra="forbid")

    stacks: int = Field(2, ge=1, le=8)
    width: int = Field(32, ge=2, le=1024)
    depth: int = Field(2, ge=1, le=6)
    stem_stride: Literal[1, 2, 4] = 4
    sigma: float = Field(1.0, gt=0.0, le=10.0, description="target Gaussian, heatmap px")
    decode: Decode = "quadratic"
    epochs: int = Field(4, ge=1, le=10000)
    batch_size: int = Field(32, ge=1, le=65536)
    optimizer: Literal["adam", "adamw", "rmsprop"] = "adam"
    lr: float = Field(2e-3, gt=0, le=10)
    weight_decay: float = Field(0.0, ge=0, le=1)
    lr_schedule: Literal["constant", "cosine"] = "cosine"
    val_fraction: float = Field(0.1, ge=0, lt=0.5)
    rotation_deg: float = Field(20.0, ge=0.0, le=180.0, description="uniform +- (paper: 20)")
    scale_jitter: float = Field(0.1, ge=0.0, lt=0.5, description="zoom 1 +- this")
    shift_px: float = Field(3.0, ge=0.0, le=64.0, description="crop shift +- this, image px")
    interpolation: Literal["nearest", "bilinear"] = "nearest"
    compile: bool = False
    channels_last: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = Field(0, ge=0)


def build_hourglass(params: PoseEstimatorParams, joints: int = 14) -> StackedHourglass:
    """The estimator described by ``params`` (untrained)."""
    return StackedHourglass(joints=joints, stacks=params.stacks, width=params.width,
                            depth=params.depth, stem_stride=params.stem_stride)


# ----------------------------------------------------------------------------- coordinates


def image_to_heatmap(uv: torch.Tensor, stride: int) -> torch.Tensor:
    """Image px -> heatmap px (pixel centres at integers in both)."""
    return (uv - (stride - 1) / 2.0) / stride


def heatmap_to_image(uv: torch.Tensor, stride: int) -> torch.Tensor:
    return uv * stride + (stride - 1) / 2.0


def heatmap_targets(
    uv_hm: torch.Tensor, size: tuple[int, int], sigma: float
) -> torch.Tensor:
    """Gaussians (B, J, h, w) with peak 1 at heatmap positions ``uv_hm`` (B, J, 2); a joint
    outside the heatmap gets whatever tail of its Gaussian falls inside (usually ~0)."""
    h, w = size
    xs = torch.arange(w, dtype=uv_hm.dtype, device=uv_hm.device)
    ys = torch.arange(h, dtype=uv_hm.dtype, device=uv_hm.device)
    gx = torch.exp(-((xs[None, None] - uv_hm[..., 0:1]) ** 2) / (2 * sigma * sigma))  # (B,J,w)
    gy = torch.exp(-((ys[None, None] - uv_hm[..., 1:2]) ** 2) / (2 * sigma * sigma))  # (B,J,h)
    t = gy[..., :, None] * gx[..., None, :]
    return torch.where(t < 1e-8, 0.0, t)  # no denormal tails (slow on CPUs)


def decode_heatmaps(heatmaps: torch.Tensor, method: Decode = "quadratic") -> torch.Tensor:
    """Sub-pixel joint positions (B, J, 2) (heatmap px, u then v) from heatmaps (B, J, h, w).

    ``quadratic``: argmax, then per axis the vertex of the parabola through the log values at
    the argmax and its two neighbours (exact for a Gaussian peak; offsets clipped to +-0.5,
    none at the border). ``soft_argmax``: the centroid of the positive values in the 5x5
    window around the argmax.
    """
    b, j, h, w = heatmaps.shape
    hm = heatmaps.detach().float().reshape(b * j, h, w)
    idx = hm.reshape(b * j, -1).argmax(1)
    iy, ix = idx // w, idx % w
    rows = torch.arange(b * j, device=hm.device)
    if method == "quadratic":
        logh = torch.log(hm.clamp_min(1e-10))

        def offset(lm: torch.Tensor, l0: torch.Tensor, lp: torch.Tensor, ok: torch.Tensor):
            den = lm - 2 * l0 + lp
            off = 0.5 * (lm - lp) / torch.where(den < 0, den, -torch.ones_like(den))
            return torch.where(ok & (den < 0), off.clamp(-0.5, 0.5), torch.zeros_like(off))

        xm, xp = (ix - 1).clamp(0, w - 1), (ix + 1).clamp(0, w - 1)
        ym, yp = (iy - 1).clamp(0, h - 1), (iy + 1).clamp(0, h - 1)
        l0 = logh[rows, iy, ix]
        dx = offset(logh[rows, iy, xm], l0, logh[rows, iy, xp], (ix > 0) & (ix < w - 1))
        dy = offset(logh[rows, ym, ix], l0, logh[rows, yp, ix], (iy > 0) & (iy < h - 1))
        u, v = ix.float() + dx, iy.float() + dy
    elif method == "soft_argmax":
        r = 2
        offs = torch.arange(-r, r + 1, device=hm.device)
        yy = (iy[:, None] + offs[None]).clamp(0, h - 1)  # (BJ, 5)
        xx = (ix[:, None] + offs[None]).clamp(0, w - 1)
        win = hm[rows[:, None, None], yy[:, :, None], xx[:, None, :]].clamp_min(0)
        valid_y = (iy[:, None] + offs[None] >= 0) & (iy[:, None] + offs[None] < h)
        valid_x = (ix[:, None] + offs[None] >= 0) & (ix[:, None] + offs[None] < w)
        win = win * (valid_y[:, :, None] & valid_x[:, None, :])
        mass = win.sum((1, 2)).clamp_min(1e-12)
        u = (win.sum(1) * xx.float()).sum(1) / mass
        v = (win.sum(2) * yy.float()).sum(1) / mass
        u = torch.where(mass > 1e-12, u, ix.float())
        v = torch.where(mass > 1e-12, v, iy.float())
    else:
        raise ValueError(f"decode must be 'quadratic' or 'soft_argmax', got {method!r}")
    return torch.stack([u, v], -1).reshape(b, j, 2)


# ----------------------------------------------------------------------------- augmentation


def random_affine(
    n: int,
    size: tuple[int, int],
    rotation_deg: float,
    scale_jitter: float,
    shift_px: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """(n, 3, 3) forward maps in image px: out = c + t + s R(a) (in - c), c the image centre;
    a ~ U(+-rotation_deg), s ~ U(1 +- scale_jitter), t ~ U(+-shift_px)^2."""
    h, w = size
    a = torch.deg2rad((2 * torch.rand(n, generator=generator) - 1) * rotation_deg)
    s = 1 + (2 * torch.rand(n, generator=generator) - 1) * scale_jitter
    t = (2 * torch.rand(n, 2, generator=generator) - 1) * shift_px
    c = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0])
    cos, sin = torch.cos(a) * s, torch.sin(a) * s
    m = torch.zeros(n, 3, 3)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = cos, -sin, sin, cos
    lin = m[:, :2, :2]
    m[:, :2, 2] = c + t - (lin @ c)
    m[:, 2, 2] = 1.0
    return m


def warp(
    images: torch.Tensor,
    keypoints: torch.Tensor,
    forward: torch.Tensor,
    interpolation: str = "nearest",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply forward maps (B, 3, 3) (image px) to images (B, C, H, W) in [-1, 1] and to
    keypoints (B, J, 2). Outside the source image is background (-1, i.e. code 0)."""
    b, _, h, w = images.shape
    dev = images.device
    # normalised coords (align_corners=False): x_n = (2u + 1) / W - 1
    norm = torch.tensor([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0],
                         [0.0, 0.0, 1.0]], device=dev)
    inv = torch.linalg.inv(forward.to(dev))
    theta = (norm @ inv @ torch.linalg.inv(norm))[:, :2]  # output -> input sampling
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images + 1.0, grid, mode=interpolation, padding_mode="zeros",
                        align_corners=False) - 1.0
    kp = keypoints @ forward[:, :2, :2].transpose(1, 2).to(dev) + forward[:, None, :2, 2].to(dev)
    return out, kp


# ----------------------------------------------------------------------------- training


def _fingerprint(params: PoseEstimatorParams, images: np.ndarray, kp: np.ndarray) -> str:
    spec = {"format": _FORMAT, "params": params.model_dump(mode="json", exclude=_CADENCE),
            "shape": list(images.shape), "targets": list(kp.shape)}
    return data_fingerprint(spec, images, kp)


def _optimizer(params: PoseEstimatorParams, model: nn.Module) -> torch.optim.Optimizer:
    if params.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    if params.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    return torch.optim.RMSprop(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)


def heatmap_loss(outputs: list[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """Squared error summed over heatmap pixels, averaged over images and joints, summed over
    stacks (intermediate supervision)."""
    hw = targets.shape[-1] * targets.shape[-2]
    return sum(F.mse_loss(o.float(), targets) * hw for o in outputs)


@torch.inference_mode()
def predict_keypoints(
    model: StackedHourglass,
    images: np.ndarray,
    batch_size: int = 256,
    device: torch.device | str = "auto",
    decode: Decode = "quadratic",
) -> np.ndarray:
    """(N, J, 2) float32 joint positions in image px for uint8 (N, H, W) images (last stack)."""
    dev = pick_device(device) if isinstance(device, str) else device
    model = model.to(dev, memory_format=torch.channels_last).eval()
    out = []
    for s in range(0, images.shape[0], batch_size):
        hm = model(to_tensor(images[s : s + batch_size], dev))[-1]
        out.append(heatmap_to_image(decode_heatmaps(hm, decode), model.stride).cpu().numpy())
    if not out:
        return np.zeros((0, model.heads[-1].out_channels, 2), dtype=np.float32)
    return np.concatenate(out).astype(np.float32, copy=False)


def _val_error(model: StackedHourglass, images: np.ndarray, kp: np.ndarray, idx: np.ndarray,
               device: torch.device, decode: Decode) -> float:
    pred = predict_keypoints(model, images[idx], 256, device, decode)
    model.train()
    return float(np.linalg.norm(pred - kp[idx], axis=-1).mean())


def train_pose_estimator(
    images: np.ndarray,
    keypoints: np.ndarray,
    params: PoseEstimatorParams,
    checkpoint_dir: str | Path,
    on_metrics: MetricsCallback | None = None,
) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
    """Train a stacked hourglass on uint8 (N, H, W) depth crops and (N, J, 2) keypoints (image
    px). Returns the state dict of the best epoch by validation mean joint error (the last
    epoch if ``val_fraction`` is 0) and one history row per epoch (also sent to
    ``on_metrics(row, epoch)``)."""
    kp_all = np.asarray(keypoints, dtype=np.float32)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"images: expected uint8 (N, H, W), got {images.dtype} {images.shape}")
    if kp_all.ndim != 3 or kp_all.shape[0] != images.shape[0] or kp_all.shape[2] != 2:
        raise ValueError(f"keypoints: expected ({images.shape[0]}, J, 2), got {kp_all.shape}")
    if not np.isfinite(kp_all).all():
        raise ValueError("keypoints contain NaN or inf")
    checkpoint_dir = Path(checkpoint_dir)
    device = pick_device(params.device)
    fmt = torch.channels_last if params.channels_last else torch.contiguous_format
    train_idx, val_idx = split_indices(images.shape[0], params.val_fraction, params.seed)
    if train_idx.shape[0] == 0:
        raise ValueError("no training images left after the validation split")
    steps_per_epoch = math.ceil(train_idx.shape[0] / params.batch_size)
    size = images.shape[1:]
    # Measured here: with denormals (tiny gradients, Adam's second moments) the first training
    # steps took 3-7 s instead of 0.1 s. Flushing them to zero changes nothing that matters.
    torch.set_flush_denormal(True)

    torch.manual_seed(params.seed)
    model = build_hourglass(params, kp_all.shape[1]).to(device, memory_format=fmt)
    stride = model.stride
    hm_size = (math.ceil(size[0] / stride), math.ceil(size[1] / stride))
    opt = _optimizer(params, model)
    total_steps = params.epochs * steps_per_epoch
    sched = lr_schedule(opt, params.lr_schedule, total_steps)
    ckpt = EpochCheckpoint(checkpoint_dir / CHECKPOINT, _fingerprint(params, images, kp_all))
    ckpt.resume(model, opt, sched, "pose estimator")

    fwd = torch.compile(model) if params.compile else model
    augment = params.rotation_deg > 0 or params.scale_jitter > 0 or params.shift_px > 0
    bar = tqdm(total=total_steps, initial=ckpt.epoch * steps_per_epoch, desc="pose estimator",
               unit="step", file=sys.stderr, mininterval=1.0, dynamic_ncols=True)
    model.train()
    while ckpt.epoch < params.epochs:
        epoch = ckpt.epoch
        t0 = time.perf_counter()
        order = train_idx[
            np.random.default_rng([params.seed, 1, epoch]).permutation(train_idx.shape[0])
        ]
        gen = torch.Generator().manual_seed(params.seed * 100_003 + epoch)
        loss_sum = 0.0
        for s in range(0, order.shape[0], params.batch_size):
            rows = np.sort(order[s : s + params.batch_size])
            x = to_tensor(images[rows], device).contiguous()
            kp = torch.from_numpy(kp_all[rows]).to(device)
            if augment:
                m = random_affine(rows.shape[0], size, params.rotation_deg, params.scale_jitter,
                                  params.shift_px, gen)
                x, kp = warp(x, kp, m, params.interpolation)
            target = heatmap_targets(image_to_heatmap(kp, stride), hm_size, params.sigma)
            loss = heatmap_loss(fwd(x.contiguous(memory_format=fmt)), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach()) * rows.shape[0]
            bar.update(1)
        row: dict[str, float] = {"epoch": float(epoch + 1),
                                 "train_loss": loss_sum / order.shape[0],
                                 "lr": float(opt.param_groups[0]["lr"])}
        if val_idx.shape[0]:
            row["val_mean_px"] = _val_error(model, images, kp_all, val_idx, device, params.decode)
        row["epoch_seconds"] = time.perf_counter() - t0
        bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k != "epoch"}, refresh=False)
        ckpt.end_epoch(row, row.get("val_mean_px", -float(epoch + 1)), model)
        if on_metrics is not None:
            on_metrics({k: v for k, v in row.items() if k != "epoch"}, ckpt.epoch)
        ckpt.save(model, opt, sched)
    bar.close()
    assert ckpt.best is not None
    return ckpt.best["state"], ckpt.history
