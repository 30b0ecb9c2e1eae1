"""The per-image depth statistics quoted in docs/hand.md ("What gives refined depth away"),
on hand-drawn crops whose counts are known."""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.realism_tells_hand import depth_statistics


def _crop() -> np.ndarray:
    """A 4x4 block of hand (code 100) with one hole, plus one isolated speck, on 8x8."""
    x = np.zeros((1, 8, 8), np.uint8)
    x[0, 1:5, 1:5] = 100
    x[0, 2, 2] = 0  # a hole: background with 4 foreground neighbours
    x[0, 7, 7] = 60  # a speck: foreground with none
    return x


def test_counts_of_a_hand_drawn_crop() -> None:
    s = {k: float(v[0]) for k, v in depth_statistics(_crop()).items()}
    assert s["foreground pixels"] == 16  # 15 of the block + the speck
    assert s["holes (background, >= 3 foreground neighbours)"] == 1
    assert s["specks (foreground, <= 1 foreground neighbour)"] == 1
    assert s["darkest foreground code"] == 60
    # one interior pixel, (3, 3), on flat depth...
    assert s["interior |Laplacian|"] == 0.0
    # ...and 10 horizontal foreground pairs (12 of the block, less 2 at the hole), all flat
    assert s["interior: share of flat horizontal steps"] == 1.0
    assert s["large jumps inside the hand (> 20 codes)"] == 0


def test_roughness_inside_the_hand_is_seen() -> None:
    x = np.zeros((1, 9, 9), np.uint8)
    x[0, 1:8, 1:8] = 100
    x[0, 4, 4] = 140  # one bump in the middle of a 7x7 hand
    s = {k: float(v[0]) for k, v in depth_statistics(x).items()}
    assert s["large jumps inside the hand (> 20 codes)"] == 2  # into and out of the bump
    assert s["interior |Laplacian|"] > 0
    assert s["interior: share of flat horizontal steps"] == 40 / 42  # 7 rows x 6 pairs


class _ImageAsHeatmap(torch.nn.Module):
    """A 'label model' whose one heatmap is the image itself, at stride 1."""

    stride = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_refiner_costs_of_the_identity_and_of_a_uniform_offset() -> None:
    from benchmarks.oracle_costs_hand import refiner_costs, to_unit
    from simgan.hand.estimator import decode_heatmaps

    codes = np.zeros((3, 8, 8), np.uint8)
    codes[:, 2:6, 3:7] = 200
    codes[1, 4, 4] = 255  # each image differs, so the structure is not trivially 1
    x = to_unit(codes)
    same = refiner_costs(_ImageAsHeatmap(), decode_heatmaps, x, x, batch=2)
    assert same == {"label shift": 0.0, "joint shift px": 0.0, "drift": 0.0, "structure": 1.0}
    # +10 grey levels everywhere: drift 10; the heatmap (the image) moves by 10/127.5 at each
    # of its 64 pixels, so the label shift is 64 (10/127.5)^2; a uniform offset keeps the
    # layout (structure 1) and the peak (joint shift 0)
    up = refiner_costs(_ImageAsHeatmap(), decode_heatmaps, x, x + 10 / 127.5, batch=2)
    assert abs(up["drift"] - 10.0) < 1e-4
    assert abs(up["label shift"] - 64 * (10 / 127.5) ** 2) < 1e-5
    assert abs(up["structure"] - 1.0) < 1e-5 and up["joint shift px"] < 1e-4
