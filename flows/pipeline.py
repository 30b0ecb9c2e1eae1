"""The DVC pipeline as a Prefect flow: one Prefect task per DVC stage, run one after another.

DVC stays the source of truth: the stage graph comes from ``dvc.yaml`` (through DVC's own
index), each task runs ``dvc repro --single-item <stage>`` so DVC decides whether the stage is up
to date and records ``dvc.lock``, and nothing is cached by Prefect. Prefect adds what DVC lacks:
per-stage logs and retries, schedules (see ``flows.deploy``) and a run history. A stage that
finds the workspace locked by another DVC process (a manual ``dvc repro``) waits for it
(``flows.dvc_wait``). Params overrides (``-S``) run as ``dvc exp run --temp``: DVC applies them
to a temporary copy, never to the user's params.yaml.

Stages run strictly one at a time: DVC holds a repository lock during ``repro``, so two stages
of one workspace cannot run concurrently anyway.

Command line (from the repository root)::

    python -m flows.pipeline [--task NAME|all] [--target STAGE ...] [-S key=value ...] [--force]

Environment: Prefect reads ``PREFECT_HOME`` and its settings when it is first imported. The
Makefile exports the project's variables (see ``flows.environment``) before Python starts; this
module also sets any that are missing, for this repository, before it imports Prefect.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from io import StringIO
from pathlib import Path
from typing import Any, TypedDict

from flows.dvc_process import StageFailedError, repro_single, run_dvc
from flows.environment import apply_project_environment
from flows.side_by_side import default_max_parallel, run_side_by_side, threads_per_stage
from flows.stage_graph import list_stages, stage_graph, stage_matches_task

#: The repository this module belongs to (only a project root if it looks like one).
MODULE_ROOT = Path(__file__).resolve().parents[1]


def _looks_like_project(path: Path) -> bool:
    """True for a source checkout (not site-packages), where project-local state may live."""
    return (
        (path / ".dvc").is_dir()
        or (path / "dvc.yaml").is_file()
        or (path / "pyproject.toml").is_file()
    )


if _looks_like_project(MODULE_ROOT):
    # Must happen before Prefect is imported: it reads PREFECT_HOME etc. at import time.
    apply_project_environment(MODULE_ROOT)

from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NONE  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402

__all__ = [
    "OverrideError",
    "StageFailedError",
    "StageResult",
    "apply_overrides",
    "list_stages",
    "main",
    "parse_set_params",
    "pipeline",
    "run_stage",
    "stage_matches_task",
]

PARAMS_FILE = "params.yaml"
DEFAULT_RETRIES = 1
DEFAULT_RETRY_DELAY_SECONDS = 5.0


class StageResult(TypedDict):
    """What one stage did: ``ran``, ``skipped`` (DVC found it up to date) or ``failed``."""

    status: str
    seconds: float


class OverrideError(ValueError):
    """A params override names a missing key (or adds an existing one), like ``dvc -S``."""


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The DVC project root: ``root`` if given, else this checkout, else the one around cwd."""
    if root is not None:
        return Path(root).resolve()
    if (MODULE_ROOT / ".dvc").is_dir():
        return MODULE_ROOT
    from dvc.repo import Repo

    return Path(Repo.find_root()).resolve()


# --------------------------------------------------------------------------------------------
# Params overrides, as `dvc exp run -S key=value` applies them (for editing a copy: the flow
# itself passes overrides to `dvc exp run --temp` and never edits the workspace params.yaml)
# --------------------------------------------------------------------------------------------


def _yaml_value(value: object) -> object:
    """Strings are parsed as YAML (``0.5`` -> float, ``[1, 2]`` -> list); others pass as is."""
    if not isinstance(value, str) or value == "":
        return value
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe", pure=True).load(value)
    except YAMLError as exc:
        raise OverrideError(f"value {value!r} is not valid YAML: {exc}") from None


