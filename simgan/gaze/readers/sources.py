"""The source of each gaze domain as a params value, and one planning entry point.

``gaze.render.source`` (synthetic) is ``builtin | unityeyes | folder`` and ``gaze.real.source``
is ``standin | mpiigaze | folder``, discriminated by ``kind``. ``builtin`` and ``standin`` are
the procedural renderer and stand-in appearance, planned by the task itself; the others are
files read by :mod:`simgan.gaze.readers` (on :mod:`simgan.core.ingest`). Changing params is all
it takes to swap one for another: the splits they plan have the same image format and label
columns.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from simgan.core.ingest.common import PlanSettings
from simgan.core.task import SplitPlan
from simgan.gaze.labels import OUT_SHAPE
from simgan.gaze.readers.folder import FolderSource, plan_folder
from simgan.gaze.readers.mpiigaze import MpiiGazeSource, plan_mpiigaze
from simgan.gaze.readers.unityeyes import UnityEyesSource, plan_unityeyes


class BuiltinSource(BaseModel):
    """The procedural eye renderer (:mod:`simgan.gaze.render`), params in ``render.eye``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["builtin"] = "builtin"


class StandinSource(BaseModel):
    """The stand-in real domain (:mod:`simgan.gaze.standin`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["standin"] = "standin"


SyntheticSource = Annotated[
    BuiltinSource | UnityEyesSource | FolderSource, Field(discriminator="kind")
]
RealSource = Annotated[StandinSource | MpiiGazeSource | FolderSource, Field(discriminator="kind")]
FileSource = UnityEyesSource | MpiiGazeSource | FolderSource


def is_file_source(source: object) -> bool:
    """True for sources read from files (planned here), False for the procedural ones."""
    return isinstance(source, UnityEyesSource | MpiiGazeSource | FolderSource)


def plan_splits(
    source: FileSource,
    out_shape: tuple[int, int] = OUT_SHAPE,
    *,
    seed: int = 0,
    chunk_size: int = 4096,
    max_train: int | None = None,
    max_test: int | None = None,
) -> dict[str, SplitPlan]:
    """``{"train": plan, "test": plan}`` for a file source (indexing the files now).

    ``seed``, ``chunk_size`` and the most rows per split come from the task's params section
    (the same keys size the procedural sources; see :class:`PlanSettings`).
    Missing directories and structural problems raise :class:`IngestError` here; bad
    individual files raise (or are counted, with ``skip_bad``) while the plans' chunks are
    consumed. Relative paths are relative to the working directory: callers that know the
    project root pass ``source.with_root(root)``.
    """
    settings = PlanSettings(tuple(out_shape), seed, chunk_size, max_train, max_test)
    if isinstance(source, UnityEyesSource):
        return plan_unityeyes(source, settings)
    if isinstance(source, MpiiGazeSource):
        return plan_mpiigaze(source, settings)
    if isinstance(source, FolderSource):
        return plan_folder(source, settings)
    kind = getattr(source, "kind", type(source).__name__)
    raise ValueError(f"source kind {kind!r} is not read from files: the task's renderer "
                     "plans it (simgan.gaze.task.GazeTask)")
