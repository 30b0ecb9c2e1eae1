"""Real servers for the scale tests: PostgreSQL, an S3-compatible store (moto) and an MLflow
tracking server on them, each on 127.0.0.1 and a free port.

Every server is a child process in its own session, started with a bounded wait for it to
answer and stopped by its PID (its process group: the MLflow server has workers) in a
``finally``, also when the test or the start fails. Usage::

    with postgres(tmp) as pg, s3() as store, mlflow_server(tmp, pg, store) as uri: ...

PostgreSQL refuses to run as root, so when we are root (here and on CI) initdb and postgres
run as the ``postgres`` user (``setpriv`` execs, so the PID we hold is the postmaster's).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

PG_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/local/bin", "/usr/bin")
BUCKET = "simgan-test"
#: dummy credentials: moto accepts any; real ones come from the user's environment
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_bin() -> Path | None:
    """The directory holding initdb and postgres, or None when PostgreSQL is not installed."""
    for d in PG_DIRS:
        if (Path(d) / "initdb").is_file() and (Path(d) / "postgres").is_file():
            return Path(d)
    return None


def require_postgres() -> None:
    """Skip the calling test without PostgreSQL; fail on CI, where .ci/run installs it."""
    import pytest

    if pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed on CI (.ci/run installs it)")
        pytest.skip("PostgreSQL binaries (initdb, postgres) not installed "
                    "(Debian: apt-get install postgresql)")


def _as_postgres(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *cmd]


def _wait(ready: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float,
          log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{_tail(log)}")
        if ready():
            return
        time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer within {timeout:.0f} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"


@contextmanager
def _process(cmd: list[str], log: Path, env: dict[str, str] | None = None,
             stop_signal: int = signal.SIGTERM) -> Iterator[subprocess.Popen]:
    """A child in its own session; on exit its process group gets ``stop_signal``, then
    SIGKILL after 15 s."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        _stop(proc, stop_signal)


def _stop(proc: subprocess.Popen, sig: int) -> None:
    if proc.poll() is not None:
        return
    with _ignore_gone():
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with _ignore_gone():
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def _ignore_gone() -> suppress:
    return suppress(ProcessLookupError)


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str = "postgres"

    def uri(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"


@contextmanager
def postgres(timeout: float = 120) -> Iterator[Postgres]:
    """A throwaway PostgreSQL cluster (trust auth, loopback only, fsync off) with a database
    ``mlflow``. Its data lives in a temp dir the ``postgres`` user owns, removed afterwards."""
    import psycopg2

    bindir = pg_bin()
    if bindir is None:
        raise RuntimeError("PostgreSQL binaries not found in " + ", ".join(PG_DIRS))
    base = Path(tempfile.mkdtemp(prefix="simgan-pg-"))
    try:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(base, user.pw_uid, user.pw_gid)
        data = base / "data"
        subprocess.run(_as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                                     "-U", "postgres", "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=timeout)
        port = free_port()
        cmd = _as_postgres([str(bindir / "postgres"), "-D", str(data), "-k", str(base),
                            "-h", "127.0.0.1", "-p", str(port), "-c", "fsync=off",
                            "-c", "full_page_writes=off", "-c", "synchronous_commit=off"])
        # SIGINT is PostgreSQL's fast shutdown (SIGTERM waits for clients to leave)
        with _process(cmd, base / "server.out", stop_signal=signal.SIGINT) as proc:
            def ready() -> bool:
                try:
                    psycopg2.connect(host="127.0.0.1", port=port, user="postgres",
                                     dbname="postgres", connect_timeout=2).close()
                    return True
                except psycopg2.OperationalError:
                    return False

            _wait(ready, proc, "postgres", timeout, base / "server.out")
            conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres",
                                    dbname="postgres")
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("CREATE DATABASE mlflow")
            conn.close()
            yield Postgres(port)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@dataclass(frozen=True)
class S3:
    endpoint: str
    bucket: str = BUCKET
    process: subprocess.Popen | None = None

    def stop(self) -> None:
        """Stop the server now (a test of an S3 store going away); idempotent."""
        if self.process is not None:
            _stop(self.process, signal.SIGTERM)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix)
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


@contextmanager
def s3(log_dir: Path, timeout: float = 120) -> Iterator[S3]:
    """moto's S3 server (``moto_server``, a child process) with the bucket ``simgan-test``."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("moto_server")
    log = log_dir / "moto.log"
    env = {**os.environ, **AWS_ENV}
    with _process([str(exe), "-H", "127.0.0.1", "-p", str(port)], log, env=env) as proc:
        _wait(lambda: _answers(f"{endpoint}/moto-api/"), proc, "moto_server", timeout, log)
        store = S3(endpoint, process=proc)
        store.client().create_bucket(Bucket=store.bucket)
        yield store


def _answers(url: str, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False


def mlflow_env(store: S3) -> dict[str, str]:
    """What the MLflow *server* needs to write artifacts to the S3 store."""
    return {**AWS_ENV, "MLFLOW_S3_ENDPOINT_URL": store.endpoint,
            "MLFLOW_DISABLE_TELEMETRY": "true"}


@contextmanager
def mlflow_server(log_dir: Path, pg: Postgres, store: S3, prefix: str = "mlartifacts",
                  timeout: float = 300) -> Iterator[str]:
    """``mlflow server`` with the PostgreSQL backend store and artifacts proxied to
    ``s3://<bucket>/<prefix>``; yields its tracking URI (http://127.0.0.1:<port>)."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("mlflow")
    cmd = [str(exe), "server", "--backend-store-uri", pg.uri("mlflow"),
           "--artifacts-destination", f"s3://{store.bucket}/{prefix}",
           "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, **mlflow_env(store)}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = log_dir / "mlflow-server.log"
    with _process(cmd, log, env=env) as proc:
        _wait(lambda: _answers(f"{uri}/health"), proc, "mlflow server", timeout, log)
        yield uri
