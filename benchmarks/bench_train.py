"""Training throughput of the refiner/discriminator pair and of the gaze CNN on this machine.

Prints images/s for one refiner (generator) update -- R forward + backward through a frozen D
plus self-regularisation -- and for one discriminator update -- R forward without grad, D
forward + backward on b real + b refined images -- at several widths, batch sizes and memory
formats; then gaze-CNN training images/s at paper, half and quarter width. The figures size
the CPU default (see docs). Run ``python benchmarks/bench_train.py --quick`` (about a minute on
2 cores) or without ``--quick`` for the paper sizes too (batch 512, width 64: several minutes).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from simgan.core.refiner.discriminator import PatchDiscriminator
from simgan.core.refiner.losses import REAL, REFINED, adversarial_loss, self_regularisation
from simgan.core.refiner.net import Refiner
from simgan.gaze.net import GazeCNN

H, W = 35, 55


def _time(fn: Callable[[], None], min_seconds: float, min_reps: int) -> float:
    """Seconds per call after one warm-up call."""
    fn()
    reps, t0 = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - t0 < min_seconds:
        fn()
        reps += 1
    return (time.perf_counter() - t0) / reps


def bench_refiner(
    width: int, batch: int, channels_last: bool, disc_widths: tuple[int, ...], seconds: float
) -> tuple[float, float]:
    """(generator-step images/s, discriminator-step images/s)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    r = Refiner(width=width, blocks=4).to(memory_format=fmt)
    torch.nn.init.normal_(r.tail.weight, std=1e-3)  # not the identity: real gradients flow
    d = PatchDiscriminator(widths=disc_widths).to(memory_format=fmt)
    opt_r = torch.optim.Adam(r.parameters(), 1e-4)
    opt_d = torch.optim.Adam(d.parameters(), 1e-4)
    x = (torch.rand(batch, 1, H, W) * 2 - 1).contiguous(memory_format=fmt)
    y = (torch.rand(batch, 1, H, W) * 2 - 1).contiguous(memory_format=fmt)

    def g_step() -> None:
        out = r(x)
        d.requires_grad_(False)
        loss = adversarial_loss(d(out), REAL) + self_regularisation(out, x, 0.5)
        d.requires_grad_(True)
        opt_r.zero_grad(set_to_none=True)
        loss.backward()
        opt_r.step()

    def d_step() -> None:
        with torch.no_grad():
            fake = r(x)
        loss = adversarial_loss(d(y), REAL) + adversarial_loss(d(fake), REFINED)
        opt_d.zero_grad(set_to_none=True)
        loss.backward()
        opt_d.step()

    reps = 2 if batch >= 256 else 5
    return batch / _time(g_step, seconds, reps), batch / _time(d_step, seconds, reps)


def gaze_step(
    widths: tuple[int, ...], fc: int, batch: int, channels_last: bool, batch_norm: bool
) -> Callable[[], None]:
    """One gaze-CNN training step (forward, L2 loss, backward, AdamW) on a fixed batch."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    net = GazeCNN(widths=widths, fc_hidden=fc, batch_norm=batch_norm).to(memory_format=fmt)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    x = (torch.rand(batch, 1, H, W) * 2 - 1).contiguous(memory_format=fmt)
    t = torch.nn.functional.normalize(torch.randn(batch, 3), dim=1)

    def step() -> None:
        loss = ((net(x) - t) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def bench_gaze(
    widths: tuple[int, ...],
    fc: int,
    batch: int,
    channels_last: bool,
    batch_norm: bool,
    seconds: float,
) -> float:
    return batch / _time(gaze_step(widths, fc, batch, channels_last, batch_norm), seconds, 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CPU-default sizes only, short timings")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    seconds = 1.0 if args.quick else 3.0
    widths = (16, 32) if args.quick else (16, 32, 64)
    batches = (32,) if args.quick else (32, 512)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, image {H}x{W}")
    print("\nrefiner (4 blocks, 3x3) + discriminator; images/s per update")
    head = ("R width", "D widths", "batch", "ch_last", "G step", "D step")
    print("{:>7} {:>16} {:>5} {:>7} {:>8} {:>8}".format(*head))
    for width in widths:
        disc = (96, 64, 32, 32) if width >= 64 else (32, 32, 16, 16)
        for batch in batches:
            for cl in (True, False):
                g, dd = bench_refiner(width, batch, cl, disc, seconds)
                print(f"{width:>7} {str(disc):>16} {batch:>5} {str(cl):>7} {g:>8.0f} {dd:>8.0f}")
    print("\ngaze CNN training step (batch 128, AdamW); images/s")
    print(f"{'widths':>24} {'fc':>5} {'BN':>5} {'ch_last':>7} {'img/s':>8}")
    configs = [
        ((32, 32, 64, 80, 192), 1000),
        ((16, 16, 32, 40, 96), 500),
        ((8, 8, 16, 20, 48), 250),
    ]
    for w, fc in configs:
        for bn in (True, False):
            for cl in (True, False) if not args.quick else (True,):
                ips = bench_gaze(w, fc, 128, cl, bn, seconds)
                print(f"{str(w):>24} {fc:>5} {str(bn):>5} {str(cl):>7} {ips:>8.0f}")


if __name__ == "__main__":
    main()
