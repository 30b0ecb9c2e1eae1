"""Typed, validated params: loaded once, checked before any work.

The models of each part live next to the code that uses them (renderer, refiner, estimator,
metrics); this module composes them per task and turns every problem -- a missing key, an
unknown key, a wrong type, an out-of-range value -- into one error that names the dotted key
and what is allowed. params.yaml must spell out every knob: a key left out is an error, not
a silent default, so the file is the complete record of an experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError


class ParamsError(ValueError):
    """Params are missing, unknown, mistyped or out of range; the message names the keys."""


def _describe(field_annotation: Any) -> str:
    text = getattr(field_annotation, "__name__", None) or str(field_annotation)
    return text.replace("typing.", "")


def missing_keys(model: type[BaseModel], data: Any, prefix: str) -> list[str]:
    """Dotted keys of ``model`` (recursively) that ``data`` does not spell out."""
    if not isinstance(data, dict):
        return []
    out: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in data:
            out.append(f"{key}: missing (expected {_describe(field.annotation)})")
            continue
        sub = _member(field.annotation, data[name])
        if sub is not None:
            out.extend(missing_keys(sub, data[name], key))
    return out


def _member(annotation: Any, data: Any) -> type[BaseModel] | None:
    """The model a value is checked against: the annotation itself, or for a union of models
    discriminated by ``kind`` (e.g. ``kind: builtin | nyu_synth``) the member ``data`` names."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    members = [a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
    if not members or not isinstance(data, dict):
        return None
    for m in members:
        kind = m.model_fields.get("kind")
        if kind is not None and data.get("kind") in get_args(kind.annotation):
            return m
    return None


def validate(model: type[BaseModel], data: Any, prefix: str, source: str = "params.yaml"):
    """Validate ``data`` against ``model``; every key must be present (see module doc)."""
    problems = missing_keys(model, data, prefix)
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
            if err["type"] == "missing":
                continue  # already reported with its expected type
            got = err.get("input")
            got_text = "" if isinstance(got, dict) else f" (got {got!r})"
            if err["type"] == "extra_forbidden":
                allowed = _allowed_keys(model, err["loc"][:-1])
                problems.append(f"{loc}: unknown key; allowed here: {allowed}")
            else:
                problems.append(f"{loc}: {err['msg']}{got_text}")
        obj = None
    if problems:
        listing = "\n  - ".join(dict.fromkeys(problems))
        raise ParamsError(f"{source}: invalid params\n  - {listing}")
    return obj


def _allowed_keys(model: type[BaseModel], loc: tuple) -> str:
    current: Any = model
    for part in loc:
        field = current.model_fields.get(part) if isinstance(current, type) else None
        if field is None:
            break
        current = field.annotation
    if isinstance(current, type) and issubclass(current, BaseModel):
        return ", ".join(current.model_fields)
    return "?"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a params YAML file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return data


def load_task_params(path: str | Path, task: str):
    """Load and validate the section of ``task`` from a params file."""
    from simgan.tasks import get_task

    spec = get_task(task)
    data = read_yaml(path)
    if task not in data:
        raise ParamsError(f"{path}: missing top-level key {task!r} (tasks present: {list(data)})")
    return validate(spec.params_model, data[task], task, source=str(path))
