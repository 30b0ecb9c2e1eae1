"""The hand pose estimator's params (hourglass size, heatmaps, augmentation, schedule), apart
from its torch code (:mod:`simgan.hand.estimator`), so that validating params imports no
torch."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from simgan.core.fields import Device, Seed
from simgan.core.label_model import AugmentedLabelModelParams
from simgan.core.precision import PrecisionParams

Decode = Literal["quadratic", "soft_argmax"]

# depth-sensor augmentation amounts (simgan.hand.sensor_jitter), 0 = off
JagJitter = Annotated[float, Field(ge=0, le=5, description="per image edge displacement of "
                                    "std U(0, j) px; 0: off")]
FlyingJitter = Annotated[float, Field(ge=0, le=1, description="per image probability U(0, f) "
                                       "of a flying pixel at a depth edge; 0: off")]
HoleJitter = Annotated[float, Field(ge=0, le=1, description="per image probability U(0, h) "
                                     "of a hole at the hand's edge; 0: off")]
DepthNoiseJitter = Annotated[float, Field(ge=0, le=64, description="per image Gaussian noise "
                                           "of std U(0, s) grey levels on depth; 0: off")]
ErodeJitter = Annotated[float, Field(ge=0, le=8, description="per image band of U(0, e) px "
                                      "removed along the hand's silhouette; 0: off")]


class PoseEstimatorParams(PrecisionParams):
    """Hourglass size, heatmap targets, augmentation and schedule. The default is sized for
    the CPU budget (docs/hand.md, "The hourglass's CPU size"); paper-like sizes are
    :data:`simgan.hand.hourglass.PAPER`."""

    OMIT_AT: ClassVar[dict[str, Any]] = {
        **PrecisionParams.OMIT_AT, "jag_jitter": 0.0, "flying_jitter": 0.0, "hole_jitter": 0.0,
        "depth_noise_jitter": 0.0, "erode_jitter": 0.0}

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
    jag_jitter: JagJitter = 0.0
    flying_jitter: FlyingJitter = 0.0
    hole_jitter: HoleJitter = 0.0
    depth_noise_jitter: DepthNoiseJitter = 0.0
    erode_jitter: ErodeJitter = 0.0
    compile: bool = False
    channels_last: bool = True
    device: Device = "auto"
    seed: Seed = 0


class SensorLabelModelParams(AugmentedLabelModelParams):
    """``refiner.label_model`` of the hand task: the depth-sensor augmentation of the refiner's
    own label model.

    All zero: the label-consistency term reads R(x) with the synthetic-trained hourglass, a
    clean-depth model that also reads ragged edges and holes as a change of pose. Otherwise
    ``train_refiner`` first trains the hourglass (``estimator`` params) on the synthetic
    training set with these amounts, so that R may add sensor artefacts without paying for
    them (docs/hand.md, "A sensor-blind label model"). Synthetic labels only."""

    OMIT_AT: ClassVar[dict[str, Any]] = {"erode_jitter": 0.0}

    jag_jitter: JagJitter
    flying_jitter: FlyingJitter
    hole_jitter: HoleJitter
    depth_noise_jitter: DepthNoiseJitter
    erode_jitter: ErodeJitter = 0.0
