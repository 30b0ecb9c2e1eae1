"""Typed, validated params: loaded once, checked before any work.

The models of each part live next to the code that uses them (renderer, refiner, estimator,
metrics); this module composes them per task and turns every problem -- a missing key, an
unknown key, a wrong type, an out-of-range value -- into one error that names the dotted key
and what is allowed. params.yaml must spell out every knob: a key left out is an error, not
a silent default, so the file is the complete record of an experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

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


def key_problems(model: type[BaseModel], data: Any, prefix: str) -> list[str]:
    """Dotted keys of ``model`` (recursively) that ``data`` does not spell out, or that hold a
    boolean where a number belongs (pydantic would read ``seed: yes`` as seed 1).

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
        if _bool_for_number(sub, data[name]):
            out.append(f"{key}: expected a number, not a boolean (got {data[name]!r})")
        elif union is not None:
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
                out.extend(key_problems(members[str(value[disc])], value, key))
        elif isinstance(sub, type) and issubclass(sub, BaseModel):
            out.extend(key_problems(sub, data[name], key))
    return out


def _bool_for_number(annotation: Any, value: Any) -> bool:
    """``value`` is (or holds) a boolean while ``annotation`` admits numbers, not booleans."""
    items = value if isinstance(value, list | tuple) else [value]
    types = leaf_types(annotation)
    return bool(types & {int, float}) and bool not in types and any(
        isinstance(v, bool) for v in items)


def leaf_types(annotation: Any) -> set[Any]:
    """The plain types an annotation is made of (``tuple[int, ...] | None`` -> {int, None})."""
    if annotation is None or annotation is type(None):
        return {None}
    args = get_args(annotation)
    if get_origin(annotation) is Annotated:
        return leaf_types(args[0])
    if get_origin(annotation) is Literal:
        return {type(a) for a in args}
    if args:
        return set().union(*(leaf_types(a) for a in args if a is not Ellipsis))
    return {annotation}


# pydantic errors that key_problems already reports, with the key and the allowed kinds
_REPORTED = {"missing", "union_tag_invalid", "union_tag_not_found"}


def validate(model: type[BaseModel], data: Any, prefix: str, source: str = "params.yaml"):
    """Validate ``data`` against ``model``; every key must be present (see module doc)."""
    problems = key_problems(model, data, prefix)
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        for err in _relevant(exc.errors()):
            loc, at = _walk(model, err["loc"])
            dotted = ".".join(str(p) for p in (prefix, *loc) if p != "")
            if err["type"] == "missing" and loc and isinstance(loc[-1], int):
                problems.append(_too_few(dotted.rsplit(".", 1)[0], model, err))
                continue
            if err["type"] in _REPORTED:
                continue
            if err["type"] == "model_attributes_type" and isinstance(at, tuple):
                continue  # a source that is not a mapping: reported by key_problems
            got = err.get("input")
            got_text = "" if isinstance(got, dict) else f" (got {got!r})"
            if err["type"] == "extra_forbidden":
                _, parent = _walk(model, err["loc"][:-1])
                allowed = (", ".join(parent.model_fields)
                           if isinstance(parent, type) and issubclass(parent, BaseModel) else "?")
                problems.append(f"{dotted}: unknown key; allowed here: {allowed}")
            else:
                problems.append(f"{dotted}: {err['msg']}{got_text}")
        if not problems:  # never let a rejected section through as None
            problems = [f"{prefix}: {err['msg']}" for err in exc.errors()]
    if problems:
        raise ParamsError(_listing(source, list(dict.fromkeys(problems))))
    return obj


def _relevant(errors: list[Any]) -> list[Any]:
    """pydantic's errors without the length errors it adds when items fail (``widths: [-1]``
    also says "at least 1 item after validation, not 0")."""
    locs = [tuple(e["loc"]) for e in errors]
    def inner_failed(loc: tuple) -> bool:
        return any(len(other) > len(loc) and other[:len(loc)] == loc for other in locs)
    return [e for e in errors
            if not (e["type"] in ("too_short", "too_long") and inner_failed(tuple(e["loc"])))]


def _listing(source: str, problems: list[str]) -> str:
    """One problem: one line; several: a count, then one line each."""
    if len(problems) == 1:
        return f"{source}: invalid params: {problems[0]}"
    listing = "\n  - ".join(problems)
    return f"{source}: {len(problems)} invalid params\n  - {listing}"


def _too_few(dotted: str, model: type[BaseModel], err: Any) -> str:
    """A fixed-length list given too few items (``adam_betas: [0.9]``): pydantic reports the
    absent item as a missing field; say how many items the key needs instead."""
    _, at = _walk(model, err["loc"][:-1])
    items = [a for a in get_args(at) if a is not Ellipsis]
    need = f"{len(items)} items" if items else "more items"
    return f"{dotted}: expected {need} (got {err.get('input')!r})"


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
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParamsError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                          f"{exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ParamsError(f"{path}: cannot be read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}{_yaml_where(exc)}: not valid YAML: {_yaml_problem(exc)}"
                          ) from None
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of task names to their params at the "
                          f"top level (got {type(data).__name__})")
    return data


def _yaml_where(exc: yaml.YAMLError) -> str:
    """``:line:column`` of a YAML error (1-based), or nothing when PyYAML gives no mark."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's problem in one line, without the source excerpt it appends."""
    parts = [getattr(exc, "context", None), getattr(exc, "problem", None)]
    text = ", ".join(p for p in parts if p) or str(exc)
    return " ".join(text.split())
