"""Throughput and memory of UnityEyes ingestion (the 1.2M-file case of the paper).

Run: ``python benchmarks/bench_ingest.py [--n 2000] [--workers 0 1 2]``. Writes ``--n``
UnityEyes-format pairs (640x480 JPEG with a drawn, textured eye + JSON in UnityEyes' string
style) to a temp directory, then ingests them into a dataset (index, decode, crop, write) once
per worker count, each run in a fresh process so that its peak RSS is its own. Prints files/s
(wall, including indexing and writing the dataset) and the peak RSS (getrusage) of the main
process and of the largest worker. Also indexes 1.2M synthetic file names to show what the
index of a full UnityEyes set costs (time, Python-level peak via tracemalloc). The machine
is shared: read the load average printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def _pt(x: float, y: float, z: float = 9.5) -> str:
    return f"({x:.4f}, {y:.4f}, {z:.4f})"


def write_fake_unityeyes(folder: Path, n: int, seed: int = 0, size=(640, 480)) -> None:
    """n pairs N.jpg + N.json; eyes of random position, size and gaze (y up in the JSON)."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.normal(0, 18, (h, w, 3))
    for i in range(1, n + 1):
        cx, cy = w / 2 + rng.uniform(-60, 60), h / 2 + rng.uniform(-40, 40)  # image, v down
        half = rng.uniform(45, 75)
        look = np.array([rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.3), -1.0])
        look /= np.linalg.norm(look)
        t = np.linspace(0, np.pi, 9)
        upper = np.stack([cx - half * np.cos(t), cy - 0.45 * half * np.sin(t)], 1)
        t2 = t[1:-1]
        lower = np.stack([cx + half * np.cos(t2), cy + 0.35 * half * np.sin(t2)], 1)
        interior = np.concatenate([upper, lower])
        r_eye = 1.1 * half
        ic = (cx + r_eye * 0.5 * look[0], cy - r_eye * 0.5 * look[1])
        ri = 0.45 * half
        a = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        iris = np.stack([ic[0] + ri * np.cos(a), ic[1] + ri * np.sin(a)], 1)
        skin = np.clip(np.array([180, 140, 120]) + base[np.roll(np.arange(h), i)], 0, 255)
        img = Image.fromarray(skin.astype(np.uint8))
        d = ImageDraw.Draw(img)
        d.polygon([tuple(p) for p in interior], fill=(230, 225, 220))
        d.ellipse([ic[0] - ri, ic[1] - ri, ic[0] + ri, ic[1] + ri], fill=(80, 60, 40))
        d.ellipse([ic[0] - ri / 3, ic[1] - ri / 3, ic[0] + ri / 3, ic[1] + ri / 3], fill=(8, 8, 8))
        img = img.filter(ImageFilter.GaussianBlur(1.0))
        img.save(folder / f"{i}.jpg", quality=90)

        def unity(pts):
            return [_pt(u + 0.5, h - v - 0.5) for u, v in pts]

        car = interior[0] + rng.normal(0, 3, (7, 2)) - [8, 0]
        data = {
            "interior_margin_2d": unity(interior),
            "caruncle_2d": unity(car),
            "iris_2d": unity(iris),
            "eye_details": {"look_vec": f"({look[0]:.4f}, {look[1]:.4f}, {look[2]:.4f}, 0.0000)",
                            "pupil_size": "0.0123414", "iris_size": "0.9058223",
                            "iris_texture": "eyeball_brown"},
            "head_pose": "(351.2000, 178.9000, 0.0000)",
            "lighting_details": {"skybox_texture": "cape_hill", "skybox_exposure": "1.1",
                                 "skybox_rotation": "110", "ambient_intensity": "0.8",
                                 "light_rotation": "(14.0, 222.0, 0.0)",
                                 "light_intensity": "1.0"},
            "eye_region_details": {"primary_skin_texture": "m01_color",
                                   "head_texture": "m01", "eye_texture": "eyeball_brown",
                                   "shape_weights": [str(x) for x in rng.normal(0, 1, 40)]},
        }
        (folder / f"{i}.json").write_text(json.dumps(data, indent=4))


