"""Write one dataset from shards computed on a Dask cluster, driven by a Prefect flow.

What it is for: ingesting a million files, or refining a million images, faster than one
machine's cores allow, without a scheduler of our own. A producer in ``simgan/`` offers its
work as ranges (:class:`simgan.core.shards.ShardPlan`); this flow maps the ranges to Dask
workers through prefect-dask's ``DaskTaskRunner`` (a ``LocalCluster`` of ``workers``
processes by default, or a running scheduler at ``address``), takes the results back *in
range order* within a bounded window, and hands them to the producer's ``chunks``, which
replays the single-process path; the caller writes them with
:func:`simgan.core.dataset.write_dataset` (a pre-allocated memmap in a temp directory,
renamed into place). So the dataset is the same file, byte for byte, whatever the cluster.

Failures: a shard that raises is retried by Prefect (``retries``); a worker process that dies
mid-shard has its shard rescheduled by Dask on another worker (and the nanny restarts the
worker); a shard whose worker keeps dying (Dask's ``KilledWorker``) is resubmitted by the
flow as a new task run, ``retries`` times. A shard that still fails fails the flow: the temp
dataset is removed and the previous one, if any, is kept.

Where things must be: the workers read their inputs (the source files of an ingest; the
source ``images.npy`` of a refinement) at the *same absolute paths* as the writer, so remote
workers need a shared file system mounted at the same place, and the same code (this
checkout, or the installed package) importable. Results travel back through Dask, so the
output needs no shared storage: only the writer's disk. See docs/scale.md, "Sharded ingestion".

Settings come from the environment (the stages read them through ``stages/sharding.py``):
``SIMGAN_DASK_WORKERS`` (LocalCluster processes, default 2), ``SIMGAN_DASK_ADDRESS``
(``tcp://host:8786``: use that scheduler instead), ``SIMGAN_SHARD_SIZE`` (units per shard,
default: 4 shards per worker, at most 4096 units), ``SIMGAN_SHARD_RETRIES`` (default 2).
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from flows.environment import apply_project_environment
from simgan.core.shards import default_shard_size, shard_ranges
from simgan.core.task import ShardPlan

MODULE_ROOT = Path(__file__).resolve().parents[1]
if (MODULE_ROOT / "dvc.yaml").is_file():
    # Before Prefect is imported: it reads PREFECT_HOME etc. at import time (flows.environment).
    apply_project_environment(MODULE_ROOT)

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NONE  # noqa: E402

T = TypeVar("T")

WORKERS_ENV = "SIMGAN_DASK_WORKERS"
ADDRESS_ENV = "SIMGAN_DASK_ADDRESS"
SHARD_SIZE_ENV = "SIMGAN_SHARD_SIZE"
RETRIES_ENV = "SIMGAN_SHARD_RETRIES"
IN_FLIGHT_PER_WORKER = 2
"""Shards submitted ahead per worker: keeps workers busy while bounding the results held."""


class ShardSettingsError(ValueError):
    """A sharding environment variable with a value outside what it allows."""


def _int_env(environ: Mapping[str, str], name: str, default: int | None, lo: int, hi: int
             ) -> int | None:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not lo <= value <= hi:
        raise ShardSettingsError(f"{name}={text!r}: expected an integer in [{lo}, {hi}]")
    return value


@dataclass(frozen=True)
class DaskSettings:
    """Where and how shards run. ``address`` None: a LocalCluster of ``workers`` processes of
    one thread each (the decoders and torch hold the GIL or use their own threads)."""

    workers: int = 2
    address: str | None = None
    shard_size: int | None = None
    retries: int = 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DaskSettings:
        env = os.environ if environ is None else environ
        address = env.get(ADDRESS_ENV, "").strip() or None
        if address is not None and "://" not in address:
            raise ShardSettingsError(f"{ADDRESS_ENV}={address!r}: expected a scheduler address "
                                     "like tcp://host:8786")
        return cls(
            workers=_int_env(env, WORKERS_ENV, 2, 1, 1024) or 2,
            address=address,
            shard_size=_int_env(env, SHARD_SIZE_ENV, None, 1, 10_000_000),
            retries=_int_env(env, RETRIES_ENV, 2, 0, 100) or 0,
        )

    def task_runner(self) -> Any:
        from prefect_dask import DaskTaskRunner

        if self.address:
            return DaskTaskRunner(address=self.address)
        return DaskTaskRunner(
            cluster_class="distributed.LocalCluster",
            cluster_kwargs={"n_workers": self.workers, "threads_per_worker": 1,
                            "processes": True, "host": "127.0.0.1",
                            "dashboard_address": "127.0.0.1:0"},
        )

    def describe(self) -> str:
        where = self.address or f"a LocalCluster of {self.workers} worker process(es)"
        return f"Dask at {where}"


@task(name="shard", cache_policy=NONE, persist_result=False, retry_delay_seconds=1)
def compute_shard(work: Callable[[], Any], lo: int, hi: int) -> Any:
    """Run one range's work on a Dask worker (``lo``, ``hi`` name the task run)."""
    return work()


