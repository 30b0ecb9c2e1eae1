"""The hand pose estimator's params (hourglass size, heatmaps, augmentation, schedule), apart
from its torch code (:mod:`simgan.hand.estimator`), so that validating params imports no
torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from simgan.core.fields import Device, Seed
from simgan.core.precision import PrecisionParams

Decode = Literal["quadratic", "soft_argmax"]


class PoseEstimatorParams(PrecisionParams):
    """Hourglass size, heatmap targets, augmentation and schedule. The default is sized for
    the CPU budget (docs/hand.md, "The hourglass's CPU size"); paper-like sizes are
    :data:`simgan.hand.hourglass.PAPER`."""

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
    device: Device = "auto"
    seed: Seed = 0
