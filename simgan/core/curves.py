"""Cumulative error curves: % of items with error <= d, for a range of d.

One function for both tasks: the paper plots gaze as % within d degrees (d = 0..25) and hand
pose as % of joints within d pixels. Vectorised: one sort plus one searchsorted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

GAZE_THRESHOLDS_DEG = np.arange(0, 26, dtype=np.float64)
"""The paper's x-axis for gaze curves: 0..25 degrees in steps of 1."""


def cumulative_curve(errors: ArrayLike, thresholds: ArrayLike) -> pd.DataFrame:
    """Columns ``threshold`` and ``pct_within`` (percent of errors <= threshold, ties count).

    ``errors`` may have any shape (e.g. images x joints) and is flattened. NaN errors are
    refused: silently dropping them would inflate the curve.
    """
    e = np.asarray(errors, dtype=np.float64).ravel()
    t = np.asarray(thresholds, dtype=np.float64).ravel()
    if np.isnan(e).any():
        raise ValueError("errors contain NaN")
    if e.size == 0:
        pct = np.full(t.shape, np.nan)
    else:
        counts = np.searchsorted(np.sort(e), t, side="right")
        pct = 100.0 * counts / e.size
    return pd.DataFrame({"threshold": t, "pct_within": pct})
