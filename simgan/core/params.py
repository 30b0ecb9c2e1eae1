"""Params models of core parts that a task's params sections embed (the realism test, KID), kept
free of torch: validating params.yaml must not import the code it configures, so that a
stage's DVC deps do not include code it never runs. The refiner's are in
:mod:`simgan.core.refiner.params` for the same reason."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

from simgan.core.fields import MAX_BATCH, MAX_IMAGES, Device, Seed, StrictParams, Threads, Width

Widths = Annotated[tuple[Width, ...], Field(min_length=1, max_length=8)]


class RealismParams(StrictParams):
    """Knobs of the two-sample test; the defaults take ~10 s for 35x55 eyes on one thread."""

    model_config = ConfigDict(frozen=True)

    n_per_set: int = Field(4000, ge=4, le=MAX_IMAGES,
                           description="images drawn from each set (or all)")
    epochs: int = Field(4, ge=1, le=1000)
    batch_size: int = Field(32, ge=2, le=MAX_BATCH)
    lr: float = Field(2e-3, gt=0, le=1, description="Adam learning rate")
    widths: Widths = Field((16, 32, 64), description="conv channels")
    first_stride: int = Field(2, ge=1, le=8, description="first conv stride; 4 for 224 px depth")
    seed: Seed = 0
    device: Device = "cpu"
    threads: Threads | None = Field(
        None, description="torch CPU threads during the test (None: leave as is)"
    )
    negligible_auc: float = Field(
        0.6, gt=0.5, lt=1.0, description="separability below this AUC counts as "
        "'indistinguishable'; the verdict needs the AUC's 95% interval entirely below it"
    )


class KidParams(StrictParams):
    """Kernel inception distance in a fixed random-conv feature space (:mod:`simgan.core.kid`);
    the defaults take a few seconds for 3 x 2000 eye images on one thread."""

    model_config = ConfigDict(frozen=True)

    n_per_set: int = Field(2000, ge=4, le=MAX_IMAGES,
                           description="images drawn from each set (or all)")
    subset_size: int = Field(
        1000, ge=2, le=MAX_IMAGES, description="images per subset (capped at half the smaller set)"
    )
    n_subsets: int = Field(100, ge=2, le=100_000,
                           description="subsets averaged; their std is the error bar")
    widths: Widths = Field((16, 32, 64, 128),
                           description="random conv channels per scale (stride 2)")
    seed: Seed = Field(0, description="seeds the feature weights and the draws")
    device: Device = "cpu"
    threads: Threads | None = Field(
        None, description="torch CPU threads during the features (None: leave as is)"
    )
