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
from pydantic.fields import FieldInfo


class ParamsError(ValueError):
    """Params are missing, unknown, mistyped or out of range; the message names the keys."""


def _describe(field_annotation: Any) -> str:
    text = getattr(field_annotation, "__name__", None) or str(field_annotation)
    return text.replace("typing.", "")


def discriminated(field: FieldInfo) -> tuple[str, dict[str, type[BaseModel]]] | None:
    """``(discriminator, {kind: model})`` for a field holding a discriminated union of models
    (a domain's ``source``: ``kind: builtin | unityeyes | folder``), else None."""
    disc = field.discriminator
    if not isinstance(disc, str):
        return None
    members: dict[str, type[BaseModel]] = {}
    for member in get_args(field.annotation):
        is_model = isinstance(member, type) and issubclass(member, BaseModel)
        if is_model and disc in member.model_fields:
            for tag in get_args(member.model_fields[disc].annotation):
                members[str(tag)] = member
    return disc, members


def _kinds(union: tuple[str, dict[str, type[BaseModel]]]) -> str:
    disc, members = union
    return f"{disc}: one of {', '.join(members)}"


def missing_keys(model: type[BaseModel], data: Any, prefix: str) -> list[str]:
    """Dotted keys of ``model`` (recursively) that ``data`` does not spell out.

    A discriminated union (a ``source`` with a ``kind``) is followed into the model its kind
    chooses, so that model's keys are required too; a missing or unknown kind is reported
    with the kinds allowed there.
    """
    if not isinstance(data, dict):
        return []
    out: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}.{name}" if prefix else name
        union = discriminated(field)
        if name not in data:
            expected = f"a mapping with {_kinds(union)}" if union else _describe(field.annotation)
            out.append(f"{key}: missing (expected {expected})")
            continue
        sub = field.annotation
        if union is not None:
            disc, members = union
            value = data[name]
            if not isinstance(value, dict):
                out.append(f"{key}: expected a mapping with {_kinds(union)} (got {value!r})")
            elif disc not in value:
                out.append(f"{key}.{disc}: missing (expected one of {', '.join(members)})")
            elif str(value[disc]) not in members:
                out.append(f"{key}.{disc}: unknown kind {value[disc]!r}; allowed kinds here: "
                           f"{', '.join(members)}")
            else:
                out.extend(missing_keys(members[str(value[disc])], value, key))
        elif isinstance(sub, type) and issubclass(sub, BaseModel):
            out.extend(missing_keys(sub, data[name], key))
    return out


# pydantic errors that missing_keys already reports, with the key and the allowed kinds
_REPORTED = {"missing", "union_tag_invalid", "union_tag_not_found"}


def validate(model: type[BaseModel], data: Any, prefix: str, source: str = "params.yaml"):
    """Validate ``data`` against ``model``; every key must be present (see module doc)."""
    problems = missing_keys(model, data, prefix)
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            loc, at = _walk(model, err["loc"])
            dotted = ".".join(str(p) for p in (prefix, *loc) if p != "")
            if err["type"] in _REPORTED:
                continue
            if err["type"] == "model_attributes_type" and isinstance(at, tuple):
                continue  # a source that is not a mapping: reported by missing_keys
            got = err.get("input")
            got_text = "" if isinstance(got, dict) else f" (got {got!r})"
            if err["type"] == "extra_forbidden":
                _, parent = _walk(model, err["loc"][:-1])
                allowed = (", ".join(parent.model_fields)
                           if isinstance(parent, type) and issubclass(parent, BaseModel) else "?")
                problems.append(f"{dotted}: unknown key; allowed here: {allowed}")
            else:
                problems.append(f"{dotted}: {err['msg']}{got_text}")
        obj = None
    if problems:
        listing = "\n  - ".join(dict.fromkeys(problems))
        raise ParamsError(f"{source}: invalid params\n  - {listing}")
    return obj


def _walk(model: type[BaseModel], loc: tuple) -> tuple[tuple, Any]:
    """Follow a pydantic error location through ``model``: returns the location without the
    tags pydantic inserts after a discriminated union (``source.unityeyes.path`` ->
    ``source.path``) and what sits there (a model class, a union, or None if unknown)."""
    current: Any = model
    parts = list(loc)
    out: list[Any] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        out.append(part)
        i += 1
        field = (current.model_fields.get(part)
                 if isinstance(current, type) and issubclass(current, BaseModel) else None)
        if field is None:
            current = None
            continue
        union = discriminated(field)
        if union is not None:
            if i < len(parts) and str(parts[i]) in union[1]:
                current = union[1][str(parts[i])]
                i += 1  # the tag pydantic inserts
            else:
                current = union
            continue
        current = field.annotation
    return tuple(out), current


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
