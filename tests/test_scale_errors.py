"""Shared tracking and data when their servers are not there: one line naming the URL, in
seconds, and nothing written. (With the servers running: tests/test_scale_servers.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from simgan.core import tracking
from tests.servers import AWS_ENV, free_port
from tests.test_ops import _dvc_project

ROOT = Path(__file__).resolve().parents[1]


def _stage_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true", **extra}
    return env


def test_a_stage_against_an_unreachable_tracking_server_says_so_in_one_line(tmp_path):
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "stages.render", "--task", "gaze"],
                          cwd=tmp_path, env=_stage_env(MLFLOW_TRACKING_URI=uri),
                          capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - t0
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"stages.render: StoreError: MLflow tracking server {uri} unreachable "
                     "(Connection refused); start it (docs/scale.md) or unset "
                     "MLFLOW_TRACKING_URI to use the project's mlflow.db"]
    assert seconds < 60, f"took {seconds:.0f} s: MLflow's retries are not bounded"
    assert not (tmp_path / "data").exists(), "the stage wrote before checking its store"
    assert not (tmp_path / "mlflow.db").exists()


def test_http_bounds_apply_to_servers_only_and_never_override_the_user(tmp_path, monkeypatch):
    for key in tracking.HTTP_BOUNDS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking.use_store(tmp_path)  # the sqlite default: no HTTP at all
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{free_port()}")
    tracking.use_store(tmp_path)
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "3"
    assert os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] == "1"
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"  # the user's value stays


def test_a_failed_request_mid_stage_is_a_one_line_error_with_advice():
    from mlflow.exceptions import MlflowException

    from stages.failures import advice

    lost = MlflowException("API request to http://10.0.0.5:5000/api/2.0/mlflow-artifacts/"
                           "artifacts/1/x failed with exception HTTPConnectionPool(...)")
    assert tracking.server_failure(lost)
    assert "MLFLOW_TRACKING_URI" in (advice(lost) or "")
    assert not tracking.server_failure(MlflowException("RESOURCE_DOES_NOT_EXIST: no run"))
    assert not tracking.server_failure(ValueError("API request to nowhere"))


@pytest.mark.parametrize(("target", "url"), [("s3://bucket/simgan", True),
                                             ("ssh://host/srv/dvc", True),
                                             ("/srv/dvc", False), ("../remote", False),
                                             ("C:\\dvc", False)])
def test_a_remote_given_as_url_is_not_made_a_directory(target, url):
    from flows.remote import _is_url

    assert _is_url(target) is url


def test_push_to_an_unreachable_s3_endpoint_is_one_line_naming_it(tmp_path):
    """`make run DVC_REMOTE=s3://...` with AWS_ENDPOINT_URL_S3 on a port nobody listens on:
    the remote is set (config.local), the probe fails in milliseconds, the run is not failed."""
    root = _dvc_project(tmp_path / "proj")
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = {**os.environ, **AWS_ENV, "AWS_ENDPOINT_URL_S3": endpoint,
           "DVC_SITE_CACHE_DIR": str(root / ".dvc" / "site-cache")}
    env.pop("SIMGAN_DVC_REMOTE", None)
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "flows.remote", "push", "--default",
                           "s3://simgan-test/dvc"], cwd=root, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0  # the run's results are in the workspace already
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("WARNING: dvc push to remote 'simgan-local' "
                               "(s3://simgan-test/dvc) not started: its S3 endpoint "
                               f"{endpoint} is unreachable (Connection refused)")
    assert time.monotonic() - t0 < 60
    assert "url = s3://simgan-test/dvc" in (root / ".dvc" / "config.local").read_text()
    assert not (tmp_path / "s3:").exists()


class _FakeServer(BaseHTTPRequestHandler):
    """Answers /health with 200 and the artifact listing with the class's status and body."""

    status, body = 500, b"<h1>Internal Server Error</h1>"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        status, body = (200, b"OK") if self.path == "/health" else (self.status, self.body)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize(("status", "body", "says"), [
    (500, b"<h1>Internal Server Error</h1>", "cannot reach its artifact store (HTTP 500 listing "),
    (503, b"Endpoint: /x disabled due to the mlflow server running with `--no-serve-artifacts`",
     "runs with --no-serve-artifacts"),
])
def test_a_server_that_cannot_serve_artifacts_is_named_in_one_line(status, body, says):
    handler = type("Handler", (_FakeServer,), {"status": status, "body": body})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(tracking.StoreError) as caught:
            tracking.check_server(uri)
    finally:
        server.shutdown()
        server.server_close()
    message = str(caught.value)
    assert message.startswith(f"MLflow tracking server {uri} {says}") and "\n" not in message