@contextlib.contextmanager
def fake_unityeyes_folder(folder: Path | None, n: int) -> Iterator[Path]:
    """``n`` fake UnityEyes pairs in ``folder`` (kept; written unless it already holds ``n``),
    or in a temporary directory removed afterwards."""
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder.mkdir(parents=True, exist_ok=True)
        if len(list(folder.glob("*.json"))) != n:
            t0 = time.perf_counter()
            write_fake_unityeyes(folder, n)
            print(f"wrote {n} UnityEyes-format pairs (640x480 jpg + json) in "
                  f"{time.perf_counter() - t0:.1f} s")
        yield folder


def run_once(folder: Path, workers: int, fast_jpeg: bool, chunk: int) -> dict:
    """Ingest ``folder`` into a temp dataset; returns timings and memory (this process)."""
    from simgan.core.dataset import write_dataset
    from simgan.gaze.readers.sources import UnityEyesSource, plan_splits

    t0 = time.perf_counter()
    src = UnityEyesSource(path=folder, test_fraction=0.0, workers=workers, fast_jpeg=fast_jpeg)
    plan = plan_splits(src, chunk_size=chunk)["train"]
    t_index = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as out:
        ds = write_dataset(Path(out) / "d", plan.chunks(), plan.n, plan.image_shape, plan.dtype,
                           plan.meta, allow_fewer=True, late_meta=plan.late_meta)
        n = len(ds)
    wall = time.perf_counter() - t0
    kb = 1024.0
    return {
        "workers": workers, "fast_jpeg": fast_jpeg, "files": n, "seconds": wall,
        "index_s": t_index, "files_per_s": n / wall,
        "rss_main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kb,
        "rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / kb,
    }


def index_million(n: int) -> dict:
    """Index n synthetic UnityEyes names (n images + n JSONs) without touching the disk."""
    from simgan.gaze.readers.unityeyes import index_names

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    names = (f"{i // 2 + 1}.{'jpg' if i % 2 else 'json'}" for i in range(2 * n))
    idx = index_names("/unityeyes", names)
    units = idx.units()
    seconds = time.perf_counter() - t0
    assert len(units) == n and units[0:2][1].image == "/unityeyes/2.jpg"
    kept = sum(a.nbytes for a in (idx.stems, idx.has_json, idx.image_ext))
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    return {"files": 2 * n, "seconds": seconds, "rss_growth_mb": grown / 1024,
            "kept_mb": kept / 2**20}


def labels_at_scale(folder: Path, rows: int, chunk: int) -> dict:
    """Peak memory of writing ``rows`` UnityEyes label rows (one real decoded row repeated)
    with 1x1 images: the label table is what grows with the dataset in the main process."""
    import pandas as pd

    from simgan.core.dataset import write_dataset
    from simgan.gaze.readers.unityeyes import UnityEyesOptions, decode_sample, index_directory

    _, lab, _ = decode_sample(index_directory(folder).units()[0:1][0], UnityEyesOptions())
    row = pd.DataFrame(lab)
    block = pd.concat([row] * chunk, ignore_index=True)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def chunks():
        for lo in range(0, rows, chunk):
            k = min(chunk, rows - lo)
            b = block.iloc[:k].copy()
            b["id"] = np.arange(lo, lo + k)
            yield np.zeros((k, 1, 1), np.uint8), b

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        write_dataset(Path(out) / "d", chunks(), rows, (1, 1), "uint8", {})
        size = (Path(out) / "d" / "labels.parquet").stat().st_size
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    return {"rows": rows, "columns": row.shape[1], "seconds": time.perf_counter() - t0,
            "rss_growth_mb": grown / 1024, "parquet_mb": size / 2**20}


