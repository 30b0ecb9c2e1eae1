"""The shared epoch loop on a one-weight linear model, where every step can be done by hand:
the lr schedule, best-epoch keeping, per-epoch batches, resume equals uninterrupted, and when a
checkpoint is reused or thrown away."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import BaseModel
from torch import nn

from simgan.core.checkpoint import read_checkpoint
from simgan.core.epochs import (
    CHECKPOINT,
    EpochCheckpoint,
    check_finite,
    check_images,
    lr_schedule,
    params_fingerprint,
    split_indices,
    train_epochs,
)


class Killed(Exception):
    """Stands in for a SIGKILL between an epoch's report and its checkpoint."""


@dataclass
class Params:
    epochs: int = 3
    batch_size: int = 100
    lr_schedule: str = "constant"
    val_fraction: float = 0.0
    seed: int = 0
    compile: bool = False


@dataclass
class LinearTask:
    """y = 2 x fitted by w x (w starts at 0) with plain SGD; ``noise`` adds generator draws to
    the inputs, ``scores`` scripts the validation score of each epoch."""

    x: np.ndarray
    lr: float = 0.1
    noise: float = 0.0
    scores: list[float] = field(default_factory=list)
    name: str = "linear"
    score_key: str = "val_score"
    batches: list[list[int]] = field(default_factory=list)
    modes: list[bool] = field(default_factory=list)
    model: nn.Module | None = None

    def build_model(self, train_idx: np.ndarray) -> nn.Module:
        self.model = nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            self.model.weight.zero_()
        return self.model

    def build_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        return torch.optim.SGD(model.parameters(), lr=self.lr)

    def make_batch(self, rows: np.ndarray, generator: torch.Generator):
        assert self.model is not None
        self.batches.append(rows.tolist())
        self.modes.append(self.model.training)
        x = torch.from_numpy(self.x[rows]).float()[:, None]
        y = 2 * x
        if self.noise:
            x = x + self.noise * torch.rand(x.shape, generator=generator)
        return x, y

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((output - target) ** 2).mean()

    def validate(self, model: nn.Module, val_idx: np.ndarray) -> dict[str, float]:
        self.modes.append(model.training)
        return {"val_score": self.scores.pop(0)}


def _ckpt(path: Path, fingerprint: str = "fp") -> EpochCheckpoint:
    return EpochCheckpoint(path / CHECKPOINT, fingerprint)


def _weight(state: dict[str, torch.Tensor]) -> float:
    return float(state["weight"])


def _without_time(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "epoch_seconds"} for row in history]


# ----------------------------------------------------------------------------- pieces


def test_cosine_schedule_by_hand_and_constant() -> None:
    w = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=1.0)
    sched = lr_schedule(opt, "cosine", 4)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 - math.cos(math.pi / 4)),
                0.0, 0.0]  # held at 0 past the end
    assert lrs == pytest.approx(expected, abs=1e-12)
    opt2 = torch.optim.SGD([w], lr=0.3)
    const = lr_schedule(opt2, "constant", 4)
    for _ in range(5):
        opt2.step()
        const.step()
    assert opt2.param_groups[0]["lr"] == 0.3


def test_end_epoch_keeps_the_lowest_score_as_a_copy(tmp_path: Path) -> None:
    ckpt = _ckpt(tmp_path)
    model = nn.Linear(1, 1, bias=False)
    rows = []
    for value, score in ((1.0, 3.0), (2.0, 1.0), (3.0, 2.0)):
        with torch.no_grad():
            model.weight.fill_(value)
        row: dict[str, float] = {}
        ckpt.end_epoch(row, score, model)
        rows.append(row["best_epoch"])
    assert rows == [1.0, 2.0, 2.0] and ckpt.epoch == 3
    assert ckpt.best is not None and _weight(ckpt.best["state"]) == 2.0  # not the live 3.0


def test_params_fingerprint_ignores_cadence_but_not_params_data_or_version() -> None:
    class P(BaseModel):
        lr: float = 0.1
        device: str = "cpu"
        compile: bool = False

    images = np.zeros((4, 3, 3), np.uint8)
    targets = np.zeros((4, 2), np.float32)
    fp = params_fingerprint(P(), images, targets, 1)
    assert params_fingerprint(P(device="cuda", compile=True), images, targets, 1) == fp
    assert params_fingerprint(P(lr=0.2), images, targets, 1) != fp
    assert params_fingerprint(P(), images, targets, 2) != fp
    assert params_fingerprint(P(), images, targets + 1, 1) != fp
    assert params_fingerprint(P(), images[:3], targets[:3], 1) != fp


