"""The difference figure (simgan.core.difference): fixed picks, signed differences, a PNG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from simgan.core.difference import difference, difference_png, fixed_rows


def test_fixed_rows_are_spread_sorted_and_within_range():
    assert fixed_rows(100, 5).tolist() == [0, 25, 50, 74, 99]
    assert fixed_rows(3, 6).tolist() == [0, 1, 2]
    assert fixed_rows(0, 6).size == 0


def test_difference_is_signed_refined_minus_synthetic():
    syn = np.full((1, 2, 2), 200, dtype=np.uint8)
    ref = np.array([[[210, 190], [200, 0]]], dtype=np.uint8)
    assert difference(syn, ref).tolist() == [[[10.0, -10.0], [0.0, -200.0]]]
    with pytest.raises(ValueError, match="paired"):
        difference(syn, ref[:, :1])


def test_difference_png_has_one_row_per_pair():
    rng = np.random.default_rng(0)
    syn = rng.integers(0, 255, (3, 35, 55), dtype=np.uint8)
    few = difference_png(syn[:1], syn[:1], syn[:1])  # identical pairs: a zero map still draws
    many = difference_png(syn, 255 - syn, syn[:2])
    for png in (few, many):
        assert png.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(many)).height > Image.open(io.BytesIO(few)).height
