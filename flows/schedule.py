"""``make schedule`` / ``make schedule-stop``: the local Prefect server plus the serving process,
both in the background, both stopped by the PIDs recorded in ``$PREFECT_HOME``.

    python -m flows.schedule start (--cron "0 3 * * *" | --interval 3600) [--port 4200]
        [any other flows.deploy option]
    python -m flows.schedule stop      # the serving process, then the server (schedule kept)

``start`` returns once the server holds the deployment, so a team can close the terminal.
The schedule is kept active when both are stopped: ``make schedule`` again resumes it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from flows.deploy import DEFAULT_DEPLOYMENT
from flows.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_START_TIMEOUT,
    ServerStartError,
    api_url,
    prefect_home,
    read_pid,
    start_server,
    stop_pid,
    stop_server,
)

FLOW_NAME = "simgan-pipeline"


def serve_pid_file(home: Path | None = None) -> Path:
    return (home or prefect_home()) / "schedule.pid"


def serve_log_file(home: Path | None = None) -> Path:
    return (home or prefect_home()) / "schedule.log"


def deployment_ready(api: str, name: str) -> bool:
    """True once the server knows the deployment ``simgan-pipeline/<name>``."""
    import httpx

    try:
        response = httpx.get(f"{api}/deployments/name/{FLOW_NAME}/{name}", timeout=5)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def start(deploy_args: Sequence[str], host: str, port: int, timeout: float,
          name: str = DEFAULT_DEPLOYMENT) -> int:
    """Start the server if needed and ``flows.deploy`` detached; return the serving PID."""
    home = prefect_home()
    start_server(host, port, home, timeout=timeout)
    api = api_url(host, port)
    old = read_pid(serve_pid_file(home))
    if old is not None:  # a new schedule replaces the old serving process
        stop_pid(old)
    env = {**os.environ, "PREFECT_API_URL": api}
    with open(serve_log_file(home), "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "flows.deploy", "--name", name, *deploy_args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )
    serve_pid_file(home).write_text(f"{process.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            serve_pid_file(home).unlink(missing_ok=True)
            raise ServerStartError(
                f"flows.deploy exited with code {process.returncode} "
                f"(see {serve_log_file(home)}); fix its arguments and run make schedule again"
            )
        if deployment_ready(api, name):
            return process.pid
        time.sleep(1)
    stop_pid(process.pid)
    serve_pid_file(home).unlink(missing_ok=True)
    raise ServerStartError(
        f"the deployment did not appear on {api} within {timeout:.0f} s "
        f"(see {serve_log_file(home)}); retry when the machine is less busy"
    )


def stop() -> list[str]:
    """Stop the serving process, then the server (by recorded PIDs); say what was stopped."""
    stopped = []
    pid = read_pid(serve_pid_file())
    serve_pid_file().unlink(missing_ok=True)
    if pid is not None:
        stop_pid(pid)
        stopped.append(f"serving process {pid}")
    with contextlib.suppress(OSError):
        if stop_server():
            stopped.append("Prefect server")
    return stopped


def main(argv: Sequence[str] | None = None) -> int:
    """CLI; errors are one line on stderr (exit 2)."""
    parser = argparse.ArgumentParser(prog="python -m flows.schedule", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--name", default=DEFAULT_DEPLOYMENT)
    parser.add_argument("--timeout", type=float, default=float(
        os.environ.get("PREFECT_SERVER_START_TIMEOUT", DEFAULT_START_TIMEOUT)))
    args, deploy_args = parser.parse_known_args(argv)
    if args.action == "stop":
        stopped = stop()
        print(f"stopped: {', '.join(stopped)}" if stopped else "nothing to stop")
        return 0
    if not any(a in ("--cron", "--interval") for a in deploy_args):
        print('error: give a schedule: make schedule CRON="0 3 * * *" or INTERVAL=3600',
              file=sys.stderr)
        return 2
    try:
        pid = start(deploy_args, args.host, args.port, args.timeout, args.name)
    except ServerStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ui = f"http://{args.host}:{args.port}"
    print(f"Scheduled {FLOW_NAME}/{args.name} (serving PID {pid}, log {serve_log_file()}). "
          f"UI: {ui}  Stop: make schedule-stop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
