"""Datasets written from shards on a 2-worker Dask cluster are the single-process datasets,
byte for byte: ingestion (UnityEyes, bad inputs skipped and counted) and refinement (a
refiner with noise inputs, ranges starting mid-stream); a worker killed mid-shard costs a
retry, not a byte. The cheap contract (shard results replayed in order = the local chunks)
is tested without a cluster first.

One LocalCluster (2 processes, 1 thread each, 127.0.0.1) serves the cluster tests through
SIMGAN_DASK_ADDRESS, the remote-scheduler path; the flows run on the session's ephemeral
Prefect API (tests/conftest.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from simgan.core.dataset import IMAGES, LABELS, META, write_dataset
from simgan.core.ingest.common import IngestError
from simgan.core.refiner.apply import RefineShards, refine_images
from simgan.core.refiner.net import Refiner, load_refiner
from simgan.core.shards import default_shard_size, shard_ranges
from simgan.core.task import ShardPlan
from simgan.gaze.readers.sources import UnityEyesSource, plan_splits
from stages.datasets_io import write_split
from tests.test_ingest_unityeyes import write_sample

ROOT = Path(__file__).resolve().parents[1]
ALLOWED_FAILURES = 1
"""Worker deaths Dask absorbs per task before KilledWorker (default 3: each costs a worker
restart, seconds on 2 cores)."""
FILES = (IMAGES, LABELS, META)


def digests(path: Path) -> dict[str, str]:
    return {name: hashlib.sha256((path / name).read_bytes()).hexdigest() for name in FILES}


def local_results(shards: ShardPlan, shard_size: int) -> Iterator[Any]:
    """What the engine does, in this process: every range's work, in range order."""
    for lo, hi in shard_ranges(shards.size, shard_size, shards.align):
        yield shards.work(lo, hi)()


# ----------------------------------------------------------------------------- fixtures


