"""Readers of real gaze data (UnityEyes renders, MPIIGaze, folders of crops) into the dataset
contract: 35x55 uint8 eyes and label tables, streamed in chunks from a process pool.

Pure library: paths come in as params, plans (:class:`simgan.tasks.SplitPlan`) go out; nothing
here knows DVC or the project layout. Entry point: :func:`simgan.ingest.sources.plan_splits`.
"""

from simgan.ingest.common import (
    OUT_SHAPE,
    BadInput,
    IngestError,
    IngestReport,
    NoLabelsError,
    has_gaze_labels,
    require_gaze_labels,
)

__all__ = [
    "OUT_SHAPE",
    "BadInput",
    "IngestError",
    "IngestReport",
    "NoLabelsError",
    "has_gaze_labels",
    "require_gaze_labels",
]
