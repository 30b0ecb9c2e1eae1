"""`make schedule`'s code path against a real `prefect server` on a free loopback port: an
interval schedule of a few seconds fires and its run completes, the deployment carries the
server-side single-flight limit, and everything is stopped by PID.

The pipeline is a one-stage toy DVC project (the real one takes minutes); the deployment,
the serving process and the server are the ones `make schedule` starts (flows.schedule).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from flows.schedule import FLOW_NAME, start, stop

pytestmark = pytest.mark.slow

DEPLOYMENT = "test-schedule"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _toy_project(root: Path) -> Path:
    root.mkdir()
    (root / "step.py").write_text("import sys\nopen(sys.argv[1], 'w').write('ok\\n')\n")
    (root / "params.yaml").write_text("a:\n  n: 1\n")
    (root / "dvc.yaml").write_text(
        "stages:\n  a:\n    cmd: python step.py a.txt\n    deps: [step.py]\n"
        "    params: [a.n]\n    outs: [a.txt]\n"
    )
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "toy"], cwd=root, check=True)
    return root


def _flow_runs(api: str, state: str) -> list[dict]:
    query = {"flow_runs": {"state": {"type": {"any_": [state]}}}, "limit": 50}
    response = httpx.post(f"{api}/flow_runs/filter", json=query, timeout=10)
    response.raise_for_status()
    return response.json()


def test_an_interval_schedule_fires_and_completes(tmp_path, monkeypatch):
    home = tmp_path / "prefect"
    monkeypatch.setenv("PREFECT_HOME", str(home))
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", str(tmp_path / "dvc-site-cache"))
    monkeypatch.setenv("PREFECT_RUNNER_POLL_FREQUENCY", "2")  # the runner's poll (default 10 s)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    project = _toy_project(tmp_path / "toy")
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    started = time.monotonic()
    try:
        start(["--interval", "5", "--root", str(project), "--target", "a"], "127.0.0.1", port,
              timeout=120, name=DEPLOYMENT)
        ready = time.monotonic() - started
        deployment = httpx.get(f"{api}/deployments/name/{FLOW_NAME}/{DEPLOYMENT}",
                               timeout=10).json()
        assert deployment["global_concurrency_limit"]["limit"] == 1  # held by the server
        assert deployment["concurrency_options"]["collision_strategy"] == "ENQUEUE"
        assert deployment["parameters"]["root"] == str(project)

        completed: list[dict] = []
        deadline = time.monotonic() + 60
        while not completed and time.monotonic() < deadline:
            time.sleep(1)
            completed = _flow_runs(api, "COMPLETED")
        first = time.monotonic() - started
        print(f"server + deployment ready in {ready:.1f} s; first run completed at {first:.1f} s")
        assert completed, f"no scheduled run completed: {_flow_runs(api, 'FAILED')}"
        assert completed[0]["deployment_id"] == deployment["id"]
        assert (project / "a.txt").read_text() == "ok\n"
        assert "params.yaml" not in subprocess.run(
            ["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True
        ).stdout
    finally:
        stopped = stop()
    assert len(stopped) == 2, stopped  # the serving process and the server, by PID
    assert not (home / "server.pid").exists() and not (home / "schedule.pid").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{api}/health", timeout=2)
    assert os.environ["PREFECT_HOME"] == str(home)