def unityeyes_folder(root: Path) -> Path:
    """10 UnityEyes pairs; 3 bad ones (truncated JPEG, no look_vec, no JSON)."""
    d = root / "ue"
    d.mkdir()
    for i in range(1, 11):
        write_sample(d, str(i), look=(0.03 * i, -0.02 * i, -1.0))
    data = (d / "4.jpg").read_bytes()
    (d / "4.jpg").write_bytes(data[: len(data) // 2])
    write_sample(d, "7", drop=("eye_details.look_vec",))
    (d / "9.json").unlink()
    return d


def ingest_plan(folder: Path, skip_bad: bool = True):
    src = UnityEyesSource(path=folder, test_fraction=0.0, skip_bad=skip_bad)
    return plan_splits(src, chunk_size=3)["train"]


def noisy_refiner() -> dict[str, Any]:
    """A small refiner file whose output depends on its random draws (noise at two scales,
    per-image codec qualities)."""
    net = {"width": 4, "blocks": 1, "kernel": 3, "output": "residual", "noise_channels": 1,
           "noise_scales": [1, 2], "padding": "replicate", "grid_period": 0,
           "codec": True, "codec_quality": [20, 90]}
    torch.manual_seed(0)
    refiner = Refiner(**net)
    with torch.no_grad():
        refiner.tail.weight.normal_(0.0, 0.5)
    return {"state_dict": refiner.state_dict(), "net": net, "selection": {}}


def source_dataset(root: Path, n: int = 21) -> Path:
    """n random 35x55 eyes with an id column, as ``render`` would write them."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 35, 55), dtype=np.uint8)
    labels = pd.DataFrame({"id": np.arange(n, dtype=np.int64), "pitch": rng.normal(size=n)})
    write_dataset(root / "synthetic", [(images, labels)], n, (35, 55), "uint8", {"x": 1})
    return root / "synthetic"


def refine_locally(saved: dict, source: Path, out: Path, batch_size: int) -> None:
    """The refine stage's single-process loop (stages/refine.py)."""
    images = np.load(source / IMAGES, mmap_mode="r")
    labels = pd.read_parquet(source / LABELS)

    def chunks():
        done = 0
        for refined in refine_images(load_refiner(saved), images, batch_size, "cpu"):
            yield refined, labels.iloc[done : done + refined.shape[0]]
            done += refined.shape[0]

    write_dataset(out, chunks(), len(labels), (35, 55), "uint8", {"domain": "refined"})


def write_refined(shards: RefineShards, out: Path) -> Callable[[Iterable[Any]], Any]:
    return lambda chunks: write_dataset(out, chunks, shards.size, (35, 55), "uint8",
                                        {"domain": "refined"})


# ----------------------------------------------------------------------------- no cluster


def test_shard_ranges_by_hand() -> None:
    assert shard_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert shard_ranges(10, 3, align=4) == [(0, 4), (4, 8), (8, 10)]
    assert shard_ranges(8, 8) == [(0, 8)]
    assert shard_ranges(0, 5) == []
    assert default_shard_size(100, 2) == 13 and default_shard_size(10**7, 2) == 4096
    with pytest.raises(ValueError, match="shard_size >= 1"):
        shard_ranges(10, 0)


@pytest.mark.parametrize("shard_size", [1, 4, 100])
def test_ingest_shards_in_order_give_the_local_dataset(tmp_path: Path, shard_size: int) -> None:
    folder = unityeyes_folder(tmp_path)
    local = ingest_plan(folder)
    write_split(tmp_path / "local", local, {"split": "train"}, "local")
    plan = ingest_plan(folder)
    ds = write_dataset(tmp_path / "sharded", plan.shards.chunks(local_results(plan.shards,
                                                                              shard_size)),
                       plan.n, plan.image_shape, plan.dtype, {**plan.meta, "split": "train"},
                       allow_fewer=True, late_meta=plan.late_meta)
    assert len(ds) == 7 and ds.meta["skipped_bad"] == 3 and ds.meta["ingest_files"] == 10
    assert digests(tmp_path / "sharded") == digests(tmp_path / "local")


def test_refine_range_draws_the_noise_of_the_whole_run() -> None:
    saved = noisy_refiner()
    images = np.random.default_rng(2).integers(0, 256, (20, 35, 55), dtype=np.uint8)
    whole = np.concatenate(list(refine_images(load_refiner(saved), images, 4, "cpu")))
    tail = np.concatenate(list(refine_images(load_refiner(saved), images, 4, "cpu", start=8)))
    middle = np.concatenate(list(refine_images(load_refiner(saved), images, 4, "cpu",
                                               start=4, stop=12)))
    assert np.array_equal(tail, whole[8:]) and np.array_equal(middle, whole[4:12])
    other_seed = np.concatenate(list(refine_images(load_refiner(saved), images, 4, "cpu",
                                                   seed=1)))
    assert not np.array_equal(other_seed, whole)  # the noise matters: a skip can be wrong
    for start, stop in ((6, 20), (4, 10)):  # a batch cut differently draws other noise
        with pytest.raises(ValueError, match="multiples of batch_size 4"):
            next(refine_images(load_refiner(saved), images, 4, "cpu", start=start, stop=stop))


def test_refine_shards_in_order_give_the_local_dataset(tmp_path: Path) -> None:
    saved, source = noisy_refiner(), source_dataset(tmp_path)
    refine_locally(saved, source, tmp_path / "local", batch_size=4)
    shards = RefineShards(saved, source / IMAGES, pd.read_parquet(source / LABELS), 4, "cpu")
    assert shards.align == 4 and shards.size == 21
    write_refined(shards, tmp_path / "sharded")(shards.chunks(local_results(shards, 5)))
    assert digests(tmp_path / "sharded") == digests(tmp_path / "local")


def test_engine_and_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.sharded import DaskSettings, ShardSettingsError
    from stages.sharding import engine

    monkeypatch.delenv("SIMGAN_SHARDS", raising=False)
    assert engine() == "local"
    monkeypatch.setenv("SIMGAN_SHARDS", "ray")
    with pytest.raises(ValueError, match=r"SIMGAN_SHARDS='ray': allowed values are local \| dask"):
        engine()
    assert DaskSettings.from_env({}) == DaskSettings(2, None, None, 2)
    got = DaskSettings.from_env({"SIMGAN_DASK_ADDRESS": "tcp://10.0.0.5:8786",
                                 "SIMGAN_SHARD_SIZE": "500", "SIMGAN_SHARD_RETRIES": "0"})
    assert (got.address, got.shard_size, got.retries) == ("tcp://10.0.0.5:8786", 500, 0)
    with pytest.raises(ShardSettingsError, match=r"SIMGAN_DASK_WORKERS='0': expected an integer"):
        DaskSettings.from_env({"SIMGAN_DASK_WORKERS": "0"})
    with pytest.raises(ShardSettingsError, match="SIMGAN_DASK_ADDRESS='host:8786'"):
        DaskSettings.from_env({"SIMGAN_DASK_ADDRESS": "host:8786"})
    runner = DaskSettings(workers=3).task_runner()
    assert runner.cluster_kwargs["n_workers"] == 3
    assert runner.cluster_kwargs["threads_per_worker"] == 1 and runner.cluster_kwargs["processes"]
    assert DaskSettings(address="tcp://h:1").task_runner().address == "tcp://h:1"


def test_a_plan_without_shards_is_written_here_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    folder = unityeyes_folder(tmp_path)
    monkeypatch.delenv("SIMGAN_SHARDS", raising=False)
    write_split(tmp_path / "local", ingest_plan(folder), {}, "local")
    monkeypatch.setenv("SIMGAN_SHARDS", "dask")
    plan = dataclasses.replace(ingest_plan(folder), shards=None)  # as the builtin renderer's
    write_split(tmp_path / "here", plan, {}, "render train")
    assert "render train: this source has no shards" in capsys.readouterr().err
    assert digests(tmp_path / "here") == digests(tmp_path / "local")


def test_default_engine_imports_neither_prefect_nor_dask() -> None:
    code = ("import sys, stages.datasets_io, stages.refine; "
            "print(sorted(m for m in ('prefect', 'distributed') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SIMGAN_SHARDS", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- 2-worker cluster


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """A LocalCluster of 2 worker processes (1 thread each) on 127.0.0.1, closed at the end."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address="127.0.0.1:0", death_timeout=60,
                           scheduler_kwargs={"allowed_failures": ALLOWED_FAILURES})
    try:
        with Client(cluster) as client:
            client.wait_for_workers(2, timeout=120)
        yield cluster.scheduler_address
    finally:
        cluster.close(timeout=30)


@pytest.fixture
def on_cluster(monkeypatch: pytest.MonkeyPatch, prefect_api: None, dask_address: str) -> str:
    monkeypatch.setenv("SIMGAN_SHARDS", "dask")
    monkeypatch.setenv("SIMGAN_DASK_ADDRESS", dask_address)
    monkeypatch.setenv("SIMGAN_SHARD_SIZE", "3")
    return dask_address


def _die_first_times(marker: str, kills: int, work: Callable[[], Any]) -> Any:
    """Kill this worker process (no cleanup, as a crash or the OOM killer would) on the
    first ``kills`` attempts, counted as lines of ``marker``; then run ``work``."""
    done = Path(marker).read_text().count("\n") if os.path.exists(marker) else 0
    if done < kills:
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
        os._exit(1)
    return work()


class KillsItsWorker(ShardPlan):
    """``inner``, except that the first ``kills[lo]`` attempts of the range starting at ``lo``
    kill the worker process running it (deaths counted in ``marker.<lo>``)."""

    def __init__(self, inner: ShardPlan, kills: dict[int, int], marker: Path) -> None:
        self.inner, self.kills, self.marker = inner, kills, marker
        self.size, self.align = inner.size, inner.align

    def work(self, lo: int, hi: int) -> Callable[[], Any]:
        work = self.inner.work(lo, hi)
        if lo not in self.kills:
            return work
        return partial(_die_first_times, f"{self.marker}.{lo}", self.kills[lo], work)

    def chunks(self, results: Iterable[Any]) -> Iterator[Any]:
        return self.inner.chunks(results)


@pytest.mark.slow
@pytest.mark.scale
def test_two_dask_workers_ingest_the_same_bytes(tmp_path: Path, on_cluster: str) -> None:
    folder = unityeyes_folder(tmp_path)
    os.environ.pop("SIMGAN_SHARDS")
    write_split(tmp_path / "local", ingest_plan(folder), {"split": "train"}, "local")
    os.environ["SIMGAN_SHARDS"] = "dask"
    ds = write_split(tmp_path / "dask", ingest_plan(folder), {"split": "train"}, "dask")
    assert len(ds) == 7 and ds.meta["skipped_bad_by_field"] == {
        "eye_details.look_vec": 1, "image": 1, "json": 1}
    assert digests(tmp_path / "dask") == digests(tmp_path / "local")
    # without skip_bad the first bad file in file order stops the run, as it does locally
    with pytest.raises(IngestError, match=r"4\.jpg: image: cannot decode"):
        write_split(tmp_path / "strict", ingest_plan(folder, skip_bad=False), {}, "strict")
    assert not (tmp_path / "strict").exists()


@pytest.mark.slow
@pytest.mark.scale
def test_two_dask_workers_refine_the_same_bytes(tmp_path: Path, on_cluster: str) -> None:
    from flows.sharded import DaskSettings, run_sharded

    saved, source = noisy_refiner(), source_dataset(tmp_path)
    refine_locally(saved, source, tmp_path / "local", batch_size=4)
    shards = RefineShards(saved, source / IMAGES, pd.read_parquet(source / LABELS), 4, "cpu")
    run_sharded(shards, write_refined(shards, tmp_path / "dask"), DaskSettings.from_env(),
                "refine-test")  # shards of 4 rows (3 rounded up to the batch), 6 of them
    assert digests(tmp_path / "dask") == digests(tmp_path / "local")


@pytest.mark.slow
@pytest.mark.scale
def test_workers_killed_mid_shard_cost_a_retry_not_a_byte(tmp_path: Path, on_cluster: str
                                                          ) -> None:
    """Shard [3, 6) kills its worker once: Dask reruns it on another worker. Shard [6, 9)
    kills it twice: Dask gives up (KilledWorker, after ALLOWED_FAILURES deaths) and the flow
    resubmits it as a new task run."""
    folder = unityeyes_folder(tmp_path)
    os.environ.pop("SIMGAN_SHARDS")
    write_split(tmp_path / "local", ingest_plan(folder), {"split": "train"}, "local")
    os.environ["SIMGAN_SHARDS"] = "dask"
    kills = {3: ALLOWED_FAILURES, 6: ALLOWED_FAILURES + 1}
    plan = ingest_plan(folder)
    plan = dataclasses.replace(plan, shards=KillsItsWorker(plan.shards, kills, tmp_path / "x"))
    write_split(tmp_path / "dask", plan, {"split": "train"}, "dask")
    for lo, n in kills.items():  # the workers did die
        assert len((tmp_path / f"x.{lo}").read_text().split()) == n
    assert digests(tmp_path / "dask") == digests(tmp_path / "local")
