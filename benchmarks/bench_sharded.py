"""Ingestion files/s in this process, in the local process pool, and sharded on 1 and 2 Dask
workers (flows/sharded.py: a Prefect flow on DaskTaskRunner), on UnityEyes-format files.

Run: ``python benchmarks/bench_sharded.py [--n 2000] [--dask 1 2] [--dir DIR]``. Writes
``--n`` UnityEyes pairs (640x480 JPEG + JSON, benchmarks/bench_ingest.py) once, then ingests
them into a dataset once per engine, each in a fresh process. For Dask, a LocalCluster of
that many worker processes (1 thread each) is started and warmed first (workers import the
readers; the Prefect API starts) with a 16-file run, so the figure is the steady rate of the
engine; the one-off start-up is printed apart. Every run's images.npy and labels.parquet are
checked to be the single-process bytes. The machine is shared: read the load average printed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_ingest, run as a script


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for name in ("images.npy", "labels.parquet", "meta.json"):
        h.update((path / name).read_bytes())
    return h.hexdigest()[:16]


FAST_JPEG = os.environ.get("BENCH_FAST_JPEG", "1") == "1"


def _ingest(folder: Path, out: Path, workers: int, chunk: int) -> tuple[int, float]:
    """Index and ingest ``folder`` with the render stage's writer (stages/datasets_io.py)."""
    from simgan.gaze.readers.sources import UnityEyesSource, plan_splits
    from stages.datasets_io import write_split

    t0 = time.perf_counter()
    src = UnityEyesSource(path=folder, test_fraction=0.0, workers=workers,
                          fast_jpeg=FAST_JPEG)
    plan = plan_splits(src, chunk_size=chunk)["train"]
    ds = write_split(out, plan, {"split": "train"}, "ingest")
    return len(ds), time.perf_counter() - t0


def run_local(folder: Path, workers: int, chunk: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        n, seconds = _ingest(folder, Path(tmp) / "d", workers, chunk)
        return {"files": n, "seconds": seconds, "digest": _digest(Path(tmp) / "d")}


def run_dask(folder: Path, workers: int, chunk: int) -> dict:
    """Start a LocalCluster, warm it on 16 files, then time the whole folder."""
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address="127.0.0.1:0")
    try:
        with Client(cluster) as client:
            client.wait_for_workers(workers, timeout=300)
        os.environ.update({"SIMGAN_SHARDS": "dask", "SIMGAN_DASK_ADDRESS":
                           cluster.scheduler_address})
        with tempfile.TemporaryDirectory() as tmp:
            warm = Path(tmp) / "warm"
            warm.mkdir()
            for p in sorted(folder.glob("*"), key=lambda p: p.name)[:32]:
                shutil.copy(p, warm / p.name)
            _ingest(warm, Path(tmp) / "w", 0, chunk)
            startup = time.perf_counter() - t0
            n, seconds = _ingest(folder, Path(tmp) / "d", 0, chunk)
            return {"files": n, "seconds": seconds, "startup_s": startup,
                    "digest": _digest(Path(tmp) / "d")}
    finally:
        cluster.close(timeout=60)


def _child(args: list[str]) -> dict:
    from bench_ingest import run_child

    return run_child(__file__, args, unset=("SIMGAN_SHARDS",))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--pool", type=int, nargs="*", default=[2],
                    help="local process-pool sizes to measure too (source `workers`)")
    ap.add_argument("--dask", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--dir", type=Path, default=None, help="reuse/keep the fake files here")
    ap.add_argument("--full-jpeg", action="store_true",
                    help="fast_jpeg: false (decode every JPEG at full size: 4-5x the work)")
    ap.add_argument("--_run", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.full_jpeg:
        os.environ["BENCH_FAST_JPEG"] = "0"  # children inherit it
    if args._run:  # child: one measurement, JSON on stdout
        what, workers = args._run.split(",")
        run = run_dask if what == "dask" else run_local
        print(json.dumps(run(args.dir, int(workers), args.chunk)))
        return

    from bench_ingest import fake_unityeyes_folder

    with fake_unityeyes_folder(args.dir, args.n) as folder:
        _compare(folder, args)


def _compare(folder: Path, args: argparse.Namespace) -> None:
    """Each engine on the fixture files in ``folder``, one child each, bytes checked."""
    common = ["--dir", str(folder), "--chunk", str(args.chunk)]
    print(f"ingest of {args.n} UnityEyes files (640x480 jpg + json), fast_jpeg "
          f"{not args.full_jpeg}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"{'engine':<28} {'files/s':>8} {'s':>7} {'start-up s':>10}  same bytes")
    runs = [("this process (workers: 0)", "local,0")]
    runs += [(f"process pool (workers: {w})", f"local,{w}") for w in args.pool]
    runs += [(f"Dask, {w} worker(s)", f"dask,{w}") for w in args.dask]
    reference = None
    for name, spec in runs:
        r = _child([*common, "--_run", spec])
        reference = reference or r["digest"]
        start = f"{r['startup_s']:>10.1f}" if "startup_s" in r else f"{'-':>10}"
        print(f"{name:<28} {r['files'] / r['seconds']:>8.1f} {r['seconds']:>7.1f} {start}  "
              f"{r['digest'] == reference}  (load {os.getloadavg()[0]:.2f})", flush=True)


if __name__ == "__main__":
    main()
