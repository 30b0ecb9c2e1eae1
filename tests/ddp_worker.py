"""One rank of the DDP tests (tests/test_distributed.py), started by ``torch.distributed.run``;
its functions also give the single-process reference when called without torchrun.

``python tests/ddp_worker.py <mode> <out_dir>``; modes:

* ``all``: the S+U schedule of ``REFINER`` (6 steps), the same stopped after 4 steps and
  resumed (from a copy of its checkpoint that only rank 0 can see), a resume from the
  single-process checkpoint the test left in ``<out_dir>/single4``, and two epochs of the gaze
  estimator. Each rank writes ``all-rank<r>.json``: losses of every step, a digest of the
  weights after every optimiser step (a global step hook), buffer sizes, final weights.
* ``forever``: S+U steps until killed; ``alive-<rank>`` (holding the pid) appears after 3.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from simgan.core.refiner.params import DiscriminatorParams, RefinerNetParams, RefinerTrainParams
from simgan.core.refiner.trainer import CHECKPOINT, RefinerTrainer
from simgan.gaze.estimator import EstimatorParams, train_estimator

H, W = 12, 16
GH, GW = 24, 32
# no noise input: each rank draws its own noise, which a single process would draw differently
NET = RefinerNetParams(width=4, blocks=1, noise_channels=0, output="tanh")
DISC = DiscriminatorParams(widths=(4, 4, 4, 4))
REFINER = RefinerTrainParams(
    batch_size=16, pretrain_refiner_steps=2, pretrain_discriminator_steps=1, steps=3, kg=1,
    kd=1, lr=1e-3, history_size=20, select_every=0, select_size=16, checkpoint_every=100,
    log_every=1, sample_every=0, device="cpu", seed=3,
)
GAZE = EstimatorParams(
    widths=(8, 8, 8, 8, 8), fc_hidden=16, batch_norm=False, epochs=2, batch_size=32, lr=1e-2,
    val_fraction=0.2, device="cpu", seed=1,
)
GAZE_N = 174  # 139 training rows: the last batch of 11 splits 6/5 over two ranks


def refiner_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    syn = rng.integers(0, 200, size=(80, H, W)).astype(np.uint8)
    real = np.clip(rng.integers(0, 200, size=(80, H, W)) + 40, 0, 255).astype(np.uint8)
    return syn, real


def gaze_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    v = rng.uniform(0, 1, GAZE_N).astype(np.float32)
    noise = rng.integers(0, 30, size=(GAZE_N, GH, GW))
    images = np.clip((v * 220)[:, None, None] + noise, 0, 255).astype(np.uint8)
    g = np.stack([v - 0.5, np.zeros_like(v), -np.ones_like(v)], 1)
    return images, (g / np.linalg.norm(g, axis=1, keepdims=True)).astype(np.float32)


def digest(module_params: list[torch.Tensor]) -> str:
    h = hashlib.sha256()
    for p in module_params:
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class StepDigests:
    """After every optimiser step anywhere: a digest of that optimiser's weights."""

    def __init__(self) -> None:
        self.digests: list[str] = []
        self.handle = register_optimizer_step_post_hook(self._hook)

    def _hook(self, opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.digests.append(digest([p for g in opt.param_groups for p in g["params"]]))

    def close(self) -> None:
        self.handle.remove()


def run_refiner(checkpoint_dir: Path, steps: int | None = None,
                resume: bool = False) -> dict[str, Any]:
    """The S+U schedule of ``REFINER`` step by step (the loop of ``train_refiner`` without
    selection), recording the logged losses of every step, until ``steps`` (default: the
    end); saves ``last.pt`` then. ``resume``: first continue from ``last.pt``."""
    syn, real = refiner_data()
    hook = StepDigests()
    try:
        t = RefinerTrainer(syn, real, NET, DISC, REFINER)
        start, start_buffer = t.step, len(t.buffer)
        if resume:
            assert t.resume(Path(checkpoint_dir) / CHECKPOINT)
            start, start_buffer = t.step, len(t.buffer)
        t.refiner.train()
        t.discriminator.train()
        losses = []
        while t.step < (steps or t.total):
            t.train_step()
            losses.append(t.log())
        t.save(Path(checkpoint_dir) / CHECKPOINT)
        return {
            "losses": losses, "digests": hook.digests, "buffer": len(t.buffer),
            "start": start, "start_buffer": start_buffer,
            "refiner": {k: v.tolist() for k, v in t.refiner.state_dict().items()},
            "final": digest([*t.refiner.parameters(), *t.discriminator.parameters()]),
        }
    finally:
        hook.close()


def run_gaze(checkpoint_dir: Path) -> dict[str, Any]:
    images, targets = gaze_data()
    hook = StepDigests()
    try:
        state, history = train_estimator(images, targets, GAZE, checkpoint_dir)
        return {"history": history, "digests": hook.digests,
                "state": {k: v.tolist() for k, v in state.items()}}
    finally:
        hook.close()


def run_forever(out: Path) -> None:
    """S+U steps until killed; ``alive-<rank>`` (this pid) appears after the first steps."""
    syn, real = refiner_data()
    params = REFINER.model_copy(update={"steps": 1_000_000})
    t = RefinerTrainer(syn, real, NET, DISC, params)
    rank = os.environ.get("RANK", "0")
    while True:
        t.train_step()
        if t.step == 3:
            (out / f"alive-{rank}").write_text(str(os.getpid()))


def main() -> None:
    mode, out = sys.argv[1], Path(sys.argv[2])
    torch.set_num_threads(1)
    rank = int(os.environ.get("RANK", "0"))
    if mode == "forever":
        run_forever(out)
    result = {"refiner": run_refiner(out / "ddp6"), "ddp4": run_refiner(out / "ddp4", steps=4)}
    if rank == 0:  # the other ranks get the state from rank 0: they need no copy
        (out / "ddp4-resumed").mkdir()
        shutil.copy(out / "ddp4" / CHECKPOINT, out / "ddp4-resumed" / CHECKPOINT)
    result["resumed"] = run_refiner(out / "ddp4-resumed", resume=True)
    result["from_single"] = run_refiner(out / "single4", resume=True)
    result["gaze"] = run_gaze(out / "gaze")
    (out / f"{mode}-rank{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main()