def _split_key(spec: str) -> tuple[str, str, str]:
    """``[+|++|~][file:]dotted.key`` -> (mode, file, key), mode in set/add/upsert/delete."""
    mode = "set"
    for prefix, name in (("++", "upsert"), ("+", "add"), ("~", "delete")):
        if spec.startswith(prefix):
            mode, spec = name, spec[len(prefix) :]
            break
    file, sep, key = spec.rpartition(":")
    if not sep:
        file = PARAMS_FILE
    if not key or any(part == "" for part in key.split(".")):
        raise OverrideError(f"invalid params key {spec!r}")
    return mode, file, key


def _child(container: Any, part: str) -> Any:
    """Index a mapping by key or a sequence by integer position; KeyError when absent."""
    if isinstance(container, list):
        try:
            return container[int(part)]
        except (ValueError, IndexError) as exc:
            raise KeyError(part) from exc
    if isinstance(container, dict):
        return container[part]
    raise KeyError(part)


def _apply_one(data: Any, mode: str, key: str, value: object, where: str) -> None:
    """Apply one override to a loaded (round-trip) YAML document, in place."""
    parts = key.split(".")
    parent = data
    for depth, part in enumerate(parts[:-1]):
        try:
            parent = _child(parent, part)
        except KeyError:
            if mode not in ("add", "upsert") or not isinstance(parent, dict):
                missing = ".".join(parts[: depth + 1])
                raise OverrideError(
                    f"{where}: no key {missing!r} (use +{key}=... to add it)"
                ) from None
            parent[part] = {}
            parent = parent[part]
    last = parts[-1]
    try:
        _child(parent, last)
        exists = True
    except KeyError:
        exists = False
    if mode == "delete":
        if not exists:
            raise OverrideError(f"{where}: cannot delete missing key {key!r}")
        del parent[int(last) if isinstance(parent, list) else last]
        return
    if mode == "set" and not exists:
        raise OverrideError(f"{where}: no key {key!r} (use +{key}=... to add it)")
    if mode == "add" and exists:
        raise OverrideError(f"{where}: key {key!r} exists (use {key}=... to change it)")
    if isinstance(parent, list):
        if not exists:
            raise OverrideError(f"{where}: list index {key!r} out of range")
        parent[int(last)] = value
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise OverrideError(f"{where}: {'.'.join(parts[:-1])!r} is not a mapping")