def test_input_checks() -> None:
    check_images(np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        check_images(np.zeros((2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="uint8"):
        check_images(np.zeros((3, 3), np.uint8))
    with pytest.raises(ValueError, match="labels contain NaN"):
        check_finite(np.array([0.0, np.inf]), "labels")


# ----------------------------------------------------------------------------- the loop


def test_full_batch_sgd_by_hand(tmp_path: Path) -> None:
    """x = 1 everywhere: loss (w - 2)^2, step w <- w - 0.1 * 2 (w - 2) = 0.8 w + 0.4."""
    task = LinearTask(np.ones(10))
    seen: list[tuple[dict[str, float], int]] = []
    state, history = train_epochs(10, Params(), task, _ckpt(tmp_path),
                                  lambda row, e: seen.append((row, e)))
    assert _weight(state) == pytest.approx(0.976)  # 0 -> 0.4 -> 0.72 -> 0.976
    assert [h["train_loss"] for h in history] == pytest.approx([4.0, 2.56, 1.6384])
    assert [h["epoch"] for h in history] == [1.0, 2.0, 3.0]
    assert [h["best_epoch"] for h in history] == [1.0, 2.0, 3.0]  # no validation: the last
    assert all(h["lr"] == pytest.approx(0.1) for h in history)
    assert [e for _, e in seen] == [1, 2, 3] and all("epoch" not in r for r, _ in seen)
    assert "val_score" not in history[0]


def test_batches_cover_the_training_split_once_per_epoch_in_a_new_order(tmp_path: Path) -> None:
    task = LinearTask(np.arange(20, dtype=np.float64) / 20, lr=0.01, scores=[1.0] * 3)
    p = Params(batch_size=4, val_fraction=0.2)
    train_epochs(20, p, task, _ckpt(tmp_path))
    train_idx, val_idx = split_indices(20, 0.2, 0)
    assert len(task.batches) == 3 * 4  # 16 training samples, batches of 4
    epochs = [sum(task.batches[i : i + 4], []) for i in range(0, 12, 4)]
    assert all(sorted(e) == train_idx.tolist() for e in epochs)
    assert all(b == sorted(b) for b in task.batches)
    assert epochs[0] != epochs[1] and not set(val_idx) & set(epochs[0])
    # train mode for every batch, eval mode for validation, back to train afterwards
    assert task.modes == ([True] * 4 + [False]) * 3


def test_best_epoch_is_returned_by_validation_score(tmp_path: Path) -> None:
    task = LinearTask(np.ones(10), scores=[0.5, 0.2, 0.9])
    state, history = train_epochs(10, Params(val_fraction=0.2), task, _ckpt(tmp_path))
    assert [h["val_score"] for h in history] == [0.5, 0.2, 0.9]
    assert [h["best_epoch"] for h in history] == [1.0, 2.0, 2.0]
    assert _weight(state) == pytest.approx(0.72)  # the weights after epoch 2
    assert task.model is not None and float(task.model.weight.detach()) == pytest.approx(0.976)


def test_resume_after_kill_equals_uninterrupted(tmp_path: Path) -> None:
    """Small batches, inputs with generator noise: the result depends on every epoch's order
    and draws, which a resumed run must repeat."""
    x = np.linspace(0.1, 1.0, 12)
    p = Params(epochs=4, batch_size=3, lr_schedule="cosine", val_fraction=0.25, seed=5)
    scores = [3.0, 1.0, 2.0, 4.0]  # the best epoch (2) is older than the resume point
    state, history = train_epochs(12, p, LinearTask(x, noise=0.3, scores=list(scores)),
                                  _ckpt(tmp_path / "a"))

    def die(_: dict[str, float], epoch: int) -> None:
        if epoch == 3:
            raise Killed  # after epoch 3's report, before its checkpoint

    with pytest.raises(Killed):
        train_epochs(12, p, LinearTask(x, noise=0.3, scores=list(scores)),
                     _ckpt(tmp_path / "b"), die)
    assert read_checkpoint(tmp_path / "b" / CHECKPOINT)["epoch"] == 2
    resumed = LinearTask(x, noise=0.3, scores=scores[2:])  # only epochs 3 and 4 run again
    seen: list[int] = []
    state_b, history_b = train_epochs(12, p, resumed, _ckpt(tmp_path / "b"),
                                      lambda _, e: seen.append(e))
    assert seen == [3, 4] and len(resumed.batches) == 2 * 3
    assert torch.equal(state["weight"], state_b["weight"])
    assert _without_time(history) == _without_time(history_b)
    assert history_b[-1]["best_epoch"] == 2.0
    other, _ = train_epochs(12, replace(p, seed=6), LinearTask(x, noise=0.3, scores=list(scores)),
                            _ckpt(tmp_path / "c"))
    assert not torch.equal(state["weight"], other["weight"])


def test_finished_checkpoint_is_reused_and_a_foreign_one_ignored(tmp_path: Path) -> None:
    state, _ = train_epochs(10, Params(), LinearTask(np.ones(10)), _ckpt(tmp_path))
    again = LinearTask(np.ones(10))
    seen: list[int] = []
    state2, history2 = train_epochs(10, Params(), again, _ckpt(tmp_path),
                                    lambda _, e: seen.append(e))
    assert seen == [] and again.batches == [] and len(history2) == 3
    assert torch.equal(state["weight"], state2["weight"])
    fresh = LinearTask(np.ones(10))
    state3, _ = train_epochs(10, Params(), fresh, _ckpt(tmp_path, "other params"),
                             lambda _, e: seen.append(e))
    assert seen == [1, 2, 3] and torch.equal(state["weight"], state3["weight"])


def test_no_training_samples_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no training images"):
        train_epochs(0, Params(), LinearTask(np.ones(0)), _ckpt(tmp_path))
