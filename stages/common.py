"""What every stage does the same way: arguments, params, threads, timing, clean errors."""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simgan.core.config import ParamsError
from simgan.core.ingest.common import IngestError, NoLabelsError
from simgan.core.task import Task
from simgan.tasks import get_task, load_task_params, task_names
from stages.layout import SOURCES, Layout


@dataclass(frozen=True)
class StageContext:
    task: Task
    params: Any
    layout: Layout
    source: str | None
    root: Path


def stage_parser(stage: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of ``python -m stages.<stage>``; ``--help`` shows ``doc`` (the module
    docstring) as is, so every stage explains itself where people first look."""
    return argparse.ArgumentParser(
        prog=f"python -m stages.{stage}",
        description=inspect.cleandoc(doc) if doc else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def parse(stage: str, with_source: bool = False, doc: str | None = None) -> argparse.Namespace:
    ap = stage_parser(stage, doc)
    ap.add_argument("--task", required=True, choices=task_names())
    if with_source:
        ap.add_argument("--source", required=True, choices=SOURCES)
    ap.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    return ap.parse_args()


def main(stage: str, body: Callable[[StageContext], None], with_source: bool = False) -> None:
    """Parse args, validate params before any work, run ``body``, report the wall time.

    Params errors exit with status 2 and a message naming the keys, without a traceback;
    bad input files and missing labels exit with status 1 and their message.
    """
    args = parse(stage, with_source, doc=body.__globals__.get("__doc__"))
    root = Path.cwd()
    try:
        params = load_task_params(root / args.params, args.task)
    except ParamsError as exc:
        print(f"stages.{stage}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    _limit_threads()
    ctx = StageContext(
        task=get_task(args.task),
        params=params,
        layout=Layout(root, args.task),
        source=getattr(args, "source", None),
        root=root,
    )
    t0 = time.perf_counter()
    try:
        body(ctx)
    except (IngestError, NoLabelsError) as exc:
        # bad input files or labels that are not there: the message says which and what to do
        print(f"stages.{stage}: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    label = f"{stage}@{args.task}" + (f"-{ctx.source}" if ctx.source else "")
    print(f"[simgan] {label} finished in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def _limit_threads() -> None:
    """Use the cores we have, no more (oversubscription halves CPU throughput)."""
    import torch

    n = int(os.environ.get("SIMGAN_THREADS", os.cpu_count() or 1))
    torch.set_num_threads(max(1, n))
