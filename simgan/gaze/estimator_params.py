"""The gaze estimator's params (size and schedule), apart from its torch code
(:mod:`simgan.gaze.estimator`), so that validating params imports no torch."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from simgan.core.fields import Device, Seed, Width
from simgan.core.label_model import AugmentedLabelModelParams
from simgan.core.precision import PrecisionParams

#: the paper's conv widths and hidden FC size (simgan.gaze.net builds the net from them)
PAPER_WIDTHS: tuple[int, int, int, int, int] = (32, 32, 64, 80, 192)
PAPER_FC_HIDDEN = 1000


# photometric augmentation amounts (simgan.core.photometric), 0 = off
BrightnessJitter = Annotated[float, Field(ge=0, le=1, description="per image offset U(-b, b) "
                                           "in [-1, 1] units; 0: off")]
ContrastJitter = Annotated[float, Field(ge=0, le=1, description="per image contrast "
                                         "1 + U(-c, c); 0: off")]
GammaJitter = Annotated[float, Field(ge=0, le=2, description="per image gamma exp(U(-g, g)) "
                                      "on grey levels; 0: off")]
BlurJitter = Annotated[float, Field(ge=0, le=5, description="per image Gaussian blur of std "
                                     "U(0, b) px; 0: off")]
NoiseJitter = Annotated[float, Field(ge=0, le=64, description="per image Gaussian noise of std "
                                      "U(0, s) grey levels; 0: off")]


class EstimatorParams(PrecisionParams):
    """Gaze CNN size and training schedule (defaults: paper widths, CPU-friendly schedule;
    why the default profile uses quarter widths and no BatchNorm: docs/science.md, "The gaze
    estimator's CPU schedule")."""

    OMIT_AT: ClassVar[dict[str, Any]] = {
        **PrecisionParams.OMIT_AT, "gamma_jitter": 0.0, "blur_jitter": 0.0, "noise_jitter": 0.0}

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
    brightness_jitter: BrightnessJitter = 0.0
    contrast_jitter: ContrastJitter = 0.0
    gamma_jitter: GammaJitter = 0.0
    blur_jitter: BlurJitter = 0.0
    noise_jitter: NoiseJitter = 0.0
    compile: bool = False
    channels_last: bool = True
    device: Device = "auto"
    seed: Seed = 0


class LabelModelParams(AugmentedLabelModelParams):
    """``refiner.label_model``: the photometric augmentation of the refiner's own label model.

    All zero: the label-consistency term reads R(x) with the synthetic-trained estimator (a
    clean-image model, which also reads blur, gamma and noise as a change of gaze). Otherwise
    ``train_refiner`` first trains the estimator (``estimator`` params) on the synthetic
    training set with these amounts, so that it reads geometry rather than the camera, and
    R may change appearance without paying for it (docs/science.md, "An appearance-blind
    label model"). Synthetic labels only, as before."""

    brightness_jitter: BrightnessJitter
    contrast_jitter: ContrastJitter
    gamma_jitter: GammaJitter
    blur_jitter: BlurJitter
    noise_jitter: NoiseJitter
