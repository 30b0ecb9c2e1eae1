"""Figures people look at instead of reading numbers: sample grids and cumulative curves.

Returned as PNG bytes so the caller decides where they go (MLflow artifact, reports/).
Embedded images, not vega specs: `dvc plots show` HTML loads vega from a CDN and is blank
offline.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def image_grid(rows: Mapping[str, np.ndarray], pad: int = 2) -> np.ndarray:
    """Tile (N, H, W) uint8 arrays, one row per entry, into one uint8 image (vectorised)."""
    arrays = list(rows.values())
    n = min(a.shape[0] for a in arrays)
    h, w = arrays[0].shape[1:]
    stacked = np.stack([np.asarray(a[:n]) for a in arrays])  # (R, N, H, W)
    padded = np.pad(stacked, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=255)
    r = padded.shape[0]
    return padded.transpose(0, 2, 1, 3).reshape(r * (h + 2 * pad), n * (w + 2 * pad))


def grid_png(rows: Mapping[str, np.ndarray], scale: float = 2.0) -> bytes:
    """Sample grid with the row names written on the left (e.g. synthetic | refined | real)."""
    grid = image_grid(rows)
    height, width = grid.shape
    label_in, fig_w = 1.2, scale * width / 80 + 1.2
    fig = plt.figure(figsize=(fig_w, scale * height / 80), dpi=100)
    ax = fig.add_axes((label_in / fig_w, 0, 1 - label_in / fig_w, 1))
    ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest", aspect="auto")
    ax.set_xticks([])
    row_h = height / len(rows)
    ax.set_yticks([row_h * (i + 0.5) for i in range(len(rows))], labels=list(rows))
    return _to_png(fig)


def curves_png(
    curves: Mapping[str, pd.DataFrame],
    xlabel: str,
    title: str,
    marker_x: float | None = None,
    columns: Sequence[tuple[str, str]] = (("pct_within", "% of test images within threshold"),),
    note: str | None = None,
) -> bytes:
    """Cumulative curves (column threshold and ``columns``) of several sources on one plot.

    One column: its description is the y label. Several (e.g. % of joints and % of images):
    one colour per source, one line style per column, both named in the legend. ``note`` is
    written across the plot (e.g. why there is no curve)."""
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=110)
    styles = ("-", "--", ":", "-.")
    for i, (name, df) in enumerate(curves.items()):
        for j, (col, what) in enumerate(columns):
            label = name if len(columns) == 1 else f"{name}: {what}"
            ax.plot(df["threshold"], df[col], label=label, lw=2, ls=styles[j % len(styles)],
                    color=f"C{i}")
    if note:
        ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center", wrap=True)
    if marker_x is not None:
        ax.axvline(marker_x, color="gray", ls=":", lw=1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(columns[0][1] if len(columns) == 1 else "% within threshold")
    ax.set_ylim(0, 100)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(loc="lower right", fontsize="small" if len(columns) > 1 else None)
    ax.set_title(title)
    fig.tight_layout()
    return _to_png(fig)


def _to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
