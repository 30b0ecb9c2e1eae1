"""Gaze labels as every gaze reader writes them: the columns, their checks, and the eye size.

One module so that UnityEyes, MPIIGaze and folder sources write the same label schema, in
the one angle convention of :func:`simgan.gaze.metrics.vector_to_pitchyaw`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simgan.core.ingest.common import NoLabelsError
from simgan.gaze.metrics import vector_to_pitchyaw

OUT_SHAPE: tuple[int, int] = (35, 55)
"""(height, width) of an eye image in this project (the paper's 35x55 grayscale eyes)."""

GAZE_LABELS = ("gaze_x", "gaze_y", "gaze_z", "pitch", "yaw")
"""Label columns every labelled gaze dataset has (plus id and pupil_u/pupil_v)."""


def _scaled(vectors: np.ndarray) -> np.ndarray:
    """Rows divided by the power of two nearest above their largest |component|.

    Why: the norm of a row with a component above ~1e154 overflows (its square is inf), so the
    vector would normalise to (0, 0, 0). A power-of-two scale is exact in floating point, so
    normalising the scaled rows gives bit for bit the unit vectors of the unscaled ones
    wherever those did not overflow. Zero rows and non-finite rows are left as they are.
    """
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    big = np.abs(v).max(axis=1)
    ok = np.isfinite(big) & (big > 0)
    _, exp = np.frexp(np.where(ok, big, 1.0))
    return np.ldexp(v, np.where(ok, -exp, 0)[:, None])


def gaze_problems(vectors: np.ndarray) -> np.ndarray:
    """Per-row problem with gaze vectors (N, 3): '' if usable, else what is wrong.

    Usable: finite and of length >= 1e-9 (any length above: huge ones are scaled before the
    norm, see :func:`_scaled`)."""
    v = np.asarray(vectors, dtype=np.float64).reshape(-1, 3)
    finite = np.isfinite(v).all(axis=1)
    big = np.abs(np.where(finite[:, None], v, 0.0)).max(axis=1)
    with np.errstate(over="ignore"):
        norm = big * np.linalg.norm(_scaled(np.where(finite[:, None], v, 0.0)), axis=1)
    return np.where(~finite, "NaN or infinite component",
                    np.where(norm < 1e-9, "zero-length vector", ""))


def gaze_columns(vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Unit gaze vectors (N, 3) in the MPIIGaze camera convention -> the label columns.

    Vectors are normalised here (callers have rejected NaN and zero vectors; huge ones are
    scaled first, exactly) and the angles come from
    :func:`simgan.gaze.metrics.vector_to_pitchyaw`, the project's one convention.
    """
    v = _scaled(vectors)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    pitch, yaw = vector_to_pitchyaw(v)
    return {"gaze_x": v[:, 0], "gaze_y": v[:, 1], "gaze_z": v[:, 2], "pitch": pitch, "yaw": yaw}


def has_gaze_labels(columns: Any) -> bool:
    """True if a label table (DataFrame or column names) holds gaze labels."""
    names = set(columns.columns if hasattr(columns, "columns") else columns)
    return all(c in names for c in GAZE_LABELS)


def require_gaze_labels(labels: Any, what: str, purpose: str) -> None:
    """Raise :class:`NoLabelsError` saying that ``what`` has no gaze labels, for ``purpose``.

    Evaluation and the 'real' reference estimator call this, so an unlabelled real folder
    (valid for refiner training) gives a clear message instead of a KeyError.
    """
    if not has_gaze_labels(labels):
        raise NoLabelsError(
            f"{what}: no gaze labels (columns {', '.join(GAZE_LABELS)} absent; an unlabelled "
            f"folder source?), so {purpose} is not possible. Add a labels.csv with file and "
            "gaze_x, gaze_y, gaze_z (or pitch, yaw) to the folder to enable it."
        )
