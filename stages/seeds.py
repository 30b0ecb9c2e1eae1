"""`make seeds`: the refiner-seed spread as DVC experiments, then reports/<task>/seeds.{md,json}.

    python -m stages.seeds --tasks gaze hand --seeds 0 1 2
    python -m stages.seeds --tasks gaze --seeds 0 1 2 --report-only   # re-read, no runs

1. ``compare@<task>`` brought up to date in the workspace, stages side by side (what `make
   run` does): that is the seed of params.yaml, and the baseline every experiment starts from
   (its dvc.lock).
2. Every other seed is queued as an experiment ``seeds-<task>-<seed>`` (``dvc exp run --queue
   -S <task>.refiner.train.seed=N compare@<task>``) and the queue runs with one worker per
   stage the cores hold side by side (``flows.side_by_side.default_max_parallel``: training
   uses its recipe's threads, so the workers change the wall time, not the results). Each
   runs in a temporary copy of the repo where DVC restores from its cache every stage the seed
   does not touch (render, real, the synthetic and real estimators and their evaluations) and
   reruns the others; nothing in the workspace changes (params.yaml, which ``-S`` edits while
   queueing, is put back byte for byte and checked).
3. The report reads each experiment through ``dvc exp show --json``: its params (the seed is
   checked) and its state (a failed experiment is reported as failed), then its
   comparison.json (a cached output, read with ``dvc.api.read`` at the experiment's commit,
   i.e. through its lock file); the stages each experiment ran come from its log (``dvc queue
   logs``). Why exp show and not ``exp apply``: it reads every experiment without touching the
   workspace, and sees the failed ones.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simgan.core.dataset import atomic_write_text
from simgan.core.seeds import SeedRun, render_markdown, summarize
from simgan.tasks import get_task, load_task_params, task_names
from stages.common import stage_parser
from stages.layout import Layout

SEED_PARAM = "{task}.refiner.train.seed"
QUEUE_LOG = Path("reports") / "seeds_queue.log"
_RAN = re.compile(r"Running stage '([^']+)'")


def experiment_name(task: str, seed: int) -> str:
    return f"seeds-{task}-{seed}"


def dvc(*args: str, capture: bool = True, check: bool = True) -> subprocess.CompletedProcess:
    """Run the dvc CLI of this environment in the project root (the cwd)."""
    proc = subprocess.run(["dvc", *args], capture_output=capture, text=True)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip() if capture else ""
        raise SystemExit(f"stages.seeds: dvc {' '.join(args)} failed ({proc.returncode})"
                         + (f":\n{detail}" if detail else ""))
    return proc


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True)


def workspace_seeds(root: Path, tasks: Sequence[str]) -> dict[str, int]:
    """The refiner seed params.yaml holds per task: the workspace's own run."""
    return {t: load_task_params(root / "params.yaml", t).refiner.train.seed for t in tasks}


# ------------------------------------------------------------------------------ running


def prepare_queue(names: Sequence[str], baseline: str) -> None:
    """The queue must hold nothing else (``--run-all`` would run it too), dvc.lock must be in
    git (a queued experiment is built from git: without the lock, every stage reruns), and
    earlier experiments with our names go (DVC refuses a duplicate name)."""
    pending = [line.split() for line in dvc("queue", "status").stdout.splitlines()[1:]
               if line.split()[-1:] in (["Queued"], ["Running"])]
    others = [f[1] for f in pending if f[1] not in names]  # ours (an interrupted run) go
    if others:
        raise SystemExit(f"stages.seeds: the experiment queue already holds {others}: run or "
                         "remove them first (dvc queue status; dvc exp remove --queue)")
    if git("ls-files", "--error-unmatch", "dvc.lock").returncode != 0:
        print("stages.seeds: dvc.lock is not in git; adding it to the index (queued "
              "experiments are built from git)", file=sys.stderr)
        if git("add", "dvc.lock").returncode != 0:
            raise SystemExit("stages.seeds: git add dvc.lock failed")
    shown = exp_show(baseline)
    existing = {e["name"] for e in baseline_experiments(shown, baseline) if e.get("name")}
    old = sorted(set(names) & existing)
    if old:
        dvc("exp", "remove", *old)
        print(f"stages.seeds: removed earlier experiments {old}", file=sys.stderr)


def queue(root: Path, plan: Sequence[tuple[str, int]]) -> None:
    """Queue one experiment per (task, seed); params.yaml is restored byte for byte after."""
    params = root / "params.yaml"
    before = params.read_bytes()
    try:
        for task, seed in plan:
            dvc("exp", "run", "--queue", "-n", experiment_name(task, seed),
                "-S", f"{SEED_PARAM.format(task=task)}={seed}", f"compare@{task}")
    finally:
        if params.read_bytes() != before:
            params.write_bytes(before)
            print("stages.seeds: params.yaml restored after queueing", file=sys.stderr)


