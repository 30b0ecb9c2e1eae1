"""The value types every params model shares, so that a class of bad values fails at load
time, naming its key, instead of deep inside a stage.

Every params model derives from :class:`StrictParams`: unknown keys are errors and floats
must be finite (``inf`` and ``nan`` are refused even where a bound would let them through).
Every number has an upper bound too (a test walks the models and checks it): a seed of
2**70, ``n_train: 1e12`` or ``curve_max_deg: 1e300`` would otherwise pass and fail hours
later, or never. The bounds are far above any sensible value; they exist to turn typos and
unit mistakes into a one-line error.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

SEED_MAX = 2**32 - 1
"""numpy's legacy generators and several torch paths take 32-bit seeds."""
MAX_IMAGES = 100_000_000
"""Most images of one split (UnityEyes' paper set was 1.2 M; 1e8 eyes are 190 GB)."""
MAX_STEPS = 10_000_000
"""Most optimisation steps (or steps between two reports) of one training stage."""
MAX_BATCH = 65_536
MAX_THREADS = 256
MAX_WIDTH = 4096
"""Most channels of one conv layer."""
DEVICES = "auto, cpu, cuda, cuda:N or mps"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d{1,2})?|mps")


class StrictParams(BaseModel):
    """Base of every params model: unknown keys and non-finite floats are errors (booleans
    given for numbers are refused by :func:`simgan.core.config.validate`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class LateKeysParams(StrictParams):
    """Base of a params model that gained keys after runs were recorded.

    ``OMIT_AT`` maps each such key to the value that reproduces what those runs did: at that
    value the key is left out of dumps, so the params hashes, checkpoint fingerprints and
    saved architectures of the earlier runs stay valid. Subclasses extend it."""

    OMIT_AT: ClassVar[dict[str, Any]] = {}

    @model_serializer(mode="wrap")
    def _omit_old_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for key, old in self.OMIT_AT.items():
                if data.get(key, object()) == old:
                    data.pop(key)
        return data


def _device(value: str) -> str:
    if not _DEVICE.fullmatch(value):
        raise ValueError(f"expected {DEVICES}")
    return value


Seed = Annotated[int, Field(ge=0, le=SEED_MAX)]
Device = Annotated[str, AfterValidator(_device)]
"""A torch device name; ``auto`` is cuda when available, else cpu."""
ImageCount = Annotated[int, Field(gt=0, le=MAX_IMAGES)]
Steps = Annotated[int, Field(ge=0, le=MAX_STEPS)]
Every = Annotated[int, Field(ge=1, le=MAX_STEPS)]
"""A period in steps (checkpoint, log)."""
BatchSize = Annotated[int, Field(gt=0, le=MAX_BATCH)]
Threads = Annotated[int, Field(ge=1, le=MAX_THREADS)]
Width = Annotated[int, Field(ge=1, le=MAX_WIDTH)]

MAX_CURVE_POINTS = 10_000
M = TypeVar("M", bound=BaseModel)


def check_curve(section: M, unit: str) -> M:
    """An evaluate section's accuracy curve (``curve_max_<unit>`` in steps of
    ``curve_step_<unit>``) must have a plottable number of points (``curve_step_deg: 1e-9``
    would allocate gigabytes at evaluation time); returns ``section``."""
    top, step = getattr(section, f"curve_max_{unit}"), getattr(section, f"curve_step_{unit}")
    if top / step > MAX_CURVE_POINTS:
        raise ValueError(f"curve_max_{unit} / curve_step_{unit} = {top / step:.3g} curve "
                         f"points; at most {MAX_CURVE_POINTS}: raise curve_step_{unit}")
    return section
