"""What the refiner did to each image, seen: synthetic | refined | refined - synthetic | real.

A sample grid shows that refined images look different; the difference map shows where
(edges only, everywhere, or the labels' landmarks), which is what a reviewer checks before
trusting that labels survived. Pure: arrays in, PNG bytes out.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def fixed_rows(n: int, k: int) -> np.ndarray:
    """``k`` indices spread evenly over ``n`` images: the same picks on every run, so two
    pages of the same data show the same images."""
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, num=min(k, n)).round().astype(np.int64))


def difference(synthetic: np.ndarray, refined: np.ndarray) -> np.ndarray:
    """refined - synthetic in gray levels, signed (float32), for paired (N, H, W) images."""
    if synthetic.shape != refined.shape:
        raise ValueError(f"paired images expected, got {synthetic.shape} and {refined.shape}")
    return np.asarray(refined, dtype=np.float32) - np.asarray(synthetic, dtype=np.float32)


def difference_png(synthetic: np.ndarray, refined: np.ndarray, real: np.ndarray) -> bytes:
    """One row per pair: synthetic, its refined version, their difference (blue darker, red
    brighter, one symmetric scale for the figure) and an unpaired real image for reference."""
    diff = difference(synthetic, refined)
    limit = float(np.abs(diff).max()) or 1.0
    rows = synthetic.shape[0]
    fig, axes = plt.subplots(rows, 4, figsize=(6.4, 1.1 * rows + 0.6), squeeze=False,
                             layout="constrained")
    titles = ("synthetic", "refined", "refined - synthetic", "real (unpaired)")
    mappable = None
    for r in range(rows):
        panels = (synthetic[r], refined[r], diff[r], real[r % len(real)])
        for c, (ax, image) in enumerate(zip(axes[r], panels, strict=True)):
            if c == 2:
                mappable = ax.imshow(image, cmap="RdBu_r", vmin=-limit, vmax=limit,
                                     interpolation="nearest")
            else:
                ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
    fig.colorbar(mappable, ax=axes[:, 2], shrink=0.6, label="gray levels")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()
