"""What the table of label readings (``simgan/core/refiner/label_targets.py``) saves per S+U step.

Two ``RefinerTrainer``s at the sizes of ``params.yaml``, on the workspace's synthetic and real
training images and the task's label model: one reads the label model's reading of x from the
table, the other at every update. Their adversarial steps are timed in alternation (order
swapped every round), one thread; the first step, which fills the table, is reported apart.
Needs the workspace's data and label model (after ``make run``).

    python -m benchmarks.bench_label_targets --task hand
    python -m benchmarks.bench_label_targets --task gaze --rounds 6
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from simgan.core.config import read_yaml, validate
from simgan.core.dataset import open_images
from simgan.core.refiner.label_targets import DEFAULT_BUDGET_BYTES
from simgan.core.refiner.trainer import RefinerTrainer
from simgan.tasks import get_task
from stages.artifacts import load_torch
from stages.layout import Layout


def label_model(task: str, params, layout: Layout):
    """The refiner's own label model if train_refiner saved one, else the synthetic-trained
    estimator (what ``stages.train_refiner`` would use)."""
    spec = get_task(task)
    own = layout.label_model
    path = own if own.is_file() else layout.estimator_model("synthetic")
    return spec.label_model(params, load_torch(path)["state_dict"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="hand")
    ap.add_argument("--rounds", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(1)
    spec = get_task(args.task)
    params = validate(spec.params_model, read_yaml(Path("params.yaml"))[args.task], args.task,
                      source="params.yaml")
    layout = Layout(Path("."), args.task)
    synthetic = open_images(layout.synthetic("train"))
    real = open_images(layout.real("train"))
    model = label_model(args.task, params, layout)
    section = params.refiner
    runs = {}
    for name, budget in (("table", DEFAULT_BUDGET_BYTES), ("per update", 0)):
        t = RefinerTrainer(synthetic, real, section.net, section.discriminator, section.train,
                           label_model=model, reading_cache_bytes=budget)
        t.step = t.adv_start  # adversarial steps: where the label term is read
        start = time.perf_counter()
        t.train_step()
        runs[name] = (t, time.perf_counter() - start, [])
    names = list(runs)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            t, _, times = runs[name]
            start = time.perf_counter()
            t.train_step()
            times.append(time.perf_counter() - start)
    print(f"{args.task}: S+U step, 1 thread, {args.rounds} alternating rounds")
    for name, (t, first, times) in runs.items():
        kept = t.label_targets.table is not None
        print(f"  {name:<11} first step {first:6.2f} s   median step "
              f"{1000 * statistics.median(times):7.1f} ms   table kept: {kept}")
    if not runs["table"][0].label_targets.cached:
        print("  (the table was dropped: this label model's reading depends on the place in "
              "the batch, so both read at every update)")


if __name__ == "__main__":
    main()
