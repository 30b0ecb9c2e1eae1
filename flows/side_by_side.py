"""Run DVC stages side by side: each ready stage in its own ``dvc repro --single-item``.

``dvc repro`` runs one stage at a time, although most stages of this pipeline are independent
(the two tasks, the real-trained estimator beside the refiner, the evaluations). DVC 3.67 holds
its repository lock only while it reads and writes ``dvc.lock``, and the read locks on deps are
shared, so stages whose upstream stages have finished can run in separate ``dvc repro
--single-item`` processes at the same time; DVC still decides whether each is out of date and
records it in ``dvc.lock``. At most ``max_parallel`` run at once (default: the cores over the
threads a trainer's recipe asks for), and the cores are split between them for what is not
training (``SIMGAN_THREADS``), since oversubscribed cores halve torch's throughput. Training
uses its recipe's ``threads`` key wherever it runs, so the results do not depend on
``max_parallel``.

The scheduling (:func:`run_side_by_side`) knows nothing of how a stage is started: ``make run``
starts plain DVC processes (this module's command line), the Prefect flow submits Prefect tasks
(``flows.pipeline --max-parallel``).

Command line (what ``make run`` uses)::

    python -m flows.side_by_side [--max-parallel N] [--force] [--dry-run] TARGET ...
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, TypedDict

__all__ = [
    "Outcome",
    "default_max_parallel",
    "main",
    "run_side_by_side",
    "threads_per_stage",
]

#: what one stage did: ``ran``, ``skipped`` (up to date), ``failed`` or ``not run``
DONE = ("ran", "skipped")


class Outcome(TypedDict):
    status: str
    seconds: float


class Handle(Protocol):
    """A started stage: a ``concurrent.futures.Future`` or a Prefect future both fit."""

    def done(self) -> bool: ...

    def result(self) -> Mapping[str, object]: ...


def cores() -> int:
    """The cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_threads(root: Path = Path(".")) -> int:
    """The torch threads one stage may use by default: ``SIMGAN_THREADS``, else the most any
    trainer's recipe asks for (the ``threads`` keys of ``root``'s params.yaml,
    :func:`recipe_threads`)."""
    raw = os.environ.get("SIMGAN_THREADS", "").strip()
    return max(1, int(raw)) if raw.isdigit() else recipe_threads(root / "params.yaml")


def recipe_threads(params_file: Path = Path("params.yaml")) -> int:
    """The most torch threads any task's trainer (refiner, estimators) trains with (their
    ``threads`` keys: part of each recipe, since the count changes the trained bytes on a
    CPU); 1 when the file is missing or invalid (the stages themselves then report why)."""
    from simgan.core.config import ParamsError
    from simgan.core.precision import most_trainer_threads
    from simgan.tasks import load_task_params, task_names

    try:
        return max(most_trainer_threads(load_task_params(params_file, task))
                   for task in task_names())
    except (OSError, ParamsError):
        return 1


