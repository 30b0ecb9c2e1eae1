"""The refiner's params models: what a task's params module imports (no torch training code).

Defaults and their reasons are measured on the stand-in eye data: docs/science.md, "Decisions
and why" (the numbers live there, the reasons here).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, model_validator

from simgan.core.fields import (
    MAX_IMAGES,
    BatchSize,
    Device,
    Every,
    LateKeysParams,
    Seed,
    Steps,
    StrictParams,
    Width,
)
from simgan.core.precision import PrecisionParams

SelectBy = Literal["mmd", "latest"]
Beta = Annotated[float, Field(ge=0, lt=1)]
"""An Adam beta: in [0, 1)."""

# RefinerTrainParams fields that change how often things are reported, not what is computed:
# left out of the resume fingerprint, so changing them keeps a checkpoint resumable
CADENCE = frozenset(
    {"checkpoint_every", "log_every", "sample_every", "sample_count", "compile", "device"}
)


class RefinerNetParams(LateKeysParams):
    """Refiner architecture (paper eye: width 64, 4 blocks, 3x3). Kwargs of ``Refiner``."""

    OMIT_AT: ClassVar[dict[str, Any]] = {
        "warp_px": 0.0, "holes": False, "camera": False, "depth_sensor": False, "scene": True,
        "label_terms": "output"}

    width: int = Field(64, ge=1, le=1024)
    blocks: int = Field(4, ge=0, le=64)
    kernel: int = Field(3, ge=1, le=15)
    output: Literal["residual", "tanh"] = "residual"
    noise_channels: int = Field(1, ge=0, le=16)
    noise_scales: tuple[Annotated[int, Field(ge=1, le=256)], ...] = Field(
        (1,), min_length=1, max_length=8,
        description="scales of the noise inputs (1 = per pixel; s = an H/s x W/s field)")
    padding: Literal["zeros", "replicate", "reflect"] = Field(
        "zeros", description="conv padding at the image edge (zeros leaves a seam there)")
    grid_period: int = Field(
        0, ge=0, le=32, description="feed the pixel's phase in a block grid of this period "
        "(8: JPEG blocks of real crops stored as JPEG); 0: off")
    saturation: Literal["clamp", "straight_through"] = Field(
        "clamp", description="how the residual output is kept in [-1, 1]: clamp (saturated "
        "pixels get no gradient) or straight_through (clamped value, gradient as if not)")
    codec: bool = Field(
        False, description="JPEG-quantise R's output in 8x8 blocks, as the real camera stored "
        "its crops (at a per-image quality drawn from codec_quality)")
    codec_quality: tuple[Annotated[int, Field(ge=1, le=100)],
                         Annotated[int, Field(ge=1, le=100)]] = Field(
        (75, 95), description="[low, high] JPEG quality range of the codec (1-100)")
    warp_px: float = Field(
        0.0, ge=0.0, le=8.0, description="largest displacement (pixels per axis) R may move "
        "its input by before adding the residual (ragged depth edges); 0: off")
    holes: bool = Field(
        False, description="a per-pixel 'no reading' map: where its logit is > 0 the output is "
        "-1 (missing depth), a hard choice with a straight-through gradient; off: none")
    camera: bool = Field(
        False, description="pass R's output through a learned camera (blur, tone curve, gain, "
        "offset, sensor noise; per-image settings from learned distributions), before the "
        "codec; off: none")
    depth_sensor: bool = Field(
        False, description="pass R's output through a learned depth sensor (ragged "
        "silhouette, missing band along it, flying pixels, edge holes, depth noise; per-image "
        "amounts from learned distributions); R's label and self-regularisation terms then "
        "judge its output before the sensor; off: none")
    scene: bool = Field(
        True, description="R's conv layers paint the scene before its capture stages; false: "
        "no conv layers, R is its learned camera and/or depth sensor alone (the hand stand-in's "
        "gap is the sensor's, docs/hand.md item 12)")
    label_terms: Literal["output", "scene"] = Field(
        "output", description="what the self-regularisation and label terms and the selection "
        "guards judge when R has a camera or codec: its output (their blur, tone and noise are "
        "charged like any change) or the scene before them (capture stages cannot move a "
        "label); a depth sensor is always judged on the scene")

    @model_validator(mode="after")
    def _odd_kernel(self) -> RefinerNetParams:
        if self.kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (same padding), got {self.kernel}")
        if self.codec_quality[0] > self.codec_quality[1]:
            raise ValueError(f"codec_quality must be [low, high] with low <= high, got "
                             f"{list(self.codec_quality)}")
        if not self.scene and (self.warp_px > 0 or self.holes
                               or not (self.camera or self.depth_sensor or self.codec)):
            raise ValueError("scene: false (no conv layers) needs camera, depth_sensor or codec "
                             "true, and warp_px 0 and holes false (they act on conv features)")
        if self.warp_px > 0 and self.output != "residual":
            raise ValueError(f"warp_px={self.warp_px} moves the input under the residual: it "
                             "needs output: residual (or warp_px: 0)")
        return self


class DiscriminatorParams(StrictParams):
    """Local discriminator layout (defaults: paper eye D). Kwargs of ``PatchDiscriminator``."""

    widths: tuple[Width, ...] = Field((96, 64, 32, 32), min_length=1, max_length=16)
    kernels: tuple[Annotated[int, Field(ge=1, le=15)], ...] = Field(
        (3, 3, 3, 1), min_length=1, max_length=16)
    strides: tuple[Annotated[int, Field(ge=1, le=8)], ...] = Field(
        (2, 2, 1, 1), min_length=1, max_length=16)
    pool_kernel: int = Field(3, ge=0, le=15)
    pool_stride: int = Field(1, ge=1, le=8)
    pool_after: int = Field(2, ge=0, le=16)
    spectral_norm: bool = Field(False, description="spectral normalisation of every conv")
    antialias: bool = Field(
        False, description="blur before every strided conv, so D's gradient (what trains R) "
        "has no stride checkerboard")

    @model_validator(mode="after")
    def _consistent(self) -> DiscriminatorParams:
        if not len(self.widths) == len(self.kernels) == len(self.strides):
            raise ValueError("widths, kernels and strides need the same length (one per conv)")
        if self.pool_after > len(self.widths):
            raise ValueError(f"pool_after must be <= {len(self.widths)} (number of convs)")
        return self


class RefinerTrainParams(PrecisionParams):
    """The S+U schedule, optimiser, losses, buffer, cadence and selection of ``train_refiner``.

    Defaults are a CPU schedule (small batch, lambda 0.5 on mean L1, Kg 2, Kd 1, Adam 1e-4),
    with D at a 10x higher lr so that it leaves chance during its pretraining instead of
    letting R chase a random D. With the adversarial loss summed over patches lambda matters
    little; label preservation comes from checkpoint selection (``select_min_structure``).
    A residual refiner needs no ``pretrain_refiner_steps`` (it starts as the identity).
    Measurements behind these choices: docs/science.md, "Decisions and why".
    """

    OMIT_AT: ClassVar[dict[str, Any]] = {
        **PrecisionParams.OMIT_AT, "ema_decay": 0.0, "r1_gamma": 0.0,
        "lambda_interior": 0.0, "interior_margin": 3, "lambda_background": 0.0,
        "background_margin": 2,
    }

    batch_size: int = Field(32, ge=2, le=8192)
    pretrain_refiner_steps: Steps = 0
    pretrain_discriminator_steps: Steps = 50
    steps: Steps = 300
    kg: int = Field(2, ge=1, le=100)
    kd: int = Field(1, ge=1, le=100)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(1e-4, gt=0, le=1)
    lr_discriminator: float | None = Field(1e-3, gt=0, le=1)
    adam_betas: tuple[Beta, Beta] = (0.9, 0.999)
    lambda_reg: float = Field(0.5, ge=0, le=1e6)
    lambda_label: float = Field(
        0.0, ge=0, le=1e6, description="weight of label consistency: the frozen synthetic-trained "
        "estimator must read R(x) as it reads x (0: off; the paper has no such term)")
    ema_decay: float = Field(
        0.0, ge=0, lt=1, description="keep an exponential moving average of R's weights "
        "(this decay per R update) and select, sample and save the average; 0: off")
    r1_gamma: float = Field(
        0.0, ge=0, le=1e6, description="R1 penalty on D: gamma/2 times the squared gradient "
        "of D's real-minus-refined patch logits, summed over patches, with respect to real "
        "images, in every D update (Mescheder et al. 2018); 0: off")
    lambda_interior: float = Field(
        0.0, ge=0, le=1e6, description="weight of the interior-detail tie for depth: the "
        "mean |Laplacian of R(x) - Laplacian of x| inside the synthetic surface, "
        "interior_margin px from its silhouette (edges stay free); 0: off")
    interior_margin: int = Field(
        3, ge=1, le=15, description="px from the silhouette (no-reading pixels) where "
        "lambda_interior starts to apply")
    lambda_background: float = Field(
        0.0, ge=0, le=1e6, description="weight of the empty-background tie for depth: the "
        "mean |R(x) - x| where x has no reading within background_margin px; 0: off")
    background_margin: int = Field(
        2, ge=0, le=15, description="px around the silhouette that lambda_background leaves "
        "free (flying pixels, eroded edges)")
    reg_feature: Literal["identity", "local_mean"] = "identity"
    reg_kernel: int = Field(3, ge=1, le=31)
    reg_reduction: Literal["mean", "sum"] = "mean"
    adv_reduction: Literal["sum", "mean", "image"] = Field(
        "sum", description="sum/mean: D decides per patch, losses summed (the paper) or "
        "averaged over patches; image: one decision per image from the averaged patch logits, "
        "scaled as sum")
    history_size: int = Field(2048, ge=1, le=MAX_IMAGES)
    checkpoint_every: Every = 50
    log_every: Every = 10
    sample_every: Steps = 100
    sample_count: int = Field(16, ge=1, le=256)
    select_every: Steps = 25
    select_size: int = Field(512, ge=16, le=MAX_IMAGES)
    select_min_structure: float = Field(0.95, ge=-1, le=1)
    select_max_drift: float = Field(255.0, ge=0, le=255)
    compile: bool = False
    channels_last: bool = True
    device: Device = "auto"
    seed: Seed = 0

    @model_validator(mode="after")
    def _check(self) -> RefinerTrainParams:
        if self.reg_kernel % 2 == 0:
            raise ValueError(f"reg_kernel must be odd, got {self.reg_kernel}")
        return self


class RefineParams(StrictParams):
    """The ``refine`` stage's section, the same for every task: batch size and device."""

    batch_size: BatchSize
    device: Device
