"""``make bench``: every throughput figure of the project in one run, side by side.

    python -m benchmarks.bench [--quick | --tiny] [--out benchmarks/results.json]

Sections (each entry records the config it measured):
- gemm: the fp32 matrix-multiply rate of this machine (a ``torch.mm`` loop on large square
  matrices), before and after the refiner section: the higher of the two is the ceiling the
  nets' GFLOP/s are a share of;
- refiner_step: the project's S+U step against a plain PyTorch loop written in the benchmark
  (:mod:`benchmarks.refiner_step`), at the default eye, paper eye and default hand sizes: the
  ratio reference / project (target >= 1), FLOPs per step, GFLOP/s and its share of gemm;
- render: procedural renderer images/s (eyes, hands; synthetic and stand-in real);
- refine: images/s of applying a default-size refiner (:mod:`simgan.core.refiner.apply`);
- estimator_train: gaze CNN and hand hourglass training images/s at the default sizes;
- ingest: UnityEyes-format files/s into a dataset (in this process, no workers);
- stage_times: wall seconds of the latest run of each stage (MLflow), or "no make run on
  record";
- noop: seconds of `dvc status`, a no-op `dvc repro` and `make run`'s runner on the
  up-to-date workspace (skipped, running nothing, when a stage is out of date; ``--tiny``
  measures a one-stage project in a temporary directory instead).

Timing: fixed warm-up calls, then repeated calls and their median (:mod:`benchmarks.timing`).
``--quick`` shortens every section; ``--tiny`` shrinks sizes so that a test runs in seconds
(its figures mean nothing). The machine's load average is recorded: on a shared machine the
figures are low and noisy, the ratios less so (both sides of a ratio run interleaved).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script or a module, from anywhere

from benchmarks import refiner_step  # noqa: E402
from benchmarks.bench_ingest import run_once, write_fake_unityeyes  # noqa: E402
from benchmarks.bench_render import DOMAINS, render_eyes  # noqa: E402
from benchmarks.bench_render_hands import render_hands  # noqa: E402
from benchmarks.bench_train import gaze_step  # noqa: E402
from benchmarks.bench_train_pose import pose_calls  # noqa: E402
from benchmarks.stage_times import stage_times  # noqa: E402
from benchmarks.timing import median_rate  # noqa: E402
from flows.dvc_process import stage_environment  # noqa: E402
from simgan.core.refiner.apply import refine_images  # noqa: E402
from simgan.core.refiner.net import Refiner  # noqa: E402
from simgan.hand.render import HandRenderParams  # noqa: E402
from simgan.tasks import load_task_params  # noqa: E402

SECTIONS = ("gemm", "refiner_step", "render", "refine", "estimator_train", "ingest",
            "stage_times", "noop")


@dataclass(frozen=True)
class Mode:
    """How long each section measures (warm-up calls, timed calls, sizes)."""

    name: str
    warmup: int
    repeat: int
    step_repeat: int  # alternating project/reference rounds per refiner size
    gemm_n: int
    eyes: int  # images per render call
    hands: int
    refine: int
    ingest: int  # files
    tiny: bool = False


MODES = {
    "full": Mode("full", 2, 7, 12, 2048, 4096, 1024, 1024, 100),
    "quick": Mode("quick", 1, 3, 4, 1024, 2048, 512, 2048, 60),
    "tiny": Mode("tiny", 1, 2, 2, 128, 64, 32, 64, 6, tiny=True),
}


def machine() -> dict[str, Any]:
    return {"torch": torch.__version__, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.is_available(), "load_avg_1min": os.getloadavg()[0],
            "when_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def gemm(mode: Mode) -> dict[str, Any]:
    """fp32 GFLOP/s of ``torch.mm`` on two n x n matrices (2 n^3 FLOPs per product)."""
    n = mode.gemm_n
    a, b = torch.rand(n, n), torch.rand(n, n)
    out = torch.empty(n, n)
    r = median_rate(lambda: torch.mm(a, b, out=out), 2 * n**3, mode.warmup, mode.repeat)
    return {"config": {"n": n, "dtype": "float32"}, "gflops_per_s": r["per_s"] / 1e9, **r}


def refiner_steps(mode: Mode) -> list[dict[str, Any]]:
    out = []
    for cfg in refiner_step.step_configs(ROOT, tiny=mode.tiny):
        paper = "paper" in cfg.name and not mode.tiny  # the costly size: fewer rounds
        rounds = max(2, mode.step_repeat // 2) if paper else mode.step_repeat
        r = refiner_step.compare(cfg, 1 if paper else mode.warmup, rounds, 1)
        out.append(r)
    return out


def _rate(name: str, config: dict[str, Any], fn: Callable[[], object], items: float,
          mode: Mode, unit: str = "images_per_s") -> dict[str, Any]:
    r = median_rate(fn, items, mode.warmup, mode.repeat)
    return {"name": name, "config": config, unit: r.pop("per_s"), **r}


def render(mode: Mode) -> list[dict[str, Any]]:
    hand = load_task_params(ROOT / "params.yaml", "hand")
    chunk = 2048
    out = [_rate(f"eyes {name}", {"n": mode.eyes, "chunk": chunk, "domain": name},
                 lambda d=domain: render_eyes(mode.eyes, 0, chunk, d), mode.eyes, mode)
           for name, domain in DOMAINS.items() if name != "mpii_like"]
    size = 32 if mode.tiny else hand.render.hand.size
    params = HandRenderParams(size=size)
    threads = hand.render.threads
    for name, real in (("synthetic", False), ("standin", True)):
        out.append(_rate(f"hands {name}",
                         {"n": mode.hands, "size": size, "threads": threads, "domain": name},
                         lambda r=real: render_hands(params, mode.hands, 0, 1024, r, threads),
                         mode.hands, mode))
    return out


def refine(mode: Mode) -> list[dict[str, Any]]:
    """Refined images/s of the default eye and hand refiners (inference, batch of params)."""
    out = []
    for task in ("gaze", "hand"):
        p = load_task_params(ROOT / "params.yaml", task)
        net = p.refiner.net.model_copy(update={"width": 4, "blocks": 1}) if mode.tiny \
            else p.refiner.net
        shape = (p.render.eye.height, p.render.eye.width) if task == "gaze" \
            else (p.render.hand.size,) * 2
        torch.manual_seed(0)
        model = Refiner(in_channels=1, **net.model_dump())
        images = np.random.default_rng(0).integers(0, 256, (mode.refine, *shape), np.uint8)
        batch = p.refine.batch_size

        def run(m: torch.nn.Module = model, x: np.ndarray = images, b: int = batch) -> None:
            for _ in refine_images(m, x, b, "cpu"):
                pass

        out.append(_rate(f"{task} refiner", {"n": mode.refine, "image": list(shape),
                                             "batch_size": batch,
                                             "net": net.model_dump(mode="json")},
                         run, mode.refine, mode))
    return out


def estimator_train(mode: Mode) -> list[dict[str, Any]]:
    gaze = load_task_params(ROOT / "params.yaml", "gaze").estimator
    hand = load_task_params(ROOT / "params.yaml", "hand").estimator
    widths, fc = (gaze.widths, gaze.fc_hidden) if not mode.tiny else ((4, 4, 4, 4, 4), 8)
    batch = gaze.batch_size
    out = [_rate("gaze CNN", {"widths": list(widths), "fc_hidden": fc, "batch_size": batch,
                              "batch_norm": gaze.batch_norm, "channels_last": True},
                 gaze_step(widths, fc, batch, True, gaze.batch_norm), batch, mode)]
    size = 32 if mode.tiny else load_task_params(ROOT / "params.yaml", "hand").render.hand.size
    sizes = {"stacks": hand.stacks, "width": 8 if mode.tiny else hand.width,
             "depth": 1 if mode.tiny else hand.depth, "stem_stride": hand.stem_stride}
    _, step, _ = pose_calls(sizes, hand.batch_size, size)
    out.append(_rate("hand hourglass", {**sizes, "batch_size": hand.batch_size, "crop": size},
                     step, hand.batch_size, mode))
    return out


def ingest(mode: Mode) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_fake_unityeyes(folder, mode.ingest)
        r = median_rate(lambda: run_once(folder, 0, True, 4096), mode.ingest, mode.warmup,
                        mode.repeat)
    return {"config": {"files": mode.ingest, "format": "UnityEyes 640x480 jpg + json",
                       "workers": 0, "fast_jpeg": True},
            "files_per_s": r.pop("per_s"), **r}


def stage_seconds() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for task in ("gaze", "hand"):
        rows = stage_times(ROOT, task)
        out[task] = rows if rows else "no make run on record"
    return out


def _tiny_project(root: Path) -> None:
    """A one-stage DVC project, run once, to time the no-op commands on (``--tiny``)."""
    env = stage_environment(root, None)
    (root / "dvc.yaml").write_text("stages:\n  copy:\n    cmd: cp in.txt out.txt\n"
                                   "    deps: [in.txt]\n    outs: [out.txt]\n")
    (root / "in.txt").write_text("in\n")
    for cmd in (["init", "--no-scm", "-q"], ["repro", "-q"]):
        subprocess.run([sys.executable, "-m", "dvc", *cmd], cwd=root, env=env, check=True,
                       capture_output=True, timeout=300)


def noop(mode: Mode, root: Path = ROOT) -> dict[str, Any]:
    """Wall seconds of each no-op command, median over ``repeat`` runs after ``warmup``.

    Only an up-to-date project is timed (``dvc status`` reports nothing), so that the bench
    never starts a stage; the issue's target is a no-op ``dvc repro`` <= 3 s."""
    if mode.tiny:
        with tempfile.TemporaryDirectory() as tmp:
            _tiny_project(Path(tmp))
            return noop(dataclasses.replace(mode, tiny=False), Path(tmp))
    env = stage_environment(root, None)
    dvc = [sys.executable, "-m", "dvc"]
    status = subprocess.run([*dvc, "status", "--json"], cwd=root, env=env, text=True,
                            capture_output=True, timeout=600)
    if status.returncode != 0 or json.loads(status.stdout or "{}"):
        return {"skipped": "the workspace is not up to date (run `make run` first)"}
    commands = {"dvc status": [*dvc, "status"], "dvc repro": [*dvc, "repro"],
                "runner": [sys.executable, "-m", "flows.side_by_side", "--root", str(root)]}
    out: dict[str, Any] = {}
    for name, cmd in commands.items():
        seconds = []
        for _ in range(mode.warmup + mode.repeat):
            t0 = time.perf_counter()
            subprocess.run(cmd, cwd=root if name != "runner" else ROOT, env=env, check=True,
                           capture_output=True, timeout=600)
            seconds.append(time.perf_counter() - t0)
        timed = seconds[mode.warmup:]
        out[name] = {"median_s": statistics.median(timed), "min_s": min(timed),
                     "max_s": max(timed), "seconds": timed, "repeat": mode.repeat}
    return out


