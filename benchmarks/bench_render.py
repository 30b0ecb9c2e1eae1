"""Throughput of the procedural eye renderer (synthetic and stand-in real domains).

Run: ``python benchmarks/bench_render.py [--n 20000] [--repeat 3]``. Prints images/s per domain
(wall clock, best of ``--repeat`` runs: the machine is shared, the best run is the least
disturbed one) and the CPU-time rate, which is less sensitive to other load.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from simgan.gaze.render import EyeRenderParams, iter_eye_chunks
from simgan.gaze.standin import RealAppearanceParams, standin_domain


def measure(n: int, repeat: int, chunk: int, real: bool) -> tuple[float, float]:
    """Best wall-clock and CPU-time images/s over ``repeat`` full renders of ``n`` images."""
    params = EyeRenderParams()
    domain = standin_domain(RealAppearanceParams()) if real else None
    best_wall, best_cpu = 0.0, 0.0
    for r in range(repeat):
        t_wall, t_cpu = time.perf_counter(), time.process_time()
        total = 0
        for images, labels in iter_eye_chunks(params, n, seed=r, chunk_size=chunk,
                                              domain=domain):
            total += images.shape[0]
            assert len(labels) == images.shape[0] and images.dtype == np.uint8
        wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
        best_wall, best_cpu = max(best_wall, total / wall), max(best_cpu, total / cpu)
    return best_wall, best_cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=4096)
    args = ap.parse_args()
    print(f"eye renderer, n={args.n}, chunk={args.chunk}, best of {args.repeat}, "
          f"1 process, {os.cpu_count()} CPUs visible, load {os.getloadavg()[0]:.2f}")
    for name, real in (("synthetic", False), ("real", True)):
        wall, cpu = measure(args.n, args.repeat, args.chunk, real)
        print(f"{name:10s} {wall:8.0f} images/s (wall)  {cpu:8.0f} images/s (CPU time)")


if __name__ == "__main__":
    main()
