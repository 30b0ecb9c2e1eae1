"""Serve the pipeline flow on a schedule (cron or interval) from a real Prefect server.

``make schedule CRON="0 3 * * *"`` (or ``INTERVAL=3600``) starts the local server
(``flows.server``) and this process in the background (``flows.schedule``); by hand, with the
Makefile's variables and a server running::

    export PREFECT_API_URL=http://127.0.0.1:4200/api
    python -m flows.deploy (--cron "0 3 * * *" | --interval 3600) [--task NAME|all]
        [--target STAGE ...] [-S k=v ...] [--lock-wait SECONDS]

What keeps it safe to leave alone:

- single flight is enforced by the server: the deployment has a concurrency limit of 1
  (``ENQUEUE``: a run that comes due while one is running waits for it), whichever process
  or UI button started it;
- a run that finds DVC locked by someone's manual ``dvc repro`` waits for it (``--lock-wait``,
  default ``$SIMGAN_DVC_LOCK_WAIT_SECONDS`` or 30 min; ``flows.dvc_wait``);
- ``-S`` overrides run as ``dvc exp run --temp``: params.yaml in the checkout is never edited;
- stopping this process leaves the schedule active (``pause_on_shutdown=False``) and the
  server keeps it in its database; if the server goes away, this process waits for it and
  serves again, so a server restart loses no schedule.

The first run of a cron starts at the next tick; of an interval, at once.
``prefect deployment run 'simgan-pipeline/simgan-scheduled'`` starts one now.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence

from flows.pipeline import DEFAULT_RETRIES, parse_set_params, pipeline

DEFAULT_DEPLOYMENT = "simgan-scheduled"


def deployment_parameters(
    task: str,
    targets: Sequence[str],
    set_params: Sequence[str],
    retries: int = DEFAULT_RETRIES,
    force: bool = False,
    root: str | None = None,
    lock_wait_seconds: float | None = None,
) -> dict[str, object]:
    """The flow parameters every scheduled run gets (only non-default ones)."""
    parameters: dict[str, object] = {"task": None if task in ("all", "") else task}
    if targets:
        parameters["targets"] = list(targets)
    overrides = parse_set_params(set_params)
    if overrides:
        parameters["overrides"] = overrides
    if retries != DEFAULT_RETRIES:
        parameters["retries"] = retries
    if force:
        parameters["force"] = True
    if root:
        parameters["root"] = os.path.abspath(root)
    if lock_wait_seconds is not None:
        parameters["lock_wait_seconds"] = lock_wait_seconds
    return parameters


def schedule_kwargs(
    cron: str | None, interval: float | None, timezone: str | None = None
) -> dict[str, object]:
    """The schedule arguments of ``serve``: exactly one of a cron or an interval (seconds)."""
    if (cron is None) == (interval is None):
        raise ValueError("give exactly one of --cron and --interval")
    if interval is not None:
        if interval <= 0:
            raise ValueError(f"--interval must be > 0 seconds (got {interval})")
        return {"interval": interval}
    if timezone:
        from prefect.schedules import Cron

        return {"schedule": Cron(cron, timezone=timezone)}
    return {"cron": cron}


def single_flight() -> object:
    """The deployment's concurrency limit, held by the server: one run at a time, queued."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    return ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)


def _wait_for_server(url: str, log: Callable[[str], None]) -> None:
    """Block until the API at ``url`` answers again, logging once a minute."""
    from flows.server import is_healthy

    waited = 0
    while not is_healthy(url):
        if waited % 60 == 0:
            log(f"Prefect server at {url} is not answering; waiting for it ({waited} s)")
        time.sleep(5)
        waited += 5


def serve_forever(name: str, parameters: dict[str, object], schedule: dict[str, object],
                  api: str, log: Callable[[str], None] = print) -> None:
    """Serve the deployment; when the server goes away, wait for it and serve again.

    Returns when serving ends normally (Ctrl-C / SIGTERM end the process).
    """
    from prefect.types.entrypoint import EntrypointType

    while True:
        _wait_for_server(api, log)
        try:
            pipeline.serve(
                name=name,
                parameters=parameters,
                description="SimGAN DVC pipeline, one Prefect task per DVC stage",
                tags=["simgan", "dvc"],
                limit=1,
                global_limit=single_flight(),  # type: ignore[arg-type]
                pause_on_shutdown=False,
                # "flows.pipeline.pipeline": works from any cwd once the project is installed.
                entrypoint_type=EntrypointType.MODULE_PATH,
                **schedule,  # type: ignore[arg-type]
            )
            return
        except Exception as exc:  # the API went away mid-serve: wait for it, then serve again
            log(f"serving stopped ({type(exc).__name__}: {exc}); serving again once the "
                "server answers")
            time.sleep(5)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the CLI, check that a Prefect server answers, then serve until stopped."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.deploy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cron", default=None, help='cron schedule, e.g. "0 3 * * *"')
    parser.add_argument("--interval", type=float, default=None, help="seconds between runs")
    parser.add_argument("--name", default=DEFAULT_DEPLOYMENT, help="deployment name")
    parser.add_argument("--task", default="all", help="gaze, hand, or all (default)")
    parser.add_argument("--target", action="append", default=[], metavar="STAGE")
    parser.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--root", default=None, help="DVC project root (default: this repo)")
    parser.add_argument("--timezone", default=None, help="IANA zone for the cron (default UTC)")
    parser.add_argument("--lock-wait", type=float, default=None, metavar="SECONDS",
                        help="how long a run waits for another DVC process (default 1800)")
    args = parser.parse_args(argv)

    from prefect.settings import get_current_settings

    from flows.server import is_healthy

    # The environment or the active profile (`prefect config set PREFECT_API_URL=...`).
    api = get_current_settings().api.url
    if not api:
        parser.error(
            "PREFECT_API_URL is not set: use `make schedule`, or start `python -m flows.server "
            "start` and export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    if not is_healthy(api):
        parser.error(f"no Prefect server answers at {api}: start one with "
                     "`python -m flows.server start` (or use `make schedule`)")
    try:
        schedule = schedule_kwargs(args.cron, args.interval, args.timezone)
        parameters = deployment_parameters(
            args.task, args.target, args.set_param, args.retries, args.force, args.root,
            args.lock_wait,
        )
    except ValueError as exc:
        parser.error(str(exc))
    serve_forever(args.name, parameters, schedule, api)
    return 0


if __name__ == "__main__":
    sys.exit(main())