def run(mode: Mode, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every section, in order; returns what results.json holds."""
    results: dict[str, Any] = {"mode": mode.name, "mode_config": asdict(mode),
                               "machine": machine()}
    t0 = time.perf_counter()
    results["gemm"] = gemm(mode)
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("refiner_step", lambda: refiner_steps(mode)),
        ("render", lambda: render(mode)),
        ("refine", lambda: refine(mode)),
        ("estimator_train", lambda: estimator_train(mode)),
        ("ingest", lambda: ingest(mode)),
        ("stage_times", stage_seconds),
        ("noop", lambda: noop(mode)),
    ]
    for name, fn in steps:
        log(f"[bench] {name} ({time.perf_counter() - t0:.0f} s)")
        results[name] = fn()
        if name == "refiner_step":  # the ceiling again, after the longest section
            g = results["gemm"]
            g["gflops_per_s_after"] = gemm(mode)["gflops_per_s"]
            # the less disturbed of the two (other processes only ever lower a rate)
            g["ceiling_gflops_per_s"] = max(g["gflops_per_s"], g["gflops_per_s_after"])
            for r in results["refiner_step"]:
                r["share_of_gemm"] = r["gflops_per_s"] / g["ceiling_gflops_per_s"]
    results["machine"]["load_avg_1min_end"] = os.getloadavg()[0]
    results["seconds"] = time.perf_counter() - t0
    return results


def table(results: dict[str, Any]) -> str:
    """The results as a plain-text table (what ``make bench`` prints)."""
    m = results["machine"]
    lines = [f"simgan bench ({results['mode']}): torch {m['torch']}, {m['torch_threads']} "
             f"threads, {m['cpu_count']} CPUs, load {m['load_avg_1min']:.1f} -> "
             f"{m.get('load_avg_1min_end', float('nan')):.1f}, {results['seconds']:.0f} s",
             f"fp32 GEMM (torch.mm n={results['gemm']['config']['n']}): "
             f"{results['gemm']['gflops_per_s']:.1f} GFLOP/s before the refiner steps, "
             f"{results['gemm']['gflops_per_s_after']:.1f} after", "",
             "refiner S+U step      project ms  reference ms  ratio  (CPU time)  GFLOP/step  "
             "GFLOP/s  % GEMM  img/s"]
    for r in results["refiner_step"]:
        lines.append(f"{r['name']:<20} {r['project_s_per_step'] * 1e3:>11.1f} "
                     f"{r['reference_s_per_step'] * 1e3:>13.1f} {r['ratio']:>6.2f} "
                     f"{r['ratio_cpu_time']:>11.2f} "
                     f"{r['flops_per_step'] / 1e9:>11.2f} {r['gflops_per_s']:>8.1f} "
                     f"{100 * r['share_of_gemm']:>7.0f} {r['images_per_s']:>6.0f}")
    lines += ["", f"{'throughput':<32} {'rate':>10}"]
    for section, unit in (("render", "images_per_s"), ("refine", "images_per_s"),
                          ("estimator_train", "images_per_s")):
        for r in results[section]:
            lines.append(f"{section + ': ' + r['name']:<32} {r[unit]:>10.0f} images/s")
    lines.append(f"{'ingest: UnityEyes files':<32} {results['ingest']['files_per_s']:>10.0f}"
                 " files/s")
    lines.append("")
    for task, rows in results["stage_times"].items():
        if isinstance(rows, str):
            lines.append(f"make run stage times ({task}): {rows}")
            continue
        total = sum(r["seconds"] for r in rows)
        parts = ", ".join(f"{r['name']} {r['seconds']:.0f}" for r in rows)
        lines.append(f"make run stage times ({task}, s; total {total:.0f}): {parts}")
    lines.append("")
    if "skipped" in results["noop"]:
        lines.append(f"no-op: {results['noop']['skipped']}")
    else:
        lines.append("no-op (up to date), median s: " + ", ".join(
            f"{name} {r['median_s']:.2f}" for name, r in results["noop"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="shorter timings (about a minute)")
    size.add_argument("--tiny", action="store_true", help="tiny sizes: checks the harness")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.json")
    args = ap.parse_args(argv)
    mode = MODES["tiny" if args.tiny else "quick" if args.quick else "full"]
    results = run(mode, log=lambda s: print(s, file=sys.stderr, flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str) + "\n")
    tmp.replace(args.out)
    print(table(results))
    ratios = [r["ratio"] for r in results["refiner_step"]]
    print(f"\nrefiner step ratio (reference / project), median over sizes: "
          f"{statistics.median(ratios):.2f}; written {args.out}")


if __name__ == "__main__":
    main()
