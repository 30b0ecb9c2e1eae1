"""A check shared by the tests of the refiner's random stages (noise inputs, camera, depth
sensor, codec): sharded refinement needs ``skip_noise`` to draw exactly what refining would."""

from __future__ import annotations

import torch

from simgan.core.refiner.net import Refiner, apply_refiner


def assert_skip_matches_refining(r: Refiner, x: torch.Tensor, first: int, seed: int) -> None:
    """Refining ``x[:first]`` then ``x[first:]`` from one generator gives the second batch
    that skipping the first (``skip_noise``) and refining ``x[first:]`` gives."""
    run = torch.Generator().manual_seed(seed)  # two batches in a row ...
    apply_refiner(r, x[:first], run)
    second = apply_refiner(r, x[first:], run)
    gen = torch.Generator().manual_seed(seed)  # ... or the first skipped: the same second batch
    r.skip_noise(first, x.shape[-2], x.shape[-1], gen)
    assert torch.equal(apply_refiner(r, x[first:], gen), second)
