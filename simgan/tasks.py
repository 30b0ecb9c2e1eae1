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


def load_task_params(path: str | Path, task: str) -> Any:
    """Load and validate the section of ``task`` from a params file."""
    spec = get_task(task)
    data = read_yaml(path)
    if task not in data:
        raise ParamsError(f"{path}: missing top-level key {task!r} (tasks present: {list(data)})")
    return validate(spec.params_model, data[task], task, source=str(path))