def _is_lost_worker(exc: BaseException) -> bool:
    """Dask gave up on a shard because the workers running it died (not the shard's error)."""
    return type(exc).__name__ == "KilledWorker"


def ordered_results(shards: ShardPlan, settings: DaskSettings, workers: int) -> Iterator[Any]:
    """The results of every range of ``shards``, in range order, at most
    ``IN_FLIGHT_PER_WORKER * workers`` submitted ahead of the one being consumed."""
    size = settings.shard_size or default_shard_size(shards.size, workers)
    ranges = shard_ranges(shards.size, size, shards.align)
    run = compute_shard.with_options(retries=settings.retries)
    limit = max(2, IN_FLIGHT_PER_WORKER * workers)
    log = get_run_logger()
    log.info("%d units in %d shard(s) of <= %d on %s", shards.size, len(ranges), size,
             settings.describe())

    def submit(lo: int, hi: int) -> Any:
        return run.with_options(task_run_name=f"shard-{lo}-{hi}").submit(shards.work(lo, hi),
                                                                        lo, hi)

    todo = iter(ranges)
    pending: deque[tuple[int, int, Any]] = deque()
    for lo, hi in todo:
        pending.append((lo, hi, submit(lo, hi)))
        if len(pending) >= limit:
            break
    while pending:
        lo, hi, future = pending.popleft()
        for attempt in range(settings.retries + 1):
            try:
                result = future.result()
                break
            except Exception as exc:
                if not _is_lost_worker(exc) or attempt == settings.retries:
                    raise
                log.warning("shard [%d, %d): its workers died (%s); resubmitting", lo, hi, exc)
                future = submit(lo, hi)
        for nxt in todo:
            pending.append((*nxt, submit(*nxt)))
            break
        yield result


def _cluster_workers(settings: DaskSettings) -> int:
    """Worker threads to size shards for: the LocalCluster's, or what the scheduler at
    ``address`` has now (a short client of its own: the task runner connects lazily)."""
    if not settings.address:
        return settings.workers
    from distributed import Client

    with Client(settings.address, timeout=60, set_as_default=False) as client:
        return max(1, sum(client.nthreads().values()))


_JOBS: dict[str, tuple[ShardPlan, Callable[[Iterator[Any]], Any], DaskSettings]] = {}
"""Writer-side objects of the running flows, by job id. Prefect ships a task's flow *and the
flow's parameters* to the worker with every task run, so the plan (a million-unit index) and
the writer (an open memmap) are neither closed over nor passed: the flow gets the id."""


def _run_job(job: str) -> Any:
    shards, consume, settings = _JOBS[job]
    results = ordered_results(shards, settings, _cluster_workers(settings))
    return consume(shards.chunks(results))


@flow(name="sharded-write", validate_parameters=False, persist_result=False)
def sharded_write(job: str) -> Any:
    """Compute the shards of job ``job`` on the task runner's cluster and write them.

    The body only calls module functions: cloudpickle ships this function *by value* (the
    module's name is bound to the Flow, not to it), with the globals it names."""
    return _run_job(job)


def run_sharded(shards: ShardPlan, consume: Callable[[Iterator[Any]], T],
                settings: DaskSettings, label: str) -> T:
    """``consume(shards.chunks(results))`` inside a Prefect flow whose tasks are the shards,
    run on Dask; returns what ``consume`` returns (the written dataset)."""
    job = uuid.uuid4().hex
    _JOBS[job] = (shards, consume, settings)
    print(f"[simgan] {label}: {shards.size} units sharded on {settings.describe()}",
          file=sys.stderr)
    try:
        run = sharded_write.with_options(flow_run_name=label,
                                         task_runner=settings.task_runner())
        with _one_api_for_the_workers():
            return run(job)
    finally:
        del _JOBS[job]


def _one_api_for_the_workers() -> contextlib.AbstractContextManager[Any]:
    """Make the task runs on the workers report to this process's Prefect API.

    Prefect ships its settings with each task run to the worker. Without ``PREFECT_API_URL``
    the flow would use a temporary server of this process that the settings do not name, and
    every worker would start (10-25 s) and report to a temporary server of its own. So the
    temporary server is started here and named in the settings. (Remote workers cannot reach
    a server on 127.0.0.1: for them, set ``PREFECT_API_URL`` to a ``prefect server start``.)"""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        return contextlib.nullcontext()
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return temporary_settings(updates={PREFECT_API_URL: server.api_url})
