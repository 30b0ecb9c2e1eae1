"""The history buffer fills, then replaces at random, and serves images of earlier steps."""

from __future__ import annotations

import torch

from simgan.core.refiner.history import HistoryBuffer


def _tagged(step: int, n: int) -> torch.Tensor:
    """n images whose every pixel is the step number, so a sample tells when it was pushed."""
    return torch.full((n, 1, 2, 3), float(step))


def test_buffer_fills_before_replacing() -> None:
    buf = HistoryBuffer(10, (1, 2, 3), torch.Generator().manual_seed(0))
    assert len(buf) == 0
    buf.push(_tagged(1, 4))
    buf.push(_tagged(2, 4))
    assert len(buf) == 8
    buf.push(_tagged(3, 4))  # 2 fill the last slots, 2 overwrite random ones
    assert len(buf) == 10
    tags = buf.data[:, 0, 0, 0]
    assert (tags == 3).sum() == 4
    assert (tags[8:] == 3).all()


def test_samples_come_from_earlier_steps_and_replacement_is_partial() -> None:
    gen = torch.Generator().manual_seed(0)
    buf = HistoryBuffer(64, (1, 2, 3), gen)
    for step in range(1, 41):  # like D steps: push b/2 = 8 each step
        if len(buf):
            sample = buf.sample(8)[:, 0, 0, 0]
            assert (sample < step).all()  # never the current step's images
        buf.push(_tagged(step, 8))
    assert len(buf) == 64
    tags = buf.data[:, 0, 0, 0]
    assert len(set(tags.tolist())) > 8  # many different past steps are kept, not just the last
    many = buf.sample(4000)[:, 0, 0, 0]
    assert (many < 40).float().mean() > 0.5  # mostly older than the last push


def test_state_dict_round_trip() -> None:
    buf = HistoryBuffer(16, (1, 2, 3), torch.Generator().manual_seed(0))
    buf.push(_tagged(1, 5))
    other = HistoryBuffer(16, (1, 2, 3), torch.Generator().manual_seed(1))
    other.load_state_dict(buf.state_dict())
    assert len(other) == 5 and torch.equal(other.data[:5], buf.data[:5])
