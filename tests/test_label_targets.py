"""The label model's reading of the synthetic images, read once per image
(simgan.core.refiner.label_targets): the same bytes as reading it at every update."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from simgan.core.images import to_tensor
from simgan.core.refiner.label_targets import LabelTargets
from simgan.core.refiner.params import DiscriminatorParams, RefinerNetParams, RefinerTrainParams
from simgan.core.refiner.trainer import RefinerTrainer
from tests.test_train_refiner import one_thread  # noqa: F401  (autouse: 1 thread)

H, W = 12, 20
NET = RefinerNetParams(width=4, blocks=1, noise_channels=1)
DISC = DiscriminatorParams(widths=(4, 4, 4, 4))


def _heatmaps() -> nn.Module:
    """A small conv net with a map per 'joint', like the hand's hourglass reading."""
    torch.manual_seed(7)
    net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 3, 3, padding=1))
    return net.eval().requires_grad_(False)


def _images(n: int, seed: int, offset: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.integers(0, 200, (n, H, W)) + offset, 0, 255).astype(np.uint8)


def _load(images: np.ndarray, rows: np.ndarray) -> torch.Tensor:
    t = to_tensor(images[rows], torch.device("cpu"))
    return t.contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("budget", [1 << 30, 1])
def test_a_read_equals_the_model_on_the_batch(budget: int) -> None:
    images = _images(50, 0)
    pool = np.sort(np.random.default_rng(1).choice(50, 37, replace=False))  # 37: not 8k
    model = _heatmaps()
    targets = LabelTargets(model, partial(_load, images), 50, pool, 8, budget)
    rng = np.random.default_rng(2)
    for _ in range(6):
        rows = np.sort(rng.choice(pool, 8, replace=False))
        x = _load(images, rows)
        assert torch.equal(targets.read(rows, x), model(x))
    # the last rows, filled by the chunk that overlaps the one before it
    last = pool[-8:]
    assert torch.equal(targets.read(last, _load(images, last)), model(_load(images, last)))
    # over budget: no table, each read is the model's
    assert (targets.table is not None) == (budget > 1)


def test_a_pool_smaller_than_a_batch_reads_per_update() -> None:
    images = _images(10, 0)
    targets = LabelTargets(_heatmaps(), partial(_load, images), 10, np.arange(5), 8)
    rows = np.array([0, 0, 1, 2, 2, 3, 4, 4])
    x = _load(images, rows)
    assert torch.equal(targets.read(rows, x), targets.model(x))
    assert targets.table is None


def test_training_with_the_table_gives_the_same_bytes_as_without() -> None:
    synthetic, real = _images(80, 0), _images(80, 1, 40)
    params = RefinerTrainParams(
        batch_size=8, pretrain_refiner_steps=2, pretrain_discriminator_steps=2, steps=5,
        lr=3e-3, lambda_label=100.0, history_size=20, select_every=0, select_size=16,
        device="cpu", seed=3,
    )
    states = []
    for budget in (1 << 30, 0):
        t = RefinerTrainer(synthetic, real, NET, DISC, params, label_model=_heatmaps(),
                           reading_cache_bytes=budget)
        while t.step < t.total:
            t.train_step()
            t.log()
        assert (t.label_targets.table is not None) == (budget > 0)
        states.append(t.state_dict())
    a, b = states
    for name in ("refiner", "discriminator"):
        assert a[name].keys() == b[name].keys()
        assert all(torch.equal(a[name][k], b[name][k]) for k in a[name])
    assert a["history"] == b["history"]  # the same losses, label term included
    assert any("loss_r_label" in row for row in a["history"])


class _PlaceDependent(nn.Module):
    """Reads an image a little differently depending on its place in the batch, as a GEMM's
    row blocking can (measured on the gaze CNN's fully connected layers)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        place = torch.arange(x.shape[0], dtype=x.dtype)[:, None]
        return x.flatten(1)[:, :4] + 1e-7 * place


def test_a_reading_that_depends_on_the_place_in_the_batch_drops_the_table() -> None:
    images = _images(40, 0)
    model = _PlaceDependent()
    targets = LabelTargets(model, partial(_load, images), 40, np.arange(40), 8)
    rows = np.arange(3, 11)  # filled at places 3..7 and 0..2 of two chunks: not these places
    x = _load(images, rows)
    assert torch.equal(targets.read(rows, x), model(x))
    assert targets.table is None and not targets.cached
    rows = np.arange(20, 28)
    assert torch.equal(targets.read(rows, _load(images, rows)), model(_load(images, rows)))