def steady_rate(folder: Path, workers: int, batches: int = 24) -> float:
    """Files/s of a warm pool (spawned and imported before the clock starts)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from simgan.core.ingest.driver import run_batch
    from simgan.gaze.readers.unityeyes import UnityEyesOptions, decode_sample, index_directory

    units = index_directory(folder).units()
    opt = UnityEyesOptions()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as ex:
        for f in [ex.submit(run_batch, decode_sample, units[0:1], opt, False)
                  for _ in range(workers)]:
            f.result()
        t0 = time.perf_counter()
        futs = [ex.submit(run_batch, decode_sample, units[64 * i : 64 * (i + 1)], opt, False)
                for i in range(batches)]
        n = sum(len(f.result().items) for f in futs)
        return n / (time.perf_counter() - t0)


def run_child(script: str, args: list[str], unset: tuple[str, ...] = ()) -> dict:
    """Run ``script args`` in a fresh interpreter (a cold start per measurement) and return
    the JSON of its last stdout line; ``unset``: variables the child must not inherit."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for name in unset:
        env.pop(name, None)
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _child(args: list[str]) -> dict:
    return run_child(__file__, args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--chunk", type=int, default=4096)
    ap.add_argument("--dir", type=Path, default=None, help="reuse/keep the fake files here")
    ap.add_argument("--index-n", type=int, default=1_200_000)
    ap.add_argument("--_run", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._run:  # child: one measurement, JSON on stdout
        what, *rest = args._run.split(",")
        if what == "ingest":
            r = run_once(args.dir, int(rest[0]), rest[1] == "1", args.chunk)
        elif what == "steady":
            r = {"files_per_s": steady_rate(args.dir, int(rest[0]))}
        elif what == "index":
            r = index_million(int(rest[0]))
        else:
            r = labels_at_scale(args.dir, int(rest[0]), args.chunk)
        print(json.dumps(r))
        return

    with fake_unityeyes_folder(args.dir, args.n) as folder:
        _compare(folder, args)


def _compare(folder: Path, args: argparse.Namespace) -> None:
    """The measurements of ``main`` on the fixture files in ``folder``, one child each."""
    mb = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
    common = ["--dir", str(folder), "--chunk", str(args.chunk)]
    print(f"ingest of {args.n} files ({mb:.0f} MB) into a dataset, chunk {args.chunk}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"{'workers':>7} {'fast_jpeg':>9} {'files/s':>8} {'s':>6} {'index s':>7} "
          f"{'RSS main MB':>11} {'RSS worker MB':>13}")
    for fast in (True, False):
        for w in args.workers:
            r = _child([*common, "--_run", f"ingest,{w},{int(fast)}"])
            print(f"{w:>7} {str(fast):>9} {r['files_per_s']:>8.0f} {r['seconds']:>6.1f} "
                  f"{r['index_s']:>7.2f} {r['rss_main_mb']:>11.0f} {r['rss_worker_mb']:>13.0f}")
    for w in [w for w in args.workers if w > 0]:
        r = _child([*common, "--_run", f"steady,{w}"])
        print(f"warm pool, {w} worker(s), fast_jpeg: {r['files_per_s']:.0f} files/s "
              f"(load {os.getloadavg()[0]:.2f})")
    if args.index_n:
        r = _child([*common, "--_run", f"index,{args.index_n}"])
        print(f"index of {r['files']:,} names: {r['seconds']:.1f} s, RSS growth "
              f"{r['rss_growth_mb']:.0f} MB, index kept {r['kept_mb']:.0f} MB")
        r = _child([*common, "--_run", f"labels,{args.index_n}"])
        print(f"label table of {r['rows']:,} rows x {r['columns']} columns through "
              f"write_dataset: {r['seconds']:.1f} s, RSS growth {r['rss_growth_mb']:.0f} MB, "
              f"parquet {r['parquet_mb']:.0f} MB")


if __name__ == "__main__":
    main()
