"""Training and inference throughput of the hand-pose hourglass on this machine.

One training step = random rotation/crop of the batch (affine_grid + grid_sample), Gaussian
heatmap targets, forward through every stack, loss, backward, Adam step: what
:func:`simgan.hand.estimator.train_pose_estimator` does per batch. Prints images/s for a few
hourglass sizes on 64 px crops (the CPU default first). Run
``python benchmarks/bench_train_pose.py`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from simgan.core.images import to_tensor
from simgan.hand.estimator import (
    PoseEstimatorParams,
    build_hourglass,
    heatmap_loss,
    heatmap_targets,
    image_to_heatmap,
    random_affine,
    warp,
)

SIZES = (
    ("default w32 d2 s4 (16x16 maps)", {}),
    ("w32 d3 s2 (32x32 maps)", {"depth": 3, "stem_stride": 2}),
    ("w64 d2 s4", {"width": 64}),
)


def pose_calls(
    overrides: dict, batch: int, size: int
) -> tuple[nn.Module, Callable[[], None], Callable[[], None]]:
    """(model, one training step, one inference pass over 8 batches) on fixed random crops."""
    torch.set_flush_denormal(True)
    p = PoseEstimatorParams(**overrides)
    model = build_hourglass(p).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=p.lr)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (batch, size, size), dtype=np.uint8)
    kp = torch.from_numpy(rng.uniform(0, size, (batch, 14, 2)).astype(np.float32))
    gen = torch.Generator().manual_seed(0)
    hm = (-(-size // model.stride),) * 2

    def step() -> None:
        x, k = warp(to_tensor(images).contiguous(), kp,
                    random_affine(batch, (size, size), 20.0, 0.1, 3.0, gen))
        target = heatmap_targets(image_to_heatmap(k, model.stride), hm, p.sigma)
        loss = heatmap_loss(model(x.contiguous(memory_format=torch.channels_last)), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer() -> None:
        with torch.inference_mode():
            model(to_tensor(np.repeat(images, 8, 0)))

    return model, step, infer


def bench(overrides: dict, batch: int, size: int, seconds: float) -> tuple[float, float]:
    """(training images/s, inference images/s)."""
    model, step, infer = pose_calls(overrides, batch, size)
    out = []
    for fn, n in ((step, batch), (infer, 8 * batch)):
        model.train(fn is step)
        for _ in range(3):
            fn()
        reps, t0 = 0, time.perf_counter()
        while reps < 3 or time.perf_counter() - t0 < seconds:
            fn()
            reps += 1
        out.append(n * reps / (time.perf_counter() - t0))
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    print(f"hourglass {args.size}x{args.size}, batch {args.batch}, {torch.get_num_threads()} "
          f"torch threads, load {os.getloadavg()[0]:.2f}")
    for name, overrides in SIZES:
        train, infer = bench(overrides, args.batch, args.size, args.seconds)
        print(f"{name:32s} train {train:7.0f} images/s   inference {infer:7.0f} images/s")


if __name__ == "__main__":
    main()
