"""Throughput of the procedural hand depth renderer (synthetic and stand-in Kinect domains).

Run: ``python benchmarks/bench_render_hands.py [--n 8192] [--repeat 3] [--threads 2]``. Prints
images/s per domain and thread count (wall clock, best of ``--repeat`` runs: the machine is
shared, the best run is the least disturbed one) and the CPU-time rate.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from simgan.hand.render import HandRenderParams, iter_hand_chunks
from simgan.hand.standin import RealDepthParams, standin_domain


def render_hands(params: HandRenderParams, n: int, seed: int, chunk: int, real: bool,
                 threads: int) -> int:
    """Render ``n`` hands (synthetic, or the stand-in Kinect domain if ``real``)."""
    domain = standin_domain(RealDepthParams()) if real else None
    total = 0
    for images, labels in iter_hand_chunks(params, n, seed=seed, chunk_size=chunk,
                                           domain=domain, threads=threads):
        total += images.shape[0]
        assert len(labels) == images.shape[0] and images.dtype == np.uint8
    return total


def measure(params: HandRenderParams, n: int, repeat: int, chunk: int, real: bool,
            threads: int) -> tuple[float, float]:
    """Best wall-clock and CPU-time images/s over ``repeat`` full renders of ``n`` images."""
    best_wall, best_cpu = 0.0, 0.0
    for r in range(repeat):
        t_wall, t_cpu = time.perf_counter(), time.process_time()
        total = render_hands(params, n, r, chunk, real, threads)
        wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
        best_wall, best_cpu = max(best_wall, total / wall), max(best_cpu, total / cpu)
    return best_wall, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    params = HandRenderParams(size=args.size)
    print(f"hand renderer {args.size}x{args.size}, n={args.n}, chunk={args.chunk}, best of "
          f"{args.repeat}, {os.cpu_count()} CPUs visible, load {os.getloadavg()[0]:.2f}")
    for name, real in (("synthetic", False), ("real", True)):
        for threads in args.threads:
            wall, cpu = measure(params, args.n, args.repeat, args.chunk, real, threads)
            print(f"{name:10s} threads={threads}  {wall:8.0f} images/s (wall)  "
                  f"{cpu:8.0f} images/s (CPU time)")


if __name__ == "__main__":
    main()
