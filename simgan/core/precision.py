"""The ``precision`` and ``threads`` params keys of every trainer (refiner and estimators): how
a trainer computes, which changes the bytes it trains but not what it learns. What precision
does at run time is :mod:`simgan.core.amp`. This module imports no torch, so that validating
params (every stage does it first, the manifest stage does nothing else) does not pay torch's
import.

The CPU thread count is a key, not the machine's core count, because oneDNN's backward
convolutions reduce in an order that depends on it: the same seed trained with 1 and 2 threads
gives different weights (docs/performance.md). As a key it is part of the recipe that DVC
records, and a run reproduces on any machine, whatever its cores.

Precision changes numerics, so it is NOT a speed key: a bf16 run is another experiment and
must have another params hash. To keep the hashes (and resume fingerprints) of fp32 runs as
they were before the key existed, :class:`PrecisionParams` leaves ``precision`` out of its
dumps when it is fp32 (docs/performance.md, "Precision").
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from simgan.core.fields import LateKeysParams

Precision = Literal["fp32", "bf16", "fp16"]
FP32: Precision = "fp32"


class PrecisionParams(LateKeysParams):
    """Base of a trainer's params model: its ``precision`` and ``threads`` keys (``precision``
    came late: it is left out of dumps at fp32, see :class:`LateKeysParams`)."""

    OMIT_AT: ClassVar[dict[str, Any]] = {"precision": FP32}

    precision: Precision = Field(
        FP32, description="number format of the forward passes: fp32, bf16 (autocast; CPU or "
        "CUDA) or fp16 (autocast + loss scaling; CUDA only)")
    threads: int = Field(
        1, ge=1, le=1024, description="torch CPU threads of the training process; part of the "
        "recipe, since the thread count changes the trained bytes on a CPU. 1 lets stages run "
        "side by side, one per core (flows/side_by_side.py)")


def most_trainer_threads(params: BaseModel) -> int:
    """The most ``threads`` any trainer in ``params`` (a task's whole section, any depth)
    trains with; 1 if it has no trainer. How many stages fit side by side on a machine."""
    found = [params.threads] if isinstance(params, PrecisionParams) else []
    for name in type(params).model_fields:
        value = getattr(params, name)
        if isinstance(value, BaseModel):
            found.append(most_trainer_threads(value))
    return max([1, *found])
