"""Throughput of the procedural eye renderer (synthetic, stand-in and mpii_like real domains).

Run: ``python -m benchmarks.bench_render [--n 20000] [--repeat 3]`` from the checkout to measure
(as a script path, ``simgan`` is imported from wherever the editable install points). Prints
images/s per domain (wall clock, best of ``--repeat`` runs: the machine is shared, the best run
is the least disturbed one) and the CPU-time rate, which is less sensitive to other load.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from simgan.gaze.mpii_like import MpiiLikeParams, mpii_like_domain
from simgan.gaze.render import EyeDomain, EyeRenderParams, iter_eye_chunks
from simgan.gaze.standin import RealAppearanceParams, standin_domain

DOMAINS: dict[str, EyeDomain | None] = {
    "synthetic": None,
    "standin": standin_domain(RealAppearanceParams()),
    "mpii_like": mpii_like_domain(MpiiLikeParams()),
}


def render_eyes(n: int, seed: int, chunk: int, domain: EyeDomain | None) -> int:
    """Render ``n`` default-size eyes of ``domain`` (None: synthetic); returns the count."""
    total = 0
    for images, labels in iter_eye_chunks(EyeRenderParams(), n, seed=seed, chunk_size=chunk,
                                          domain=domain):
        total += images.shape[0]
        assert len(labels) == images.shape[0] and images.dtype == np.uint8
    return total


def measure(n: int, repeat: int, chunk: int, domain: EyeDomain | None) -> tuple[float, float]:
    """Best wall-clock and CPU-time images/s over ``repeat`` full renders of ``n`` images."""
    best_wall, best_cpu = 0.0, 0.0
    for r in range(repeat):
        t_wall, t_cpu = time.perf_counter(), time.process_time()
        total = render_eyes(n, r, chunk, domain)
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
    for name, domain in DOMAINS.items():
        wall, cpu = measure(args.n, args.repeat, args.chunk, domain)
        print(f"{name:10s} {wall:8.0f} images/s (wall)  {cpu:8.0f} images/s (CPU time)")


if __name__ == "__main__":
    main()
