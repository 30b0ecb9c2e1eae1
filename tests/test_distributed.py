"""Data-parallel training under torchrun (simgan.core.distributed), on CPU with gloo.

Two ranks started by ``python -m torch.distributed.run`` (tests/ddp_worker.py) must hold the
same weights after every optimiser step, and their losses must match a single process on the
same global batch; a resume works across a changed number of processes; a killed rank ends
the job within a bounded time. The rest are unit tests of the sharding and rank-state rules
on hand-computed cases, and of the single-process path (no process group at all).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from simgan.core import distributed
from simgan.core.distributed import DistributedError, Ranks, rank_seed
from simgan.core.epochs import shard_rows
from simgan.core.refiner.ranks import RANKS_KEY, for_this_rank
from tests import ddp_worker as worker

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")
TORCHRUN_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
                "MASTER_PORT", "GROUP_RANK", "ROLE_RANK", "TORCHELASTIC_RUN_ID")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(mode: str, out: Path, extra_env: dict[str, str] | None = None,
              **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in TORCHRUN_ENV}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **(extra_env or {}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           str(ROOT / "tests" / "ddp_worker.py"), mode, str(out)]
    return subprocess.Popen(cmd, env=env, cwd=ROOT, **kwargs)


def _stop(proc: subprocess.Popen) -> None:
    """Ends the launcher and its workers (own process group) if a test left them running."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    """One torchrun launch of ``all`` (about 15 s here), after writing the single-process
    checkpoint at step 4 that the ranks resume from."""
    out = tmp_path_factory.mktemp("ddp")
    torch.set_num_threads(1)
    worker.run_refiner(out / "single4", steps=4)
    proc = _torchrun("all", out, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                     start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=120)
    finally:
        _stop(proc)
    assert proc.returncode == 0, log.decode(errors="replace")[-3000:]
    return out, [json.loads((out / f"all-rank{r}.json").read_text()) for r in (0, 1)]


def _close(a: dict[str, float], b: dict[str, float], keys: list[str]) -> None:
    for k in keys:
        assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k


@pytest.mark.scale  # a torchrun job of 2 processes (make test-scale)
def test_refiner_ranks_agree_and_match_one_process(two_ranks, tmp_path: Path) -> None:
    _, ranks = two_ranks
    r0, r1 = ranks[0]["refiner"], ranks[1]["refiner"]
    # 2 R pretraining, 1 D pretraining, 3 x (R, D) updates: identical weights after each
    assert len(r0["digests"]) == 9 and r0["digests"] == r1["digests"]
    assert r0["buffer"] == r1["buffer"] == 10  # each rank's share (20 / 2), filled
    one = worker.run_refiner(tmp_path)
    assert one["buffer"] == 20
    ddp, single = r0["losses"], one["losses"]
    assert len(ddp) == len(single) == 6
    assert [row["phase"] for row in ddp] == [0, 0, 1, 2, 2, 2]
    # until the history buffer is used the DDP step is the single-process step
    for step in range(3):
        _close(ddp[step], single[step], sorted(single[step]))
        assert ddp[step]["loss_r_reg" if step < 2 else "loss_d_real"] > 0
    _close(ddp[3], single[3], ["loss_r_reg", "loss_r_adv", "drift", "loss_d_real"])
    # then D's history half comes from each rank's own buffer: other images, close losses
    for step in range(3, 6):
        assert ddp[step]["loss_d_refined"] == pytest.approx(single[step]["loss_d_refined"],
                                                            rel=0.01)
    for name, value in one["refiner"].items():
        assert np.allclose(r0["refiner"][name], value, atol=1e-4), name


@pytest.mark.scale  # a torchrun job of 2 processes (make test-scale)
def test_gaze_estimator_ranks_agree_and_match_one_process(two_ranks, tmp_path: Path) -> None:
    _, ranks = two_ranks
    g0, g1 = ranks[0]["gaze"], ranks[1]["gaze"]
    # 139 training rows, global batch 32: 5 steps per epoch (the last one split 6/5)
    assert len(g0["digests"]) == 10 and g0["digests"] == g1["digests"]
    one = worker.run_gaze(tmp_path)
    for ddp, single in zip(g0["history"], one["history"], strict=True):
        _close(ddp, single, ["train_loss", "val_loss", "val_angle_deg", "lr"])
    assert g0["history"][-1]["val_loss"] < g0["history"][0]["val_loss"]
    for name, value in one["state"].items():
        assert np.allclose(g0["state"][name], value, atol=1e-5), name


@pytest.mark.scale  # a torchrun job of 2 processes (make test-scale)
def test_resume_same_and_changed_world_size(two_ranks, tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    out, ranks = two_ranks
    # 2 -> 2 processes: the ranks continue exactly (rank 1 never saw the file)
    for r in ranks:
        assert r["resumed"]["start"] == 4 and r["resumed"]["final"] == r["refiner"]["final"]
        # 1 -> 2: the single buffer (16 images) dealt out, 8 per rank
        assert r["from_single"]["start"] == 4 and r["from_single"]["start_buffer"] == 8
    assert ranks[0]["from_single"]["digests"] == ranks[1]["from_single"]["digests"]
    # 2 -> 1: the nets continue from the ranks' weights, the buffers are pooled
    caplog.set_level(logging.WARNING, "simgan")
    syn, real = worker.refiner_data()
    t = worker.RefinerTrainer(syn, real, worker.NET, worker.DISC, worker.REFINER)
    assert t.resume(out / "ddp4" / worker.CHECKPOINT)
    assert t.step == 4 and len(t.buffer) == 16
    assert worker.digest([*t.refiner.parameters(), *t.discriminator.parameters()]) == (
        ranks[0]["ddp4"]["final"])
    assert "written by 2 process(es), this run has 1" in caplog.text


@pytest.mark.scale  # a torchrun job of 2 processes (make test-scale)
def test_killed_rank_ends_the_job_in_bounded_time(tmp_path: Path) -> None:
    proc = _torchrun("forever", tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                     start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not all((tmp_path / f"alive-{r}").exists() for r in (0, 1)):
            assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "the ranks did not start training"
            time.sleep(0.2)
        os.kill(int((tmp_path / "alive-1").read_text()), signal.SIGKILL)
        t0 = time.monotonic()
        log, _ = proc.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        _stop(proc)
    text = log.decode(errors="replace")
    assert proc.returncode != 0 and took < 30, f"{took:.1f} s: {text[-2000:]}"
    print(f"the job ended {took:.1f} s after the kill")  # shown with pytest -s
    # torchrun names the failed rank and the signal
    assert "rank      : 1" in text and "Signal 9 (SIGKILL)" in text, text[-2000:]


# ------------------------------------------------------------------ single process, unit cases


def test_without_torchrun_nothing_is_distributed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TORCHRUN_ENV:
        monkeypatch.delenv(name, raising=False)
    ranks = distributed.setup("cpu")
    assert ranks == Ranks(CPU) and not ranks.active and ranks.is_main
    assert not torch.distributed.is_initialized()
    module = torch.nn.Linear(2, 2)
    rows = np.arange(7)
    assert distributed.wrap(module, ranks) is module
    assert distributed.shard(rows, ranks) is rows
    assert shard_rows(rows, ranks) == (rows, 1.0)
    assert distributed.average({"a": 1.5}, ranks) == {"a": 1.5}
    assert distributed.from_main(lambda: {"x": 1}, ranks) == {"x": 1}
    assert distributed.share(2048, ranks) == 2048


def test_torchrun_environment_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(DistributedError, match="RANK=2"):
        distributed.setup("cpu")
    monkeypatch.setenv("RANK", "1")
    assert not distributed.is_main_process()
    monkeypatch.setenv(distributed.TIMEOUT_ENV, "0")
    with pytest.raises(DistributedError, match="SIMGAN_DIST_TIMEOUT"):
        distributed.timeout()
    with pytest.raises(DistributedError, match="multiple of the number of processes"):
        distributed.check_divisible("train.batch_size", 9, Ranks(CPU, 2, 0))


def test_weighted_shards_give_the_global_mean() -> None:
    """11 rows over 2 ranks: 6 and 5, weights 12/11 and 10/11; DDP averages (divides by 2),
    so sum_r weight_r * mean_r / 2 is the mean over the 11 rows."""
    rows = np.arange(11)
    losses = np.arange(11, dtype=np.float64) ** 2
    total = 0.0
    for rank, (n, w) in enumerate(((6, 12 / 11), (5, 10 / 11))):
        mine, weight = shard_rows(rows, Ranks(CPU, 2, rank))
        assert mine.shape[0] == n and weight == pytest.approx(w)
        total += weight * losses[mine].mean() / 2
    assert total == pytest.approx(losses.mean())
    # fewer rows than ranks: the rank without a row computes on one at weight 0
    mine, weight = shard_rows(np.array([5]), Ranks(CPU, 2, 1))
    assert mine.tolist() == [5] and weight == 0.0
    assert shard_rows(np.array([5]), Ranks(CPU, 2, 0))[1] == 2.0


def _part(values: list[float], rank_stream: int) -> dict:
    data = torch.tensor(values).reshape(-1, 1, 1, 1)
    return {"buffer": {"data": data, "count": len(values)},
            "rngs": {"torch": torch.Generator().manual_seed(rank_stream).get_state(),
                     "cuda": None, "numpy": {"state": rank_stream}, "buffer": None}}


def test_rank_states_same_world_size_continue_exactly() -> None:
    saved = {"step": 7, **_part([1.0], 0), RANKS_KEY: [_part([1.0], 0), _part([2.0, 3.0], 1)]}
    mine = for_this_rank(saved, Ranks(CPU, 2, 1), seed=0, history_size=4, device=CPU)
    assert RANKS_KEY not in mine and mine["buffer"]["data"].flatten().tolist() == [2.0, 3.0]
    assert mine["rngs"]["numpy"] == {"state": 1}
    # a single-process checkpoint (no "ranks") resumed by a single process: as saved
    single = {"step": 7, **_part([4.0, 5.0], 0)}
    assert for_this_rank(single, Ranks(CPU), 0, 4, CPU)["buffer"] is single["buffer"]


def test_rank_states_changed_world_size_are_dealt_out() -> None:
    """Two ranks' buffers [1, 2] and [3] pooled to [1, 2, 3]; over three ranks of capacity
    ceil(4 / 3) = 2: [1], [2], [3]; the batch stream is rank 0's (the same on every rank)."""
    saved = {"step": 5, **_part([1.0, 2.0], 0),
             RANKS_KEY: [_part([1.0, 2.0], 0), _part([3.0], 1)]}
    got = [for_this_rank(saved, Ranks(CPU, 3, r), seed=9, history_size=4, device=CPU)
           for r in range(3)]
    assert [g["buffer"]["data"].flatten().tolist() for g in got] == [[1.0], [2.0], [3.0]]
    assert all(g["rngs"]["numpy"] == {"state": 0} for g in got)
    expected = torch.Generator().manual_seed(rank_seed(9, 2, 5)).get_state()
    assert torch.equal(got[2]["rngs"]["torch"], expected)
    # and to one process of capacity 2: the first two of the pool
    one = for_this_rank(saved, Ranks(CPU), seed=9, history_size=2, device=CPU)
    assert one["buffer"]["data"].flatten().tolist() == [1.0, 2.0]


def test_stages_record_nothing_on_other_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rank 1 opens no MLflow run and logs no dataset (ctx is never touched)."""
    from stages import common

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with common.tracked(None, "train_refiner", {}) as run:  # type: ignore[arg-type]
        assert run is None
    assert common.log_datasets(None, {"x": Path("x")}, "training") is None  # type: ignore[arg-type]
