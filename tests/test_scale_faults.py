"""The S3 store goes away under a running deployment (tests/servers.py: PostgreSQL, moto,
``mlflow server``): a stage refuses to start with one line naming the tracking server, and the
push after a run (flows.remote, what `make run` calls) one line naming the S3 endpoint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import servers

ROOT = Path(__file__).resolve().parents[1]
# three servers: ~45 s on a quiet machine, 4.5 min at load 9
pytestmark = [pytest.mark.slow, pytest.mark.scale]


@pytest.fixture
def deployment(tmp_path) -> Iterator[tuple[str, servers.S3]]:
    servers.require_postgres()
    with servers.postgres() as pg, servers.s3(tmp_path) as store, \
            servers.mlflow_server(tmp_path, pg, store) as uri:
        yield uri, store


def _env(project: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, **servers.AWS_ENV, "PYTHONPATH": str(ROOT),
           "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1",
           "DVC_SITE_CACHE_DIR": str(project / ".dvc" / "site-cache"), **extra}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("SIMGAN_DVC_REMOTE", None)
    env.update(extra)
    return env


def _dvc(project: Path, *args: str) -> None:
    subprocess.run([sys.executable, "-m", "dvc", *args], cwd=project, env=_env(project),
                   check=True, capture_output=True, timeout=120)


def test_s3_going_away_is_one_line_naming_the_url(deployment, tmp_path):
    uri, store = deployment
    project = tmp_path / "proj"
    project.mkdir()
    shutil.copy(ROOT / "params.yaml", project / "params.yaml")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    _dvc(project, "init", "-q")
    (project / "data.txt").write_text("payload\n")
    _dvc(project, "add", "-q", "data.txt")
    _dvc(project, "remote", "add", "-d", "storage", f"s3://{store.bucket}/dvc")
    _dvc(project, "remote", "modify", "storage", "endpointurl", store.endpoint)
    push = [sys.executable, "-m", "flows.remote", "push"]
    first = subprocess.run(push, cwd=project, env=_env(project), capture_output=True, text=True,
                           timeout=300)
    assert "Pushed DVC outputs to remote 'storage'" in first.stdout, first.stderr
    assert store.keys("dvc/"), "the push put nothing into S3"

    store.stop()
    proc = subprocess.run([sys.executable, "-m", "stages.render", "--task", "gaze"],
                          cwd=project, env=_env(project, MLFLOW_TRACKING_URI=uri),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"stages.render: StoreError: MLflow tracking server {uri} cannot reach its artifact "
        f"store (HTTP 500 listing {uri}/api/2.0/mlflow-artifacts/artifacts); check the "
        "server's --artifacts-destination, MLFLOW_S3_ENDPOINT_URL and AWS credentials (its log "
        "names the S3 URL)"]
    assert not (project / "data" / "gaze").exists(), "render wrote before checking its store"
    assert store.endpoint in (tmp_path / "mlflow-server.log").read_text()

    proc = subprocess.run(push, cwd=project, env=_env(project), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0  # a failed push never fails the run
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"WARNING: dvc push to remote 'storage' (s3://{store.bucket}/dvc) not started: its S3 "
        f"endpoint {store.endpoint} is unreachable (Connection refused)"), proc.stderr