def default_max_parallel(threads: int | None = None, root: Path = Path(".")) -> int:
    """How many stages at once by default: the cores divided by the threads per stage.

    Training stages use the threads of their recipe, whatever the runner gives them (the
    trained bytes depend on the count; docs/performance.md), so running stages side by side
    changes no result: with the default recipe (1 thread) every core runs a stage.
    """
    return max(1, cores() // max(1, threads or default_threads(root)))


def threads_per_stage(max_parallel: int) -> int:
    """The torch threads each of ``max_parallel`` stages gets: the cores split evenly."""
    return max(1, cores() // max(1, max_parallel))


def run_side_by_side(
    graph: Mapping[str, Sequence[str]],
    start: Callable[[str], Handle],
    max_parallel: int,
    *,
    poll_seconds: float = 0.2,
    log: Callable[[str], None] = print,
) -> tuple[dict[str, Outcome], dict[str, BaseException]]:
    """Start each stage of ``graph`` (name -> upstream names, upstream first) once all its
    upstream stages ran or were skipped, at most ``max_parallel`` at a time.

    Of the ready stages, the one heading the longest chain of stages still to come starts first
    (ties: graph order), so the refiners' chains start before the side branches that can fill
    in later (the real-trained estimator, the evaluations).

    After the first failure nothing new starts; the running stages finish, and the rest are
    ``not run``. Returns each stage's outcome and the exception of each failed stage.
    """
    if max_parallel < 1:
        raise ValueError(f"max_parallel must be >= 1, got {max_parallel}")
    chain = _chain_lengths(graph)
    pending = sorted(graph, key=lambda name: -chain[name])  # stable: graph order on ties
    running: dict[str, tuple[Handle, float]] = {}
    outcomes: dict[str, Outcome] = {}
    errors: dict[str, BaseException] = {}
    while pending or running:
        if not errors:
            for name in [n for n in pending if all(
                outcomes.get(u, {}).get("status") in DONE for u in graph[n]
            )]:
                if len(running) >= max_parallel:
                    break
                pending.remove(name)
                log(f"start {name}" + (f" (beside {', '.join(running)})" if running else ""))
                running[name] = (start(name), time.monotonic())
        if not running:
            if errors:
                break
            raise RuntimeError(f"no stage can start; is the graph acyclic? pending: {pending}")
        finished = [name for name, (handle, _) in running.items() if handle.done()]
        if not finished:
            time.sleep(poll_seconds)
            continue
        for name in finished:
            handle, started = running.pop(name)
            seconds = round(time.monotonic() - started, 3)
            try:
                status = str(handle.result().get("status", "ran"))
            except Exception as exc:
                errors[name] = exc
                outcomes[name] = Outcome(status="failed", seconds=seconds)
                log(f"FAILED {name} after {seconds:.1f} s: {exc}")
                continue
            outcomes[name] = Outcome(status=status, seconds=seconds)
            log(f"{status} {name} in {seconds:.1f} s")
    for name in pending:
        outcomes[name] = Outcome(status="not run", seconds=0.0)
    return outcomes, errors


def _chain_lengths(graph: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """For each stage, the number of stages on the longest path from it to the end."""
    below: dict[str, int] = dict.fromkeys(graph, 1)
    for name in reversed(list(graph)):  # downstream first
        for upstream in graph[name]:
            if upstream in below:
                below[upstream] = max(below[upstream], below[name] + 1)
    return below


def format_summary(outcomes: Mapping[str, Outcome], wall_seconds: float) -> str:
    """The per-stage table printed at the end (and logged by the flow)."""
    rows = [f"{name:<40} {o['status']:<8} {o['seconds']:>8.1f} s" for name, o in outcomes.items()]
    busy = sum(o["seconds"] for o in outcomes.values())
    rows.append(f"{'wall time':<40} {'':<8} {wall_seconds:>8.1f} s "
                f"(stages add up to {busy:.1f} s)")
    return "\n".join(["stage summary:", *rows])


class _PrefixLogger:
    """What ``flows.dvc_process.stream_dvc`` needs of a logger: lines printed with the stage."""

    def __init__(self, stage: str) -> None:
        self.prefix = f"[{stage}] "

    def info(self, message: str, *args: object) -> None:
        print(self.prefix + (message % args if args else message), flush=True)

    def warning(self, message: str, *args: object) -> None:
        print(self.prefix + (message % args if args else message), file=sys.stderr, flush=True)


def file_digests(paths: Sequence[Path]) -> dict[Path, str | None]:
    """md5 of each file (None when it is missing): what the always-run stages wrote."""
    return {path: hashlib.md5(path.read_bytes()).hexdigest() if path.is_file() else None
            for path in paths}


def _repro_one(root: Path, stage: str, force: bool, threads: int) -> dict[str, object]:
    """``dvc repro --single-item <stage>`` in its own process; raises on failure."""
    from flows.dvc_process import repro_single

    status, _ = repro_single(root, stage, _PrefixLogger(stage), force=force,
                             pipeline_id=os.environ.get("SIMGAN_PIPELINE_ID"), threads=threads)
    return {"status": status}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: run the targets' out-of-date stages side by side; exit 1 if a stage failed."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.side_by_side", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("targets", nargs="*", help="stages to bring up to date (default: all)")
    parser.add_argument("--max-parallel", type=int, default=None, metavar="N",
                        help="stages at once (default: cores / the trainers' threads key in "
                             "--root's params.yaml, or / SIMGAN_THREADS when set)")
    parser.add_argument("--force", action="store_true", help="rerun stages even if up to date")
    parser.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
    parser.add_argument("--root", default=".", help="DVC project root (default: cwd)")
    args = parser.parse_args(argv)
    max_parallel = args.max_parallel or default_max_parallel(root=Path(args.root))
    if max_parallel < 1:
        parser.error(f"--max-parallel must be >= 1, got {max_parallel}")

    from flows.dvc_wait import DvcLockTimeoutError, run_waiting, workspace_busy
    from flows.stage_graph import Changes, changed_stages, open_repo, stage_graph

    root = Path(args.root).resolve()
    logging.getLogger("dvc").setLevel(logging.WARNING)
    began = time.monotonic()
    try:  # another DVC process (a manual or scheduled repro) goes first; then read the graph
        run_waiting(lambda: (0, ""), busy=lambda: workspace_busy(root),
                    log=lambda message: print(f"[side_by_side] {message}", file=sys.stderr))
        with open_repo(root) as repo:  # one parse of dvc.yaml and dvc.lock for both questions
            graph = stage_graph(root, targets=args.targets or None, repo=repo)
            changes = (Changes(set(), set(graph), ()) if args.force
                       else changed_stages(root, graph, repo=repo))
    except (ValueError, DvcLockTimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outcomes: dict[str, Outcome] = {}
    errors: dict[str, BaseException] = {}
    planned: set[str] = set()
    always, stale = changes.always, changes.stale
    # The always-changed manifests first (unless behind a stale stage), then what is out of
    # date after them: DVC is asked again only if the first phase changed an output.
    phases = [{a for a in always if not any(u in stale for u in graph[a])}, None]
    before = file_digests(changes.always_outputs)
    with ThreadPoolExecutor(max_workers=max_parallel) as pool:
        for names in phases:
            if names is None:
                if (any(o["status"] == "ran" for o in outcomes.values())
                        and file_digests(changes.always_outputs) != before):
                    always, stale, _ = changed_stages(root, graph)
                names = (stale | always) - planned
            todo = {name: tuple(u for u in upstream if u in names)
                    for name, upstream in graph.items() if name in names}
            if not todo:
                continue
            planned |= set(todo)
            threads = threads_per_stage(min(max_parallel, len(todo)))
            print(f"{len(todo)} of {len(graph)} stage(s) to run, up to {max_parallel} at once, "
                  f"{threads} torch thread(s) each outside training: {', '.join(todo)}", flush=True)
            if args.dry_run:
                continue
            done, failed = run_side_by_side(
                todo, lambda name, t=threads: pool.submit(_repro_one, root, name, args.force, t),
                max_parallel,
            )
            outcomes.update(done)
            errors.update(failed)
            if errors:
                break
    if not outcomes and not args.dry_run:
        print("Data and pipelines are up to date.")
        return 0
    print(format_summary(outcomes, time.monotonic() - began), flush=True)
    for name, exc in errors.items():
        print(f"error: stage {name} failed: {exc}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
