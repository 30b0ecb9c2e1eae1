"""Proof that a single process (WORLD_SIZE unset) computes what it computed before DDP support.

Small refiner, gaze and hand estimator runs; prints the md5 of every checkpoint written and of
the returned states. Run it with PYTHONPATH at two checkouts and diff the outputs::

    git archive <base-commit> simgan | tar -x -C /tmp/base
    PYTHONPATH=/tmp/base OMP_NUM_THREADS=1 python benchmarks/ddp_single_md5.py /tmp/a > a.txt
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/ddp_single_md5.py /tmp/b > b.txt
    diff a.txt b.txt
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

from simgan.core.refiner.params import DiscriminatorParams, RefinerNetParams, RefinerTrainParams
from simgan.core.refiner.trainer import train_refiner
from simgan.gaze.estimator import EstimatorParams, train_estimator
from simgan.hand.estimator import PoseEstimatorParams, train_pose_estimator


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def state_md5(state: dict[str, torch.Tensor]) -> str:
    return md5(b"".join(v.contiguous().numpy().tobytes() for _, v in sorted(state.items())))


def main(out: Path) -> None:
    torch.set_num_threads(1)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    syn = rng.integers(0, 200, size=(120, 20, 28)).astype(np.uint8)
    real = np.clip(rng.integers(0, 200, size=(120, 20, 28)) + 40, 0, 255).astype(np.uint8)
    params = RefinerTrainParams(
        batch_size=16, pretrain_discriminator_steps=3, steps=8, history_size=30,
        select_every=4, select_size=16, checkpoint_every=5, log_every=2, sample_every=0,
        device="cpu", seed=5,
    )
    res = train_refiner(syn, real, RefinerNetParams(width=8, blocks=2),
                        DiscriminatorParams(widths=(8, 8, 8, 8)), params, out / "refiner")
    print("refiner selected", state_md5(res.selected_state), res.selection["selected_step"],
          round(res.selection["mmd"], 9))

    v = rng.uniform(0, 1, 200).astype(np.float32)
    noise = rng.integers(0, 30, size=(200, 24, 32))
    img = np.clip((v * 220)[:, None, None] + noise, 0, 255).astype(np.uint8)
    g = np.stack([v - 0.5, np.zeros_like(v), -np.ones_like(v)], 1)
    g = (g / np.linalg.norm(g, axis=1, keepdims=True)).astype(np.float32)
    gaze = EstimatorParams(widths=(8,) * 5, fc_hidden=16, epochs=2, batch_size=32,
                           brightness_jitter=0.1, device="cpu", seed=1)
    state, hist = train_estimator(img, g, gaze, out / "gaze")
    print("gaze state", state_md5(state), hist[-1]["train_loss"])

    himg = rng.integers(0, 255, size=(60, 32, 32)).astype(np.uint8)
    kp = rng.uniform(4, 28, size=(60, 14, 2)).astype(np.float32)
    hand = PoseEstimatorParams(stacks=1, width=8, depth=1, epochs=2, batch_size=16,
                               device="cpu", seed=2)
    hs, hh = train_pose_estimator(himg, kp, hand, out / "hand")
    print("hand state", state_md5(hs), hh[-1]["train_loss"])
    for f in sorted(out.rglob("*.pt")):
        print(f.relative_to(out), md5(f.read_bytes()))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
