"""Does ``torch.compile`` (or the memory format) pay for the estimators' training on this CPU?

For the gaze CNN and the hand hourglass at the sizes of ``params.yaml``, one training step
(forward, the task's loss, backward, optimiser step) on a random batch of the default batch
size is timed four ways: eager or compiled (inductor), channels_last or not. A compiled model
pays its compilation on the first calls, so the table gives that cost and the break-even: the
number of steps after which compiling has paid for itself, against the steps one default
training runs (epochs x training rows / batch). ``compile`` stays a param (default false);
this is the evidence for that default.

    python -m benchmarks.bench_compile            # both estimators, ~3-5 min on 2 cores
    python -m benchmarks.bench_compile --repeat 5 # a quicker look
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.timing import time_calls
from simgan.core.epochs import split_indices
from simgan.tasks import load_task_params

ROOT = Path(__file__).resolve().parents[1]

#: (name, model, loss of the model on a batch, the batch, steps of one default training)
Case = tuple[str, torch.nn.Module, Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
             torch.Tensor, int]


def gaze_case() -> Case:
    """The gaze CNN, its loss (squared error of the 3-D gaze vector) and a batch."""
    from simgan.gaze.estimator import build_gaze_cnn

    p = load_task_params(ROOT / "params.yaml", "gaze")
    eye = p.render.eye
    model = build_gaze_cnn(p.estimator, (eye.height, eye.width))
    batch = torch.rand(p.estimator.batch_size, 1, eye.height, eye.width) * 2 - 1
    target = F.normalize(torch.randn(p.estimator.batch_size, 3), dim=1)
    return ("gaze CNN", model, lambda m, x: F.mse_loss(m(x), target), batch,
            _steps_per_training(p.estimator, p.render.n_train))


def hand_case() -> Case:
    """The hand hourglass, a heatmap loss over its stacks and a batch."""
    from simgan.hand.estimator import build_hourglass

    p = load_task_params(ROOT / "params.yaml", "hand")
    size = p.render.hand.size
    model = build_hourglass(p.estimator)
    batch = torch.rand(p.estimator.batch_size, 1, size, size) * 2 - 1
    with torch.no_grad():
        shapes = [h.shape for h in model(batch[:1])]
    targets = [torch.rand(p.estimator.batch_size, *s[1:]) for s in shapes]

    def loss(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return sum(F.mse_loss(h, t) for h, t in zip(m(x), targets, strict=True))

    return "hand hourglass", model, loss, batch, _steps_per_training(p.estimator, p.render.n_train)


def _steps_per_training(estimator: Any, n_rows: int) -> int:
    """Optimiser steps of one default training on ``n_rows`` synthetic rows: the training
    part of the same train/validation split the epoch loop makes, in batches, per epoch."""
    train, _ = split_indices(n_rows, estimator.val_fraction, estimator.seed)
    return estimator.epochs * math.ceil(len(train) / estimator.batch_size)


def measure(case: Case, compiled: bool, channels_last: bool, repeat: int) -> dict[str, Any]:
    """Seconds of the first two steps (compilation included) and the median of ``repeat``
    steps after them."""
    name, model, loss_fn, batch, _ = case
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = copy.deepcopy(model).to(memory_format=fmt)
    x = batch.contiguous(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    fwd = torch.compile(net) if compiled else net

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(fwd, x).backward()
        opt.step()

    t0 = time.perf_counter()
    step()
    step()  # inductor compiles the backward on the first backward; both first calls count
    first = time.perf_counter() - t0
    seconds = time_calls(step, warmup=1, repeat=repeat)
    return {"estimator": name, "compiled": compiled, "channels_last": channels_last,
            "first_two_steps_s": first, "median_step_s": statistics.median(seconds),
            "images_per_s": batch.shape[0] / statistics.median(seconds)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed steps per way")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON")
    parser.add_argument("--warm-cache", action="store_true",
                        help="use inductor's cache of earlier runs (default: a fresh one, so "
                             "the first steps show the compilation a first run pays)")
    args = parser.parse_args(argv)
    if not args.warm_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")
    rows = []
    print(f"{'estimator':<16} {'mode':<22} {'first 2 steps s':>15} {'step ms':>8} "
          f"{'img/s':>7} {'break-even steps':>16} {'steps per training':>18}")
    for case in (gaze_case(), hand_case()):
        results = [measure(case, compiled, cl, args.repeat)
                   for compiled in (False, True) for cl in (True, False)]
        eager = next(r for r in results if not r["compiled"] and r["channels_last"])
        for r in results:
            gain = eager["median_step_s"] - r["median_step_s"]
            extra = r["first_two_steps_s"] - 2 * r["median_step_s"]
            r["break_even_steps"] = (extra / gain if r["compiled"] and gain > 0 else None)
            r["steps_per_training"] = case[4]
            mode = ("compiled" if r["compiled"] else "eager") + (
                ", channels_last" if r["channels_last"] else ", contiguous")
            be = ("-" if not r["compiled"] else "never" if r["break_even_steps"] is None
                  else f"{r['break_even_steps']:.0f}")
            print(f"{r['estimator']:<16} {mode:<22} {r['first_two_steps_s']:15.1f} "
                  f"{1000 * r['median_step_s']:8.1f} {r['images_per_s']:7.0f} {be:>16} "
                  f"{case[4]:>18}", flush=True)
            rows.append(r)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
