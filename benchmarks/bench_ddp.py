"""Step time of the S+U refiner/discriminator pair under DDP, and FLOP counts of the nets.

One adversarial step = ``kg`` refiner updates + ``kd`` discriminator updates on the GLOBAL
batch ``batch_size`` (split over the ranks), exactly what ``train_refiner`` runs, on random
uint8 images of the task's crop size. Without torchrun (or with one process) this is the plain
single-process path; under torchrun each rank trains on its share and DDP averages gradients.

    # 1 and 2 processes, CPU (gloo), one thread per rank; params of the default profile
    OMP_NUM_THREADS=1 nice -n 19 python -m torch.distributed.run --nproc-per-node 1 \\
        benchmarks/bench_ddp.py --steps 30
    OMP_NUM_THREADS=1 nice -n 19 python -m torch.distributed.run --nproc-per-node 2 \\
        benchmarks/bench_ddp.py --steps 30
    # forward FLOPs per image of R, D (and the gaze CNN) at the paper's sizes
    python benchmarks/bench_ddp.py --flops --profile configs/paper.yaml

Rank 0 prints one JSON line: world size, global and per-rank batch, median and mean seconds
per step, synthetic images per second (``(kg + kd) * batch_size / step``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from simgan.core.refiner.trainer import RefinerTrainer
from simgan.tasks import load_task_params

ROOT = Path(__file__).resolve().parents[1]


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="gaze")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--profile", default=None, help="a configs/<name>.yaml applied on top of "
                    "--params (e.g. configs/paper.yaml)")
    ap.add_argument("--shape", type=int, nargs=2, default=(35, 55), help="crop H W")
    ap.add_argument("--batch-size", type=int, default=None, help="global batch (default: "
                    "the params' refiner.train.batch_size)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--flops", action="store_true", help="print FLOP counts and exit")
    return ap.parse_args()


def _images(n: int, shape: tuple[int, int], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)


def forward_flops(module: torch.nn.Module, shape: tuple[int, int]) -> float:
    """Forward FLOPs (2 per multiply-add) for one (1, 1, H, W) image."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(torch.zeros(1, 1, *shape))
    return float(counter.get_total_flops())


def print_flops(params, shape: tuple[int, int]) -> None:
    from simgan.core.refiner.discriminator import PatchDiscriminator
    from simgan.core.refiner.net import Refiner

    section = params.refiner
    r = forward_flops(Refiner(in_channels=1, **section.net.model_dump()), shape)
    d = forward_flops(PatchDiscriminator(in_channels=1, **section.discriminator.model_dump()),
                      shape)
    t = section.train
    # a train step ~ 3x forward (forward + backward for inputs and weights); an R update runs
    # R fwd+bwd and D fwd+bwd (input grads only, ~2x); a D update runs R forward and D fwd+bwd
    # on batch real + batch refined images
    g = 0.0
    est = getattr(params, "estimator", None)
    if est is not None and hasattr(est, "fc_hidden"):
        from simgan.gaze.estimator import build_gaze_cnn

        g = forward_flops(build_gaze_cnn(est, shape), shape)
    # the label-consistency term (lambda_label > 0): the frozen estimator reads x (forward)
    # and R(x) (forward + input gradients)
    label = 3 * g if t.lambda_label > 0 else 0.0
    r_update = 3 * r + 2 * d + label
    d_update = r + 2 * 3 * d
    step = t.kg * r_update + t.kd * d_update
    out = {"refiner_fwd_gflop_per_image": r / 1e9, "disc_fwd_gflop_per_image": d / 1e9,
           "label_term_gflop_per_image": label / 1e9,
           "adversarial_step_gflop_per_image": step / 1e9, "kg": t.kg, "kd": t.kd,
           "batch_size": t.batch_size, "steps": t.steps, "lambda_label": t.lambda_label,
           "pretrain_refiner_steps": t.pretrain_refiner_steps,
           "pretrain_discriminator_steps": t.pretrain_discriminator_steps}
    if g:
        out.update(gaze_cnn_fwd_gflop_per_image=g / 1e9,
                   gaze_cnn_train_gflop_per_image=3 * g / 1e9)
    print(json.dumps(out))


def _label_model(task: str, params, shape: tuple[int, int], train):
    """The frozen estimator of the label-consistency term (on in the gaze default), with
    untrained weights: the same FLOPs as the trained one."""
    if train.lambda_label <= 0:
        return None
    if task != "gaze":
        raise SystemExit(f"lambda_label > 0 for {task}: only gaze builds its label model here")
    from simgan.gaze.estimator import build_gaze_cnn
    from simgan.tasks import get_task

    torch.manual_seed(0)
    state = build_gaze_cnn(params.estimator, shape).state_dict()
    return get_task(task).label_model(params, state)


def main() -> None:
    args = _args()
    params_path = Path(args.params)
    if args.profile:
        from stages.profile import apply_profile

        params_path = Path(tempfile.mkdtemp()) / "params.yaml"
        apply_profile(Path(args.params), Path(args.profile), params_path)
    params = load_task_params(params_path, args.task)
    shape = tuple(args.shape)
    if args.flops:
        print_flops(params, shape)
        return
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    train = params.refiner.train.model_copy(update={
        "pretrain_refiner_steps": 0, "pretrain_discriminator_steps": 0,
        "select_every": 0, "sample_every": 0, "compile": False, "device": "cpu",
        **({"batch_size": args.batch_size} if args.batch_size else {}),
    })
    n = max(4 * train.batch_size, 512)
    t = RefinerTrainer(_images(n, shape, 0), _images(n, shape, 1), params.refiner.net,
                       params.refiner.discriminator, train,
                       label_model=_label_model(args.task, params, shape, train))
    t.refiner.train()
    t.discriminator.train()
    ranks = t.ranks
    times = []
    for i in range(args.warmup + args.steps):
        if ranks.active:
            torch.distributed.barrier()
        t0 = time.perf_counter()
        t.train_step()
        if ranks.active:
            torch.distributed.barrier()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    t.meter.pop()
    if ranks.is_main:
        med = statistics.median(times)
        print(json.dumps({
            "world_size": ranks.world_size, "threads_per_rank": threads,
            "global_batch": train.batch_size,
            "batch_per_rank": train.batch_size // ranks.world_size,
            "kg": train.kg, "kd": train.kd, "shape": list(shape),
            "step_s_median": round(med, 4), "step_s_mean": round(statistics.mean(times), 4),
            "images_per_s": round((train.kg + train.kd) * train.batch_size / med, 1),
        }))


if __name__ == "__main__":
    main()
