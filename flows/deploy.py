"""Serve the pipeline flow on a cron schedule (a long-running process, stopped with Ctrl-C).

Schedules are created and fired by a Prefect API server, so this needs a real one: the
ephemeral server that ``python -m flows.pipeline`` starts by itself lives only as long as that
process and never schedules anything. In one terminal::

    prefect server start --host 127.0.0.1          # UI and API on http://127.0.0.1:4200

and in another (same PREFECT_HOME and other variables as the Makefile exports)::

    export PREFECT_API_URL=http://127.0.0.1:4200/api
    python -m flows.deploy --cron "0 3 * * *" [--task NAME|all] [--target STAGE ...] [-S k=v ...]

The runner polls the server and starts each scheduled run in a subprocess of this process, in
this checkout, with the parameters given here (the UI can start extra runs with others). Runs
never overlap (``limit=1``): DVC locks the workspace during ``repro`` anyway.

Pitfalls measured here: with SQLAlchemy 2.1 the Prefect 3.8 scheduler never fires cron runs
(hence the pins). Stop this process (Ctrl-C) before the server: on shutdown it pauses the
deployment's schedule through the API and hangs retrying if the server is already gone. The
first run starts at the next cron tick, not at once; ``prefect deployment run
'simgan-pipeline/simgan-scheduled'`` starts one now.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from flows.pipeline import DEFAULT_RETRIES, parse_set_params, pipeline

DEFAULT_DEPLOYMENT = "simgan-scheduled"


def deployment_parameters(
    task: str,
    targets: Sequence[str],
    set_params: Sequence[str],
    retries: int = DEFAULT_RETRIES,
    force: bool = False,
    root: str | None = None,
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
    return parameters


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the CLI, check that a Prefect server is configured, then serve until interrupted."""
    from prefect.types.entrypoint import EntrypointType

    parser = argparse.ArgumentParser(
        prog="python -m flows.deploy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cron", required=True, help='cron schedule, e.g. "0 3 * * *"')
    parser.add_argument("--name", default=DEFAULT_DEPLOYMENT, help="deployment name")
    parser.add_argument("--task", default="all", help="gaze, hand, or all (default)")
    parser.add_argument("--target", action="append", default=[], metavar="STAGE")
    parser.add_argument("-S", "--set-param", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--retries", type=int, default=DEFAULT_RETRIES)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--root", default=None, help="DVC project root (default: this repo)")
    parser.add_argument("--timezone", default=None, help="IANA zone for the cron (default UTC)")
    args = parser.parse_args(argv)

    from prefect.settings import get_current_settings

    # The environment or the active profile (`prefect config set PREFECT_API_URL=...`).
    if not get_current_settings().api.url:
        parser.error(
            "PREFECT_API_URL is not set: start `prefect server start --host 127.0.0.1` and "
            "export PREFECT_API_URL=http://127.0.0.1:4200/api (see this module's docstring)"
        )
    try:
        parameters = deployment_parameters(
            args.task, args.target, args.set_param, args.retries, args.force, args.root
        )
    except ValueError as exc:
        parser.error(str(exc))

    schedule_kwargs: dict[str, object] = {"cron": args.cron}
    if args.timezone:
        from prefect.schedules import Cron

        schedule_kwargs = {"schedule": Cron(args.cron, timezone=args.timezone)}
    pipeline.serve(
        name=args.name,
        parameters=parameters,
        description="SimGAN DVC pipeline, one Prefect task per DVC stage",
        tags=["simgan", "dvc"],
        limit=1,
        # "flows.pipeline.pipeline": works from any cwd as long as the project is installed.
        entrypoint_type=EntrypointType.MODULE_PATH,
        **schedule_kwargs,  # type: ignore[arg-type]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
