"""The task registry: task name -> its package's :class:`~simgan.core.task.Task`.

A new task is one package under ``simgan/`` (see ``simgan/gaze`` and ``simgan/hand``) plus
one entry here.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from simgan.core.config import ParamsError, read_yaml, validate
from simgan.core.task import Task

_REGISTRY: dict[str, str] = {
    "gaze": "simgan.gaze.task:GazeTask",
    "hand": "simgan.hand.task:HandTask",
}


def task_names() -> list[str]:
    return list(_REGISTRY)


def get_task(name: str) -> Task:
    """Instantiate the task registered as ``name``; the error lists the known ones."""
    if name not in _REGISTRY:
        raise KeyError(f"unknown task {name!r}; allowed values: {', '.join(_REGISTRY)}")
    module_name, cls_name = _REGISTRY[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls()


#: the top-level params key that puts each task's manifest stage in dvc.yaml's ``watch`` group
#: (listed on every run: the task reads files) or its ``static`` one (docs/ingest.md)
MANIFESTS_KEY = "manifests"
MANIFEST_GROUPS = ("static", "watch")


def load_task_params(path: str | Path, task: str) -> Any:
    """Load and validate the section of ``task`` from a params file."""
    spec = get_task(task)
    data = read_yaml(path)
    if task not in data:
        raise ParamsError(f"{path}: missing top-level key {task!r} (tasks present: {list(data)})")
    params = validate(spec.params_model, data[task], task, source=str(path))
    check_watched(data, task, params, source=str(path))
    return params


def watched_tasks(data: dict[str, Any], source: str) -> set[str]:
    """The tasks under ``manifests.watch`` of a params tree, after checking that every
    registered task is in exactly one group: dvc.yaml's manifest stages iterate over the two
    lists, so a task in neither would lose its manifest stage and one in both would get two."""
    groups = data.get(MANIFESTS_KEY)
    allowed = ", ".join(MANIFEST_GROUPS)
    if not isinstance(groups, dict) or set(groups) != set(MANIFEST_GROUPS):
        raise ParamsError(f"{source}: {MANIFESTS_KEY} must have the keys {allowed} (lists of "
                          f"tasks), got {groups!r}")
    seen: list[str] = []
    for group in MANIFEST_GROUPS:
        names = groups[group]
        if not isinstance(names, list) or not all(n in _REGISTRY for n in names):
            raise ParamsError(f"{source}: {MANIFESTS_KEY}.{group}: {names!r} is not allowed; "
                              f"a list of tasks ({', '.join(_REGISTRY)})")
        seen += names
    if sorted(seen) != sorted(_REGISTRY):
        raise ParamsError(f"{source}: {MANIFESTS_KEY}: every task ({', '.join(_REGISTRY)}) must "
                          f"be in exactly one of {allowed}, got {groups!r}")
    return set(groups["watch"])


def watch(data: dict[str, Any], tasks: set[str] | list[str], source: str = "params") -> None:
    """Move ``tasks`` to ``manifests.watch`` of a params tree in place (a task already watched
    stays watched): what a params file with a file source for them needs."""
    watched = watched_tasks(data, source) | set(tasks)
    data[MANIFESTS_KEY] = {"static": [t for t in _REGISTRY if t not in watched],
                           "watch": [t for t in _REGISTRY if t in watched]}


def check_watched(data: dict[str, Any], task: str, params: Any, source: str) -> None:
    """A task that reads files must be under ``manifests.watch``: DVC sees a source's params,
    not its files, and only a manifest stage that runs every time notices files added or
    changed under the same path. A task that draws its domains reads none."""
    if task in watched_tasks(data, source):
        return
    for stage, files in get_task(task).file_sources(params).items():
        kind = getattr(files, "kind", type(files).__name__)
        raise ParamsError(
            f"{source}: {MANIFESTS_KEY}.static lists {task!r}, but {task}.{stage}.source "
            f"(kind {kind}) reads files under {files.path}; move {task!r} to "
            f"{MANIFESTS_KEY}.watch, or `dvc repro` would not see files added or changed "
            "there")
