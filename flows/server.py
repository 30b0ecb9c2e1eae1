"""A local Prefect API server on the loopback interface: start it if needed, stop it by PID.

Schedules need a real server (the ephemeral one of ``python -m flows.pipeline`` lives only as
long as that process). The server keeps its database in ``$PREFECT_HOME`` (``.prefect/`` in the
project), so deployments and their schedules survive a restart. Its PID and log go to
``$PREFECT_HOME/server.pid`` and ``server.log``.

Command line::

    python -m flows.server start [--port 4200]    # no-op if a Prefect server already answers
    python -m flows.server status
    python -m flows.server stop                   # only the server this module started
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ServerStartError",
    "api_url",
    "is_healthy",
    "read_pid",
    "stop_pid",
    "start_server",
    "stop_server",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
DEFAULT_START_TIMEOUT = 120.0  # 10-25 s on 2 idle cores; much more under load


class ServerStartError(RuntimeError):
    """The server could not be started; the message is one line saying what to do."""


def api_url(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    """The PREFECT_API_URL of a server on ``host:port``."""
    return f"http://{host}:{port}/api"


def is_healthy(url: str, timeout: float = 2.0) -> bool:
    """True when a Prefect API answers its health check at ``url`` (an ``.../api`` URL)."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200 and response.read().strip() == b"true"
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _port_taken(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def prefect_home() -> Path:
    """Where Prefect keeps its state (PREFECT_HOME; the Makefile puts it in the project), and
    where the server's and the schedule's PID and log files go."""
    return Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")).resolve()


def pid_file(home: Path | None = None) -> Path:
    return (home or prefect_home()) / "server.pid"


def log_file(home: Path | None = None) -> Path:
    return (home or prefect_home()) / "server.log"


def _last_line(path: Path) -> str:
    """The log's last exception line (``...Error: ...``), else its last line."""
    with contextlib.suppress(OSError):
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines()]
        lines = [line for line in lines if line]
        errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
        if errors or lines:
            return (errors or lines)[-1][:200]
    return "(empty log)"


def read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        pid = int(path.read_text().strip())
        os.kill(pid, 0)
        return pid
    return None


def start_server(
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    home: Path | None = None,
    timeout: float = DEFAULT_START_TIMEOUT,
    ui: bool = True,
) -> int | None:
    """Start ``prefect server start`` in the background unless one already answers.

    Returns the new server's PID, or None when a Prefect server was already running there.
    Raises ServerStartError (one line: what went wrong and what to do) when the port is taken
    by something else, the server exits early, or it does not answer within ``timeout``.
    """
    url = api_url(host, port)
    if is_healthy(url):
        return None
    if _port_taken(host, port):
        raise ServerStartError(
            f"{host}:{port} is taken by something that is not a Prefect server: stop it or "
            f"pick another port (make schedule PREFECT_PORT=4300)"
        )
    home = (home or prefect_home()).resolve()
    home.mkdir(parents=True, exist_ok=True)
    log = log_file(home)
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", host,
               "--port", str(port), "--analytics-off", "--ui" if ui else "--no-ui"]
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)  # the server itself must not talk to another API
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
    pid_file(home).write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_healthy(url):
            return process.pid
        code = process.poll()
        if code is not None:
            pid_file(home).unlink(missing_ok=True)
            raise ServerStartError(
                f"prefect server exited with code {code} before answering on {url} "
                f"(log {log}: {_last_line(log)}); fix that, then run make schedule again"
            )
        time.sleep(0.5)
    stop_pid(process.pid)
    pid_file(home).unlink(missing_ok=True)
    raise ServerStartError(
        f"prefect server did not answer on {url} within {timeout:.0f} s (log {log}); "
        f"the machine may be busy: retry, or raise PREFECT_SERVER_START_TIMEOUT"
    )


def stop_pid(pid: int, grace: float = 15.0) -> None:
    """SIGTERM the process group ``pid`` leads, then SIGKILL after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def stop_server(home: Path | None = None) -> bool:
    """Stop the server whose PID ``start_server`` recorded; False when none was running."""
    path = pid_file(home)
    pid = read_pid(path)
    path.unlink(missing_ok=True)
    if pid is None:
        return False
    stop_pid(pid)
    return True


def main(argv: list[str] | None = None) -> int:
    """CLI: start, stop or report the local server; errors are one line on stderr."""
    parser = argparse.ArgumentParser(prog="python -m flows.server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--no-ui", action="store_true", help="API only")
    parser.add_argument("--timeout", type=float, default=float(
        os.environ.get("PREFECT_SERVER_START_TIMEOUT", DEFAULT_START_TIMEOUT)))
    args = parser.parse_args(argv)
    url = api_url(args.host, args.port)
    if args.action == "start":
        try:
            pid = start_server(args.host, args.port, timeout=args.timeout, ui=not args.no_ui)
        except ServerStartError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        state = "already running" if pid is None else f"started (PID {pid}, log {log_file()})"
        print(f"Prefect server {state}: {url}")
        return 0
    if args.action == "stop":
        stopped = stop_server()
        print("Prefect server stopped" if stopped else "no Prefect server started by us is running")
        return 0
    healthy = is_healthy(url)
    print(f"Prefect server at {url}: {'up' if healthy else 'down'}")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
