"""Training and prediction of the hand-pose estimator: a stacked hourglass on joint heatmaps.

Mirrors :mod:`simgan.gaze.estimator` (the gaze estimator) so that the same comparison holds:
one estimator, one set of params, trained on synthetic, refined or real images; the validation
split is a seeded fraction of the training source itself; the best epoch is chosen on it (mean
joint error in px after decoding); training resumes per epoch from ``last.pt``. Both run the
one epoch loop of :mod:`simgan.core.epochs`; this module adds only the hourglass's parts.

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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
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
from simgan.hand.estimator_params import Decode, PoseEstimatorParams
from simgan.hand.hourglass import StackedHourglass
from simgan.hand.sensor_jitter import sensor_jitter

log = logging.getLogger(__name__)

_FORMAT = 1


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
    return float(np.linalg.norm(pred - kp[idx], axis=-1).mean())


@dataclass
class _PoseTask:
    """The hourglass's part of the epoch loop: batches are randomly rotated and cropped
    (images and keypoints by the same map) and turned into heatmap targets; the best epoch
    has the lowest validation mean joint error in px."""

    images: np.ndarray
    keypoints: np.ndarray
    params: PoseEstimatorParams
    device: torch.device
    fmt: torch.memory_format
    name: str = "pose estimator"
    score_key: str = "val_mean_px"
    stride: int = field(default=1, init=False)
    hm_size: tuple[int, int] = field(default=(0, 0), init=False)

    def build_model(self, train_idx: np.ndarray) -> nn.Module:
        model = build_hourglass(self.params, self.keypoints.shape[1])
        model = model.to(self.device, memory_format=self.fmt)
        self.stride = model.stride  # the heatmap grid follows from the built net
        h, w = self.images.shape[1:]
        self.hm_size = (math.ceil(h / self.stride), math.ceil(w / self.stride))
        return model

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return _optimizer(self.params, model)

    def make_batch(
        self, rows: np.ndarray, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.params
        x = to_tensor(self.images[rows], self.device).contiguous()
        kp = to_device(torch.from_numpy(self.keypoints[rows]), self.device)
        if p.rotation_deg > 0 or p.scale_jitter > 0 or p.shift_px > 0:
            m = random_affine(rows.shape[0], self.images.shape[1:], p.rotation_deg,
                              p.scale_jitter, p.shift_px, generator)
            x, kp = warp(x, kp, m, p.interpolation)
        x = sensor_jitter(x, generator, p.jag_jitter, p.flying_jitter, p.hole_jitter,
                          p.depth_noise_jitter, p.erode_jitter)
        target = heatmap_targets(image_to_heatmap(kp, self.stride), self.hm_size, p.sigma)
        return x.contiguous(memory_format=self.fmt), target

    def loss(self, output: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        return heatmap_loss(output, target)

    def validate(self, model: nn.Module, val_idx: np.ndarray) -> dict[str, float]:
        assert isinstance(model, StackedHourglass)
        err = _val_error(model, self.images, self.keypoints, val_idx, self.device,
                         self.params.decode)
        return {"val_mean_px": err}


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
    check_images(images)
    if kp_all.ndim != 3 or kp_all.shape[0] != images.shape[0] or kp_all.shape[2] != 2:
        raise ValueError(f"keypoints: expected ({images.shape[0]}, J, 2), got {kp_all.shape}")
    check_finite(kp_all, "keypoints")
    # Measured here: with denormals (tiny gradients, Adam's second moments) the first training
    # steps took 3-7 s instead of 0.1 s. Flushing them to zero changes nothing that matters.
    torch.set_flush_denormal(True)
    fmt = torch.channels_last if params.channels_last else torch.contiguous_format
    task = _PoseTask(images, kp_all, params, setup(params.device).device, fmt)
    fingerprint = params_fingerprint(params, images, kp_all, _FORMAT)
    ckpt = EpochCheckpoint(Path(checkpoint_dir) / CHECKPOINT, fingerprint)
    return train_epochs(images.shape[0], params, task, ckpt, on_metrics)
