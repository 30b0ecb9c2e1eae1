"""Operations: waiting for a locked DVC workspace, the schedule's arguments, the local Prefect
server's failures, the DVC remote. A real server with a scheduled run is in test_schedule.py;
two concurrent `dvc repro` on the smoke profile in test_dvc_lock.py."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from flows.dvc_wait import (
    DvcLockTimeoutError,
    backoff_delays,
    is_lock_error,
    max_wait_seconds,
    run_waiting,
)
from flows.server import ServerStartError, start_server

RW_BUSY = "ERROR: 'data/gaze/synthetic/train' is busy, it is being blocked by:\n (PID 7)"
REPO_LOCK = "ERROR: Unable to acquire lock. Most likely another DVC process is running"


def test_dvc_lock_messages_are_recognised_and_others_are_not():
    assert is_lock_error(RW_BUSY) and is_lock_error(REPO_LOCK)
    assert not is_lock_error("ERROR: failed to reproduce 'render@gaze': exit code 1")


def test_backoff_doubles_and_stops_at_the_bound():
    assert list(backoff_delays(100, first=5)) == [5, 10, 20, 40, 25]
    assert list(backoff_delays(2000, first=5, cap=300))[-3:] == [300, 300, 185]
    assert list(backoff_delays(0)) == []


def test_wait_bound_from_argument_env_or_default(monkeypatch):
    monkeypatch.delenv("SIMGAN_DVC_LOCK_WAIT_SECONDS", raising=False)
    assert max_wait_seconds() == 1800
    monkeypatch.setenv("SIMGAN_DVC_LOCK_WAIT_SECONDS", "60")
    assert max_wait_seconds() == 60 and max_wait_seconds(5) == 5
    monkeypatch.setenv("SIMGAN_DVC_LOCK_WAIT_SECONDS", "soon")
    with pytest.raises(ValueError, match="SIMGAN_DVC_LOCK_WAIT_SECONDS"):
        max_wait_seconds()


def test_locked_attempts_wait_with_backoff_and_log_each_wait():
    outcomes = iter([(1, REPO_LOCK), (1, RW_BUSY), (0, "")])
    slept: list[float] = []
    logged: list[str] = []
    code = run_waiting(lambda: next(outcomes), max_wait=60, log=logged.append,
                       sleep=slept.append, first_delay=1)
    assert code == 0 and slept == [1, 2]
    assert len(logged) == 2 and all("locked by another process" in m for m in logged)


def test_a_busy_workspace_is_waited_for_before_any_attempt():
    holders = iter(["PID 7: dvc repro", None])
    attempts: list[int] = []
    logged: list[str] = []
    code = run_waiting(lambda: attempts.append(1) or (0, ""), busy=lambda: next(holders),
                       max_wait=60, log=logged.append, sleep=lambda _: None)
    assert code == 0 and attempts == [1] and "PID 7: dvc repro" in logged[0]


def test_workspace_busy_reads_dvcs_rwlock_and_repository_lock(tmp_path):
    import fcntl
    import json

    from flows.dvc_wait import workspace_busy

    tmp = tmp_path / ".dvc" / "tmp"
    tmp.mkdir(parents=True)
    assert workspace_busy(tmp_path) is None
    dead = subprocess.Popen(["true"])
    dead.wait()
    alive = os.getppid()
    rwlock = {"read": {"a": [{"pid": dead.pid, "cmd": "dvc repro"}]},
              "write": {"b": {"pid": alive, "cmd": "dvc repro x"}}}
    (tmp / "rwlock").write_text(json.dumps(rwlock))
    assert workspace_busy(tmp_path) == f"PID {alive}: dvc repro x"
    rwlock["write"] = {}
    (tmp / "rwlock").write_text(json.dumps(rwlock))
    assert workspace_busy(tmp_path) is None  # a dead holder does not count
    with open(tmp / "lock", "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert "repository lock" in (workspace_busy(tmp_path) or "")
    assert workspace_busy(tmp_path) is None


def test_other_failures_return_at_once():
    slept: list[float] = []
    assert run_waiting(lambda: (3, "boom"), max_wait=60, sleep=slept.append) == 3
    assert slept == []


def test_a_lock_that_outlasts_the_bound_fails_with_what_to_do():
    slept: list[float] = []
    with pytest.raises(DvcLockTimeoutError, match="SIMGAN_DVC_LOCK_WAIT_SECONDS") as info:
        run_waiting(lambda: (1, RW_BUSY), max_wait=7, log=lambda _: None, sleep=slept.append,
                    first_delay=2)
    assert sum(slept) == 7 and "\n" not in str(info.value)


def test_schedule_is_a_cron_or_an_interval():
    from flows.deploy import schedule_kwargs, single_flight

    assert schedule_kwargs("0 3 * * *", None) == {"cron": "0 3 * * *"}
    assert schedule_kwargs(None, 3600) == {"interval": 3600}
    for cron, interval in ((None, None), ("0 3 * * *", 60), (None, 0)):
        with pytest.raises(ValueError):
            schedule_kwargs(cron, interval)
    limit = single_flight()
    assert limit.limit == 1 and limit.collision_strategy.value == "ENQUEUE"


def test_a_taken_port_is_a_one_line_error(tmp_path):
    with socket.socket() as sock:  # listens but is no Prefect server
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(ServerStartError, match="PREFECT_PORT") as info:
            start_server(port=port, home=tmp_path, timeout=5)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "server.pid").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_server_that_cannot_start_is_a_one_line_error(tmp_path, monkeypatch):
    """The CLI `make schedule` calls: a database it cannot reach makes the server exit."""
    env = {**os.environ, "PREFECT_HOME": str(tmp_path),
           "PREFECT_SERVER_DATABASE_CONNECTION_URL": "postgresql+asyncpg://u:p@127.0.0.1:1/x"}
    proc = subprocess.run(
        [sys.executable, "-m", "flows.server", "start", "--port", str(_free_port()),
         "--no-ui", "--timeout", "60"],
        env=env, capture_output=True, text=True, timeout=90,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: prefect server exited"), proc.stderr
    assert "ConnectionRefusedError" in lines[0] and "make schedule" in lines[0]
    assert not (tmp_path / "server.pid").exists()


# --------------------------------------------------------------------------- DVC remote


def _dvc_project(root: Path) -> Path:
    root.mkdir()
    env = {**os.environ, "DVC_SITE_CACHE_DIR": str(root / ".dvc" / "site-cache")}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, env=env)
    (root / "data.txt").write_text("payload\n")
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "data.txt"], cwd=root, check=True,
                   env=env)
    return root


def test_push_sets_a_local_remote_outside_the_tree_then_pushes(tmp_path, monkeypatch):
    from flows.remote import LOCAL_REMOTE_NAME, push

    monkeypatch.delenv("SIMGAN_DVC_REMOTE", raising=False)
    root = _dvc_project(tmp_path / "proj")
    assert push(root) == LOCAL_REMOTE_NAME
    remote = tmp_path / "simgan-dvc-remote"  # ../simgan-dvc-remote
    assert any(p.is_file() for p in remote.rglob("*")), "nothing was pushed"
    assert LOCAL_REMOTE_NAME in (root / ".dvc" / "config.local").read_text()
    assert "remote" not in (root / ".dvc" / "config").read_text()  # the team config is untouched


def test_an_unwritable_remote_is_one_warning_line_and_no_failure(tmp_path):
    root = _dvc_project(tmp_path / "proj")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    proc = subprocess.run(
        [sys.executable, "-m", "flows.remote", "push", "--default", str(blocker / "remote")],
        cwd=root, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("WARNING: cannot create the DVC remote")
    assert "DVC_REMOTE=" in lines[0]
