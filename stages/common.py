"""What every stage does the same way: arguments, params, threads, timing, clean errors."""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simgan.core.launch import DistributedError, env_ranks, is_main_process, local_world_size
from simgan.core.task import Task
from simgan.core.tracking import Provenance
from simgan.tasks import get_task, load_task_params, task_names
from stages.allocator import keep_freed_memory
from stages.failures import reported
from stages.layout import SOURCES, Layout
from stages.ownership import own_outputs
from stages.provenance import provenance

#: stages that train data-parallel under torchrun (docs/scale.md, "Data-parallel training");
#: the others refuse it, since every rank would write the same outputs
DATA_PARALLEL = frozenset({"train_refiner", "train_estimator"})
#: stages that run no torch: they do not import it (1-2 s of start-up) just to limit its
#: threads; the manifest stage runs on every `dvc repro`, so its start-up is the no-op's cost
WITHOUT_TORCH = frozenset({"manifest"})


@dataclass(frozen=True)
class StageContext:
    task: Task
    params: Any
    layout: Layout
    source: str | None
    root: Path
    provenance: Provenance


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

    How failures end (one line, a summary over a traceback, KILLED runs on a signal) and
    their exit statuses: stages/failures.py.
    """
    args = parse(stage, with_source, doc=body.__globals__.get("__doc__"))
    _log_to_stderr()
    with reported(stage):
        _run(stage, body, args)
    if _own_process(stage):
        _exit_without_teardown()


def _own_process(stage: str) -> bool:
    """Whether this process was started as ``python -m stages.<stage>`` (not a test calling
    :func:`main`, nor another module's process)."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None) == f"stages.{stage}"


def _exit_without_teardown() -> None:
    """End a finished stage's process without the interpreter's module teardown.

    With torch, MLflow (SQLAlchemy) and pandas loaded, CPython's finalisation takes ~1.5 s on
    this machine's cores, after every output is written and every run closed: 25 stages per
    ``make run`` spent ~40 s on it. What a normal exit does before that teardown still runs,
    in its order: other threads are joined and thread pools finish their queued work
    (``threading._shutdown``), the exit handlers run (``atexit``: the DDP process group's
    teardown, MLflow's), then logging and the standard streams are flushed.
    """
    import atexit
    import threading

    threading._shutdown()  # type: ignore[attr-defined]  # the interpreter's first exit step
    atexit._run_exitfuncs()  # its second; os._exit skips both
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _run(stage: str, body: Callable[[StageContext], None], args: argparse.Namespace) -> None:
    root = Path.cwd()
    if env_ranks()[0] > 1 and stage not in DATA_PARALLEL:
        raise DistributedError(f"{stage} runs in one process; start it without torchrun "
                               f"(data-parallel stages: {', '.join(sorted(DATA_PARALLEL))})")
    params = load_task_params(root / args.params, args.task)
    if stage not in WITHOUT_TORCH:
        _limit_threads()
        keep_freed_memory()  # large activations stay in the heap: no page faults per batch
    ctx = StageContext(
        task=get_task(args.task),
        params=params,
        layout=Layout(root, args.task),
        source=getattr(args, "source", None),
        root=root,
        provenance=provenance(root, params.model_dump(mode="json")),
    )
    if is_main_process():  # under torchrun rank 0 owns the outputs; the others only train
        own_outputs(stage, ctx)
    t0 = time.perf_counter()
    body(ctx)
    label = f"{stage}@{args.task}" + (f"-{ctx.source}" if ctx.source else "")
    if is_main_process():  # one line per job, not per DDP rank
        print(f"[simgan] {label} finished in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


@contextmanager
def tracked(ctx: StageContext, stage: str, params: Mapping[str, Any]) -> Iterator[Any]:
    """The stage's MLflow run, nested under its pipeline's parent run (simgan.core.tracking);
    None on DDP ranks other than 0, which record nothing."""
    from simgan.core import tracking

    if not is_main_process():
        yield None
        return
    with tracking.stage_run(ctx.provenance, ctx.task.name, stage, params,
                            train_source=ctx.source) as run:
        yield run


def log_datasets(ctx: StageContext, paths: Mapping[str, Path], context: str) -> None:
    """Record the datasets the stage read as MLflow inputs (name, path, DVC digest)."""
    from simgan.core import tracking
    from stages.lineage import dataset_digest

    if not is_main_process():
        return
    for name, path in paths.items():
        rel = path.relative_to(ctx.root) if path.is_relative_to(ctx.root) else path
        tracking.log_dataset(f"{ctx.task.name}/{name}", rel.as_posix(),
                             dataset_digest(ctx.root, path), context)


def log_model(ctx: StageContext, name: str, path: Path, registered_name: str,
              input_shape: tuple[int, ...]) -> str:
    """Log the stage's weights file (the DVC output itself) as an MLflow model and register
    it; returns the version. The file holds tensors and plain values only: it loads with
    ``torch.load(path, weights_only=True)``, no pickled classes."""
    from simgan.core import tracking
    from stages.lineage import file_sha256

    how = ("simgan.core.refiner.net.load_refiner(saved)" if name == "refiner" else
           f"simgan.tasks.get_task('{ctx.task.name}').load_estimator(params, saved['state_dict'])")
    metadata = {"task": ctx.task.name, "input_shape": list(input_shape),
                "input": "float32 (B, 1, H, W), scaled by simgan.core.images.to_tensor",
                "load": f"saved = torch.load(file, weights_only=True); {how}"}
    if ctx.source:
        metadata["train_source"] = ctx.source
    return tracking.log_model_file(name, path, registered_name, file_sha256(path), metadata)


class _Stderr(logging.Handler):
    """Prints a record to the ``sys.stderr`` of the moment (pytest swaps it per test)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def _log_to_stderr() -> None:
    """The library's INFO lines on stderr, e.g. the step a killed training resumes from
    (docs/operations.md); without a handler Python shows WARNINGs only."""
    lib = logging.getLogger("simgan")
    if not any(isinstance(h, _Stderr) for h in lib.handlers):
        lib.addHandler(_Stderr())
    lib.setLevel(logging.INFO)


def _limit_threads() -> None:
    """Use the cores we have, no more (oversubscription halves CPU throughput)."""
    import torch

    n = int(os.environ.get("SIMGAN_THREADS", (os.cpu_count() or 1) // local_world_size()))
    torch.set_num_threads(max(1, n))