def _write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so readers never see a half-written file."""
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def apply_overrides(root: str | os.PathLike[str], overrides: Mapping[str, object]) -> dict:
    """Change params files like ``dvc exp run -S`` does, keeping comments and key order.

    Keys are dotted paths (``train.lr``, list items by index: ``sizes.0``), optionally
    ``file.yaml:key`` (default ``params.yaml``). As with DVC, a plain key must exist already;
    ``+key`` adds a new one, ``++key`` sets it either way, ``~key`` deletes it (value ignored).
    String values are parsed as YAML. Every override is checked before any file is written;
    each file is replaced atomically. Returns ``{file:key: new value}``; raises
    OverrideError (and writes nothing) if any override does not fit.
    """
    from ruamel.yaml import YAML

    root = Path(root)
    by_file: dict[str, list[tuple[str, str, object]]] = {}
    for spec, value in overrides.items():
        mode, file, key = _split_key(spec)
        by_file.setdefault(file, []).append((mode, key, _yaml_value(value)))

    yaml = YAML()  # round-trip: comments, quotes and order survive
    yaml.preserve_quotes = True
    yaml.default_flow_style = False
    pending: list[tuple[Path, Any]] = []
    applied: dict[str, object] = {}
    for file, changes in by_file.items():
        path = root / file
        data = yaml.load(path.read_text(encoding="utf-8")) if path.exists() else None
        if data is None:
            data = {}
        for mode, key, value in changes:
            _apply_one(data, mode, key, value, where=file)
            applied[f"{file}:{key}"] = None if mode == "delete" else value
        pending.append((path, data))

    for path, data in pending:
        buffer = StringIO()
        yaml.dump(data, buffer)
        _write_atomically(path, buffer.getvalue())
    return applied


def parse_set_params(specs: Iterable[str]) -> dict[str, str]:
    """``["train.lr=0.1", "~old.key"]`` (the CLI's ``-S``) -> overrides for ``apply_overrides``."""
    overrides: dict[str, str] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep and not key.startswith("~"):
            raise ValueError(f"-S expects key=value, got {spec!r}")
        overrides[key.strip()] = value
    return overrides


# --------------------------------------------------------------------------------------------
# One DVC stage as a Prefect task
# --------------------------------------------------------------------------------------------


@task(
    name="dvc-stage",
    task_run_name="{stage_name}",
    retries=DEFAULT_RETRIES,
    retry_delay_seconds=DEFAULT_RETRY_DELAY_SECONDS,
    cache_policy=NONE,  # DVC is the cache; Prefect must neither skip nor store results
    persist_result=False,
)
def run_stage(
    stage_name: str,
    root: str,
    force: bool = False,
    pipeline_id: str | None = None,
    lock_wait_seconds: float | None = None,
    threads: int | None = None,
) -> StageResult:
    """Run ``dvc repro --single-item <stage>`` in ``root``, streaming its output to the log.

    ``threads``: the torch threads the stage may use (set when stages run side by side).

    Returns ``skipped`` when DVC found the stage up to date (or restored it from its run
    cache) and ``ran`` when it executed the command. While another DVC process holds the
    workspace, waits with backoff up to ``lock_wait_seconds`` (default: see
    :func:`flows.dvc_wait.max_wait_seconds`) instead of failing. Raises StageFailedError on
    any other non-zero exit, with the tail of stderr, so Prefect retries and then fails the task.
    """
    logger = get_run_logger()
    pipeline_id = pipeline_id or (str(flow_run.id) if flow_run.id else None)
    status, seconds = repro_single(Path(root).resolve(), stage_name, logger, force=force,
                                   pipeline_id=pipeline_id,
                                   lock_wait_seconds=lock_wait_seconds, threads=threads)
    logger.info("stage %s %s in %.1f s", stage_name, status, seconds)
    return StageResult(status=status, seconds=seconds)


def override_specs(overrides: Mapping[str, object]) -> list[str]:
    """``{"train.lr": 0.1, "~old": None}`` -> ``["train.lr=0.1", "~old"]`` for ``dvc -S``."""
    specs = []
    for key, value in overrides.items():
        if key.startswith("~"):
            specs.append(key)
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            specs.append(f"{key}={text}")
    return specs


@task(
    name="dvc-exp-run",
    retries=DEFAULT_RETRIES,
    retry_delay_seconds=DEFAULT_RETRY_DELAY_SECONDS,
    cache_policy=NONE,
    persist_result=False,
)
def run_experiment(
    root: str,
    set_params: list[str],
    stages: list[str],
    force: bool = False,
    pipeline_id: str | None = None,
    lock_wait_seconds: float | None = None,
) -> dict[str, StageResult]:
    """``dvc exp run --temp -S ... <stages>``: a DVC experiment with params overrides.

    DVC applies the overrides to a temporary copy of the workspace (under .dvc/tmp/exps), so
    the user's params.yaml is never edited; results land in the DVC cache and an experiment
    ref (``dvc exp show``, ``dvc exp apply``). One Prefect task for the whole run: per stage,
    ``ran`` or ``skipped`` from DVC's output (seconds are the whole run's, on each ran stage).
    """
    logger = get_run_logger()
    root_path = Path(root).resolve()
    command = [sys.executable, "-m", "dvc", "exp", "run", "--temp"]
    if force:
        command.append("--force")
    for spec in set_params:
        command += ["-S", spec]
    command += list(stages)
    logger.info("$ %s  (cwd=%s)", " ".join(command[2:]), root_path)
    ran, seconds = run_dvc(command, root_path, pipeline_id, logger, lock_wait_seconds,
                            "dvc exp run")
    return {
        name: StageResult(status="ran" if name in ran else "skipped",
                          seconds=seconds if name in ran else 0.0)
        for name in stages
    }


# --------------------------------------------------------------------------------------------
# The flow
# --------------------------------------------------------------------------------------------


def _format_summary(summary: Mapping[str, Mapping[str, Any]], pending: Sequence[str]) -> str:
    """A small table for the flow log."""
    rows = [
        f"{name:<40} {info['status']:<8} {info['seconds']:>8.1f} s"
        for name, info in summary.items()
    ]
    rows += [f"{name:<40} {'not run':<8}" for name in pending]
    return "\n".join(["stage summary:", *rows])


@flow(name="simgan-pipeline", validate_parameters=True)
def pipeline(
    task: str | None = None,
    targets: list[str] | None = None,
    overrides: dict[str, object] | None = None,
    root: str | None = None,
    force: bool = False,
    retries: int = DEFAULT_RETRIES,
    retry_delay_seconds: float = DEFAULT_RETRY_DELAY_SECONDS,
    lock_wait_seconds: float | None = None,
    max_parallel: int = 1,
) -> dict[str, StageResult]:
    """Run the DVC stages for ``task`` (or, with overrides, as an experiment).

    With ``max_parallel`` > 1, stages whose upstream stages are done run side by side, at most
    that many at once, the cores split between them (``flows.side_by_side``); with 1 they run
    one after another.

    ``task=None`` runs every task; ``targets`` limits the run to those stages and their
    ancestors; ``force`` reruns stages even when DVC finds them up to date. Each stage is one
    Prefect task with ``retries`` retries; a stage that finds DVC locked by another process
    waits up to ``lock_wait_seconds`` (flows.dvc_wait). ``overrides`` (``dvc -S`` keys) run the
    selected stages as one ``dvc exp run --temp``: params.yaml in the workspace is never edited.
    Stage subprocesses get ``SIMGAN_PIPELINE_ID`` (this flow run's id) so MLflow runs of one
    flow run can be grouped. Returns ``{stage: {"status": "ran" | "skipped", "seconds": wall
    time}}``; on the first failing stage the flow logs the summary and fails with a message
    naming the stage.
    """
    logger = get_run_logger()
    root_path = resolve_root(root)
    stages = list_stages(root_path, targets=targets, task=task)
    logger.info("%d stage(s) to check, in order: %s", len(stages), ", ".join(stages) or "-")
    pipeline_id = str(flow_run.id) if flow_run.id else None

    if overrides:
        specs = override_specs(overrides)
        logger.info("params overrides, as a DVC experiment (params.yaml untouched): %s", specs)
        runner_exp = run_experiment.with_options(
            retries=retries, retry_delay_seconds=retry_delay_seconds
        )
        summary = runner_exp(str(root_path), specs, stages, force=force,
                             pipeline_id=pipeline_id, lock_wait_seconds=lock_wait_seconds)
        logger.info(_format_summary(summary, []))
        return summary

    runner = run_stage.with_options(retries=retries, retry_delay_seconds=retry_delay_seconds)
    if max_parallel > 1:
        return _side_by_side(runner, root_path, stages, targets, task, force, pipeline_id,
                             lock_wait_seconds, max_parallel, retries, logger)
    summary = {}
    for index, name in enumerate(stages):
        started = time.monotonic()
        try:
            result = runner(name, str(root_path), force=force, pipeline_id=pipeline_id,
                            lock_wait_seconds=lock_wait_seconds)
        except Exception as exc:
            summary[name] = StageResult(status="failed", seconds=time.monotonic() - started)
            logger.error(_format_summary(summary, stages[index + 1 :]))
            raise StageFailedError(
                f"stage {name!r} failed after {retries + 1} attempt(s): {exc}"
            ) from exc
        summary[name] = StageResult(
            status=result["status"], seconds=round(time.monotonic() - started, 3)
        )
    logger.info(_format_summary(summary, []))
    return summary


class _PrefectHandle:
    """A submitted Prefect task as :func:`flows.side_by_side.run_side_by_side` polls it."""

    def __init__(self, future: Any) -> None:
        self.future = future
        self.finished = threading.Event()
        future.add_done_callback(lambda _: self.finished.set())

    def done(self) -> bool:
        return self.finished.is_set()

    def result(self) -> Mapping[str, object]:
        return self.future.result()


def _side_by_side(
    runner: Any, root: Path, stages: Sequence[str], targets: list[str] | None,
    task: str | None, force: bool, pipeline_id: str | None,
    lock_wait_seconds: float | None, max_parallel: int, retries: int, logger: Any,
) -> dict[str, StageResult]:
    """The flow's stages as Prefect tasks submitted side by side (see ``pipeline``)."""
    graph = stage_graph(root, targets=targets, task=task)
    threads = threads_per_stage(min(max_parallel, len(stages)) or 1)
    logger.info("up to %d stage(s) at once, %d torch thread(s) each", max_parallel, threads)

    def start(name: str) -> _PrefectHandle:
        return _PrefectHandle(runner.submit(
            name, str(root), force=force, pipeline_id=pipeline_id,
            lock_wait_seconds=lock_wait_seconds, threads=threads,
        ))

    outcomes, errors = run_side_by_side(graph, start, max_parallel, log=logger.info)
    summary = {name: StageResult(status=o["status"], seconds=o["seconds"])
               for name, o in outcomes.items()}
    if errors:
        logger.error(_format_summary(summary, []))
        name, exc = next(iter(errors.items()))
        raise StageFailedError(
            f"stage {name!r} failed after {retries + 1} attempt(s): {exc}"
        ) from exc
    logger.info(_format_summary(summary, []))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: run the flow once; print the summary as JSON; exit 1 if a stage failed."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", default="all", help="gaze, hand, or all (default)")
    parser.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="STAGE",
        help="run only this stage and its ancestors (repeatable)",
    )
    parser.add_argument(
        "-S",
        "--set-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="run as `dvc exp run --temp -S` (params.yaml is not edited; repeatable)",
    )
    parser.add_argument("--force", action="store_true", help="rerun stages even if up to date")
    parser.add_argument("--root", default=None, help="DVC project root (default: this repo)")
    parser.add_argument(
        "--max-parallel",
        type=int,
        default=None,
        metavar="N",
        help="stages side by side (default: cores / the trainers' threads key in the project's "
        "params.yaml, or / SIMGAN_THREADS when set); training uses its recipe's "
        "threads whatever N is, so N changes the wall time, not the results",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=DEFAULT_RETRIES,
        help=f"retries per stage (default: {DEFAULT_RETRIES})",
    )
    args = parser.parse_args(argv)

    if args.max_parallel is None:  # read here, not in the help: it loads the params (~0.9 s)
        args.max_parallel = default_max_parallel(root=Path(args.root or MODULE_ROOT))
    if args.max_parallel < 1:
        parser.error(f"--max-parallel must be >= 1, got {args.max_parallel}")
    try:
        overrides = parse_set_params(args.set_param)
    except ValueError as exc:
        parser.error(str(exc))
    state = pipeline(
        task=None if args.task in ("all", "") else args.task,
        targets=args.target or None,
        overrides=overrides or None,
        root=args.root,
        force=args.force,
        retries=args.retries,
        max_parallel=args.max_parallel,
        return_state=True,
    )
    if state.is_completed():
        print(json.dumps(state.result(), indent=2))
        return 0
    print(f"pipeline {state.name}: {state.message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