#: where DVC 3's experiment queue keeps the control messages its workers read (kombu's
#: filesystem transport): requests such as "shutdown" wait there for a worker of that name
BROKER_INBOX = Path(".dvc") / "tmp" / "exps" / "celery" / "broker" / "in"


def clear_stale_requests(root: Path) -> list[Path]:
    """Delete the worker control requests left in DVC's broker when no worker is alive.

    A ``dvc queue stop`` sent when the workers had already gone stays there, and the next
    workers of the same name obey it on start ("Got shutdown from remote"): each runs one
    experiment and stops, and ``dvc exp run --run-all`` then waits forever for the rest (seen
    on December 3: 2 of 4 experiments ran). With no worker alive nobody can be waiting for an
    answer, so the requests are stale. Returns the files deleted."""
    if "0 active, 0 idle" not in dvc("queue", "status").stdout:
        return []
    stale = sorted((root / BROKER_INBOX).glob("*.celery.pidbox.msg"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def run_queue(root: Path) -> dict[str, float]:
    """``dvc exp run --run-all`` with as many workers as stages fit side by side, the cores
    split between them for what is not training, its output shown and kept in
    reports/seeds_queue.log; returns the wall time of the queue (with several workers DVC
    shows one experiment's output at a time, so its lines do not tell when each started).
    MLflow runs go to the project's database (not the experiments' temporary copies), tagged
    with one pipeline id. No ``dvc queue stop`` afterwards: sent after the workers have gone,
    it would stop the next ones (:func:`clear_stale_requests`); an idle worker exits by itself
    within a minute."""
    from flows.side_by_side import default_max_parallel, threads_per_stage

    stale = clear_stale_requests(root)
    if stale:
        print(f"stages.seeds: removed {len(stale)} stale worker request(s) from DVC's queue "
              f"broker ({BROKER_INBOX})", file=sys.stderr)
    workers = default_max_parallel(root=root)
    env = dict(os.environ)
    env.setdefault("SIMGAN_THREADS", str(threads_per_stage(workers)))
    env.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{root.resolve() / 'mlflow.db'}")
    env.setdefault("SIMGAN_PIPELINE_ID", f"seeds-{time.strftime('%Y%m%dT%H%M%S')}")
    log_path = root / QUEUE_LOG
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log_path, "w") as log, subprocess.Popen(
        ["dvc", "exp", "run", "--run-all", "-j", str(workers)], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            log.write(line)
    if proc.returncode != 0:
        raise SystemExit(f"stages.seeds: dvc exp run --run-all failed ({proc.returncode}); "
                         f"see {QUEUE_LOG}")
    return {f"queue ({workers} worker(s))": time.perf_counter() - t0}


# ------------------------------------------------------------------------------ reading


def exp_show(baseline: str) -> list[dict[str, Any]]:
    return json.loads(dvc("exp", "show", "--json", "--rev", baseline).stdout)


def head_rev() -> str:
    return git("rev-parse", "HEAD").stdout.strip()


def baseline_experiments(shown: list[dict[str, Any]], baseline: str) -> list[dict[str, Any]]:
    """The experiments of ``baseline`` (queued, running, failed and finished), oldest first.

    The baseline is the commit the experiments were queued from, taken before queueing: a
    commit made while the queue runs moves HEAD, and HEAD's experiments are then none."""
    for entry in shown:
        if entry.get("rev") == baseline:
            return list(reversed(entry.get("experiments") or []))
    return []


def read_experiment(exp: dict[str, Any] | None, task: str, seed: int) -> SeedRun:
    """A seed's SeedRun from its ``dvc exp show`` entry (None: there is none)."""
    name = experiment_name(task, seed)
    if exp is None:
        return SeedRun(seed, None, name, error="no such experiment (was it queued?)")
    state = (exp.get("executor") or {}).get("state", "success")
    rev = exp["revs"][0]
    ran = stages_run(name)
    if state != "success" or rev.get("error"):
        return SeedRun(seed, None, name, error=failure(name, state, rev), stages_run=ran)
    data = rev.get("data") or {}
    got = (data.get("params", {}).get("params.yaml", {}).get("data", {})
           .get(task, {}).get("refiner", {}).get("train", {}).get("seed"))
    if got != seed:
        return SeedRun(seed, None, name, error=f"its params have seed {got}", stages_run=ran)
    try:
        comparison = read_comparison(rev["rev"], task)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is that seed's failure
        return SeedRun(seed, None, name, stages_run=ran,
                       error=f"comparison.json unreadable: {type(exc).__name__}: {exc}")
    return SeedRun(seed, comparison, name, stages_run=ran)


def read_comparison(rev: str, task: str) -> dict[str, Any]:
    """An experiment's comparison.json, from DVC's cache through the lock file of ``rev``."""
    import dvc.api

    return json.loads(dvc.api.read(f"reports/{task}/comparison.json", repo=".", rev=rev))


def stages_run(name: str) -> tuple[str, ...] | None:
    """The stages an experiment executed (its log's "Running stage" lines), None if no log."""
    proc = dvc("queue", "logs", name, check=False)
    return tuple(_RAN.findall(proc.stdout)) if proc.returncode == 0 else None


def failure(name: str, state: str, rev: dict[str, Any]) -> str:
    """Why an experiment has no results: its log's first ERROR line, else DVC's state."""
    proc = dvc("queue", "logs", name, check=False)
    errors = [line.removeprefix("ERROR:").strip() for line in proc.stdout.splitlines()
              if line.startswith("ERROR")]
    if errors:
        return errors[0]
    return (rev.get("error") or {}).get("msg") or f"experiment {state}"


def collect(root: Path, task: str, seeds: Sequence[int], own_seed: int,
            baseline: str) -> list[SeedRun]:
    """Every seed's result: the workspace for its own seed, an experiment of ``baseline`` for
    the others."""
    by_name = {e.get("name"): e for e in baseline_experiments(exp_show(baseline), baseline)}
    runs = []
    for seed in seeds:
        if seed == own_seed:
            path = Layout(root, task).reports / "comparison.json"
            runs.append(SeedRun(seed, json.loads(path.read_text()), "workspace"))
        else:
            runs.append(read_experiment(by_name.get(experiment_name(task, seed)), task, seed))
    return runs


def write_reports(root: Path, task: str, runs: Sequence[SeedRun]) -> dict[str, Any]:
    t = get_task(task)
    columns = t.table_columns(load_task_params(root / "params.yaml", task))
    report = summarize(runs, task=task, headline=t.headline,
                       higher_is_better=t.headline_higher_is_better, columns=columns)
    out = Layout(root, task).reports
    atomic_write_text(out / "seeds.json", json.dumps(report, indent=2) + "\n")
    atomic_write_text(out / "seeds.md",
                      render_markdown(report, columns, SEED_PARAM.format(task=task)))
    return report


# ------------------------------------------------------------------------------ main


def run(root: Path, tasks: Sequence[str], seeds: Sequence[int], report_only: bool,
        baseline: str | None = None) -> None:
    """Baseline, queue, run, report; prints where the time went. ``baseline``: the commit the
    experiments were queued from (default: HEAD, read before anything is queued)."""
    baseline = baseline or head_rev()
    clock: dict[str, float] = {}
    t0 = time.perf_counter()
    own = workspace_seeds(root, tasks)
    targets = [f"compare@{t}" for t in tasks]
    if not report_only:
        from flows.side_by_side import main as side_by_side

        if side_by_side(["--root", str(root), *targets]) != 0:
            raise SystemExit("stages.seeds: the workspace run failed (above)")
    elif "up to date" not in dvc("status", *targets).stdout:
        raise SystemExit("stages.seeds: the workspace is not up to date: `make run` first")
    clock["workspace repro"] = time.perf_counter() - t0
    plan = [(t, s) for t in tasks for s in seeds if s != own[t]]
    if plan and not report_only:
        t0 = time.perf_counter()
        prepare_queue([experiment_name(t, s) for t, s in plan], baseline)
        queue(root, plan)
        clock["queueing"] = time.perf_counter() - t0
        clock.update(run_queue(root))
    t0 = time.perf_counter()
    for task in tasks:
        report = write_reports(root, task, collect(root, task, seeds, own[task], baseline))
        failed = f", failed seeds {report['failed']}" if report["failed"] else ""
        print(f"[simgan] seeds@{task}: reports/{task}/seeds.md{failed}", file=sys.stderr)
    clock["report"] = time.perf_counter() - t0
    print("[simgan] seeds: " + ", ".join(f"{k} {v:.0f} s" for k, v in clock.items()),
          file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> None:
    ap = stage_parser("seeds", __doc__)
    ap.add_argument("--tasks", nargs="+", default=list(task_names()), choices=task_names())
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--report-only", action="store_true",
                    help="only read the experiments already run and write the reports")
    ap.add_argument("--baseline", metavar="REV",
                    help="the commit the experiments were queued from (default: HEAD)")
    args = ap.parse_args(argv)
    seeds = list(dict.fromkeys(args.seeds))
    baseline = git("rev-parse", args.baseline).stdout.strip() if args.baseline else None
    run(Path.cwd(), args.tasks, seeds, args.report_only, baseline)


if __name__ == "__main__":
    main()
