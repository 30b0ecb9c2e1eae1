"""The gaze estimator's params (size and schedule), apart from its torch code
(:mod:`simgan.gaze.estimator`), so that validating params imports no torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from simgan.core.fields import Device, Seed, Width
from simgan.core.precision import PrecisionParams

#: the paper's conv widths and hidden FC size (simgan.gaze.net builds the net from them)
PAPER_WIDTHS: tuple[int, int, int, int, int] = (32, 32, 64, 80, 192)
PAPER_FC_HIDDEN = 1000


class EstimatorParams(PrecisionParams):
    """Gaze CNN size and training schedule (defaults: paper widths, CPU-friendly schedule;
    why the default profile uses quarter widths and no BatchNorm: docs/science.md, "The gaze
    estimator's CPU schedule")."""

    widths: tuple[Width, Width, Width, Width, Width] = PAPER_WIDTHS
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
    device: Device = "auto"
    seed: Seed = 0
