"""Two training jobs on one machine: one after another, or side by side with the threads split
or kept, and with OpenMP's waiting threads spinning or sleeping.

Why: a stage's trained bytes depend on its torch thread count (oneDNN reduces in another
order), so running two stages side by side with the cores *split* between them changes every
trained model (docs/performance.md). Running them side by side with each keeping its thread
count oversubscribes the cores, which costs throughput when OpenMP's idle threads spin
(``OMP_WAIT_POLICY=ACTIVE``, or libgomp's default spin before sleeping) but may not when they
sleep (``PASSIVE``). This measures the four ways on the default eye refiner's S+U step and
checks whether each job's weights after the same steps are the same bytes as when it ran
alone with the same thread count.

    python -m benchmarks.bench_oversubscribe            # 40 steps per job
    python -m benchmarks.bench_oversubscribe --steps 5  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def job(steps: int, threads: int) -> dict[str, object]:
    """Run ``steps`` S+U steps of the default eye refiner from a fixed seed; the md5 of the
    refiner's weights afterwards and the wall time of the steps."""
    import torch

    from benchmarks.ddp_single_md5 import state_md5
    from benchmarks.refiner_step import project_step, step_configs

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = step_configs(ROOT)[0]
    trainer = project_step(cfg)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "md5": state_md5(trainer.refiner.state_dict()),
            "threads": threads}


def _start(steps: int, threads: int, policy: str | None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_oversubscribe", "--job",
         "--steps", str(steps), "--threads", str(threads)],
        env=env, stdout=subprocess.PIPE, text=True, cwd=ROOT)


def _finish(proc: subprocess.Popen[str]) -> dict[str, object]:
    out, _ = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"job failed with exit code {proc.returncode}")
    return json.loads(out.strip().splitlines()[-1])


def scenario(steps: int, threads: int, parallel: bool, policy: str | None) -> dict[str, object]:
    """Two identical jobs; wall time of both and each job's result."""
    t0 = time.perf_counter()
    if parallel:
        procs = [_start(steps, threads, policy) for _ in range(2)]
        results = [_finish(p) for p in procs]
    else:
        results = [_finish(_start(steps, threads, policy)) for _ in range(2)]
    return {"wall_s": time.perf_counter() - t0, "jobs": results, "threads": threads,
            "parallel": parallel, "omp_wait_policy": policy or "default"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--job", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.job:
        print(json.dumps(job(args.steps, args.threads)))
        return
    cores = os.cpu_count() or 1
    _finish(_start(2, cores, None))  # warm the page cache and import caches: not timed
    runs = [
        ("one after another, every core each", scenario(args.steps, cores, False, None)),
        ("one after another, every core each, sleeping",
         scenario(args.steps, cores, False, "PASSIVE")),
        ("side by side, cores split", scenario(args.steps, max(1, cores // 2), True, None)),
        ("side by side, every core each, spinning",
         scenario(args.steps, cores, True, "ACTIVE")),
        ("side by side, every core each, sleeping",
         scenario(args.steps, cores, True, "PASSIVE")),
    ]
    base = runs[0][1]
    reference = {r["threads"]: r["md5"] for r in base["jobs"]}  # type: ignore[index]
    print(f"{'two jobs of ' + str(args.steps) + ' S+U steps (eye default)':<44} "
          f"{'wall s':>8} {'vs first':>9}  same bytes as alone")
    for name, run in runs:
        jobs = run["jobs"]
        same = ("-" if run["threads"] not in reference else
                str(all(j["md5"] == reference[run["threads"]] for j in jobs)))  # type: ignore
        print(f"{name:<44} {run['wall_s']:8.1f} {run['wall_s'] / base['wall_s']:8.2f}x  {same}")
    if args.out:
        args.out.write_text(json.dumps(dict(runs), indent=1) + "\n")


if __name__ == "__main__":
    main()
