"""Owner-stamped temp names: what a dead writer left is an orphan, a live writer's temp is not
(real child processes, no mocks of /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from simgan.core.run_owner import proc_stat
from simgan.core.tempnames import (
    is_orphan,
    owner_token,
    remove_orphans,
    temp_sibling,
)

ROOT = Path(__file__).resolve().parents[1]
# a child that makes a temp dir for ``final`` (argv[1]), prints it, then sleeps argv[2] seconds
CHILD = ("import sys, time; from simgan.core.tempnames import temp_sibling; "
         "p = temp_sibling(sys.argv[1]); p.mkdir(); print(p, flush=True); "
         "time.sleep(float(sys.argv[2]))")


def _child(final: Path, seconds: float) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(final), str(seconds)],
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    return proc, Path(proc.stdout.readline().strip())


def test_the_name_says_host_pid_and_start_time(tmp_path):
    tmp = temp_sibling(tmp_path / "train")
    host, pid, start, rand = tmp.name.removeprefix(".train.tmp-").split("-")
    assert int(pid) == os.getpid() and int(start) == proc_stat(os.getpid())[1] > 0
    assert owner_token() == f"{host}-{pid}-{start}" and len(rand) == 6
    assert temp_sibling(tmp_path / "train", "old").name.startswith(".train.old-")


def test_a_live_writers_temp_is_left_alone_and_removed_once_it_is_killed(tmp_path):
    final = tmp_path / "train"
    proc, tmp = _child(final, 60)
    try:
        assert tmp.is_dir() and not is_orphan(tmp, legacy=True)
        assert remove_orphans([final], legacy=True) == [] and tmp.is_dir()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert is_orphan(tmp)
    assert remove_orphans([final]) == [tmp] and not tmp.exists()


def test_a_reused_pid_does_not_make_an_orphan_look_alive(tmp_path):
    # our own pid with another start time: the writer of that name is gone
    me = owner_token().split("-")
    stale = tmp_path / f".train.tmp-{me[0]}-{me[1]}-{int(me[2]) - 1}-abcdef"
    stale.mkdir()
    assert is_orphan(stale)


def test_other_hosts_unknown_names_and_legacy_names(tmp_path):
    proc, tmp = _child(tmp_path / "x", 0)
    proc.wait()
    host = owner_token().split("-")[0]
    other_host = tmp_path / tmp.name.replace(host, "000000" if host != "000000" else "111111")
    assert is_orphan(tmp) and not is_orphan(other_host)  # its processes are not ours to see
    assert not is_orphan(tmp_path / ".train.tmp-not-a-writer")
    legacy = tmp_path / ".train.tmp-1234abcd"  # uuid suffix of earlier versions
    assert not is_orphan(legacy) and is_orphan(legacy, legacy=True)


def test_remove_orphans_looks_next_to_outputs_and_inside_them_only(tmp_path):
    dataset, report = tmp_path / "data" / "train", tmp_path / "models" / "refiner"
    dataset.mkdir(parents=True)
    report.mkdir(parents=True)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    dead = [_child(dataset, 0), _child(report / "refiner.pt", 0), _child(ckpt / "state.pt", 0),
            _child(tmp_path / "data" / "train2", 0)]
    for proc, _ in dead:
        proc.wait()
    keep = tmp_path / "data" / ".train.tmpx"
    keep.mkdir()
    start = time.perf_counter()
    removed = remove_orphans([dataset, report], [ckpt])
    assert time.perf_counter() - start < 1.0
    assert sorted(removed) == sorted(tmp for _, tmp in dead[:3])
    assert dead[3][1].exists() and keep.exists()  # another output's temp, an unrelated name
