"""A seeded generator of params mutations and the outcome each must have.

Every leaf of params.yaml (both tasks) gets the mutations its kind of value allows: wrong
type, boolean for a number, negative, zero, a fraction, huge, inf/-inf/nan, null, a bogus
choice, too-short / too-long / empty lists, bad list items, the key deleted, an unknown key
beside it. The expected outcome does not come from running the validator: it is either a
class rule (inf is always refused, an unknown key always, ...) or, for in-range questions,
the bounds the key's field declares plus the cross-key rules params use (``x_min`` must
not exceed ``x_max``; a refiner without conv layers takes no warp or holes map) and the
list-length links listed below.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from simgan.core.config import discriminated, leaf_types

UNKNOWN = "zz_not_a_param"
LENGTH_LINKED = {"refiner.discriminator.widths", "refiner.discriminator.kernels",
                 "refiner.discriminator.strides"}
"""Lists whose lengths must agree (one entry per conv): shortening one alone is an error."""
ALWAYS_BAD = {"wrong_type", "bool_for_number", "huge", "inf", "-inf", "nan", "bogus_choice",
              "empty", "too_long", "item_wrong_type", "item_huge", "missing", "unknown_key",
              "not_a_mapping"}
"""Mutation kinds that no key accepts (every number has an upper bound, every list one)."""


@dataclass(frozen=True)
class Case:
    """One mutation of one task's params: ``path`` set to ``value`` (or deleted / added)."""

    task: str
    path: tuple[str, ...]
    kind: str
    value: Any = None

    @property
    def key(self) -> str:
        """The dotted key the error must name."""
        parts = self.path[:-1] + (UNKNOWN,) if self.kind == "unknown_key" else self.path
        return ".".join((self.task, *parts))

    def apply(self, section: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(section)
        parent = parent_of(out, self.path)
        if self.kind == "missing":
            del parent[self.path[-1]]
        elif self.kind == "unknown_key":
            parent[UNKNOWN] = 1
        else:
            parent[self.path[-1]] = self.value
        return out


def parent_of(section: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """The mapping holding the last key of ``path``."""
    for part in path[:-1]:
        section = section[part]
    return section


def leaves(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Paths of every leaf (lists count as leaves) and of every mapping above them."""
    for key, value in data.items():
        path = (*prefix, key)
        yield path
        if isinstance(value, dict) and key != "source":
            yield from leaves(value, path)


def field_at(model: type[BaseModel], data: dict[str, Any], path: tuple[str, ...]) -> FieldInfo:
    """The pydantic field of ``path``, following a ``kind`` into the model it chooses."""
    current: Any = model
    node: Any = data
    field = None
    for part in path:
        field = current.model_fields[part]
        node = node[part]
        union = discriminated(field)
        if union is not None and isinstance(node, dict):
            current = union[1][str(node[union[0]])]
        else:
            current = field.annotation
    assert field is not None
    return field


def bounds(metadata: list[Any]) -> tuple[float, bool, float, bool]:
    """(low, low inclusive, high, high inclusive) from a field's annotated-types metadata."""
    lo, lo_in, hi, hi_in = -math.inf, True, math.inf, True
    for m in metadata:
        if isinstance(m, at.Ge):
            lo, lo_in = m.ge, True
        elif isinstance(m, at.Gt):
            lo, lo_in = m.gt, False
        elif isinstance(m, at.Le):
            hi, hi_in = m.le, True
        elif isinstance(m, at.Lt):
            hi, hi_in = m.lt, False
    return lo, lo_in, hi, hi_in


def number_metadata(field: FieldInfo) -> list[Any]:
    """The bounds of a number field, also when they sit inside an Optional
    (``Threads | None``: pydantic keeps them on the inner Annotated)."""
    found = list(field.metadata)
    for arg in get_args(field.annotation) if get_origin(field.annotation) is not tuple else ():
        for extra in getattr(arg, "__metadata__", ()):
            found += extra.metadata if isinstance(extra, FieldInfo) else [extra]
    return found


def in_bounds(value: float, metadata: list[Any]) -> bool:
    lo, lo_in, hi, hi_in = bounds(metadata)
    above = value >= lo if lo_in else value > lo
    below = value <= hi if hi_in else value < hi
    return above and below


def item_metadata(field: FieldInfo) -> list[Any]:
    """Bounds of a list field's items (``tuple[Annotated[int, Field(ge=1)], ...]``)."""
    for arg in get_args(field.annotation):
        for extra in getattr(arg, "__metadata__", ()):
            if isinstance(extra, FieldInfo):
                return extra.metadata
    return []


def is_variable_length(field: FieldInfo) -> bool:
    return Ellipsis in get_args(field.annotation)


def min_length(field: FieldInfo) -> int:
    return next((m.min_length for m in field.metadata if isinstance(m, at.MinLen)), 0)


def mutations(value: Any, field: FieldInfo, rng: random.Random) -> list[tuple[str, Any]]:
    """(kind, new value) for a leaf holding ``value``; concrete values are drawn from ``rng``."""
    types = leaf_types(field.annotation)
    out: list[tuple[str, Any]] = [("missing", None), ("unknown_key", None)]
    if isinstance(value, dict):
        return [*out, ("not_a_mapping", rng.choice(["builtin", 3, [1]])),
                ("bogus_choice", {**value, "kind": "bogus"})]
    if isinstance(value, list):
        items = [("empty", []), ("too_long", value * 20),
                 ("item_wrong_type", ["abc", *value[1:]]),
                 ("item_huge", [2 ** rng.randint(40, 90), *value[1:]]),
                 ("item_negative", [-rng.randint(1, 9), *value[1:]])]
        if len(value) > 1:
            items.append(("too_short", value[:-1]))
        if float in types:
            items.append(("item_inf", [math.inf, *value[1:]]))
        return out + items
    if isinstance(value, bool):
        return [*out, ("wrong_type", rng.choice(["maybe", "abc", [True]])), ("int_for_bool", 1)]
    if isinstance(value, str):
        choices = [("wrong_type", rng.randint(2, 99)), ("null", None),
                   ("bogus_choice", rng.choice(["bogus", "gpu", "CPU", "cuda:x"]))]
        if "device" in str(field.annotation) or field.annotation is str:
            choices += [("valid_device", rng.choice(["cpu", "cuda", "cuda:1", "mps", "auto"]))]
        return out + choices
    numbers = [("wrong_type", rng.choice(["abc", "", [value]])), ("bool_for_number", True),
               ("negative", -rng.choice([1, 2, 7]) if isinstance(value, int) else
                -round(rng.uniform(0.1, 5), 3)),
               ("zero", 0), ("null", None), ("inf", math.inf), ("-inf", -math.inf),
               ("nan", math.nan),
               ("huge", 2 ** rng.randint(33, 90) if int in types and float not in types
                else 10.0 ** rng.randint(12, 300))]
    if float in types:
        numbers.append(("fraction", round(rng.uniform(0.01, 0.99), 3)))
    else:
        numbers.append(("fraction", 0.5))
    return out + numbers


def expected_error(case: Case, field: FieldInfo, section: dict[str, Any]) -> bool:
    """Whether ``case`` must be refused (see the module doc for where the answer comes from)."""
    if case.kind in ALWAYS_BAD:
        return True
    types = leaf_types(field.annotation)
    if case.kind == "null":
        return None not in types
    if case.kind in ("int_for_bool", "valid_device"):
        return breaks_no_conv_rule(case, section)
    if case.kind == "too_short":
        dotted = ".".join(case.path)
        return (not is_variable_length(field) or len(case.value) < min_length(field)
                or dotted in LENGTH_LINKED)
    if case.kind in ("item_negative", "item_inf"):
        return not in_bounds(case.value[0], item_metadata(field))
    if case.kind == "fraction" and float not in types:
        return True
    if get_origin(field.annotation) is Literal:
        return case.value not in get_args(field.annotation)
    # negative, zero, fraction of a number: the field's bounds, then the rules across keys
    if not in_bounds(case.value, number_metadata(field)):
        return True
    return (breaks_min_max(case, section) or breaks_gaze_bound(case, section)
            or breaks_no_conv_rule(case, section))


def breaks_no_conv_rule(case: Case, section: dict[str, Any]) -> bool:
    """A refiner without conv layers (``scene: false``) has no features for a warp or holes
    map: turning either on there is refused."""
    parent = parent_of(section, case.path)
    if case.path[-1] not in ("warp_px", "holes") or parent.get("scene", True):
        return False
    return bool(case.value)


def breaks_min_max(case: Case, section: dict[str, Any]) -> bool:
    """``x_min`` above its ``x_max`` (or the reverse) after the mutation."""
    name = case.path[-1]
    parent = parent_of(section, case.path)
    for a, b in (("min", "max"), ("max", "min")):
        twin = name.replace(f"_{a}", f"_{b}", 1)
        if twin != name and twin in parent:
            lo, hi = (case.value, parent[twin]) if a == "min" else (parent[twin], case.value)
            return lo > hi
    return False


def breaks_gaze_bound(case: Case, section: dict[str, Any]) -> bool:
    """A gaze distribution's means must lie strictly inside ``max_abs_deg``."""
    parent = parent_of(section, case.path)
    name, value = case.path[-1], case.value
    if name == "max_abs_deg":
        return value <= max(abs(parent["pitch_mean_deg"]), abs(parent["yaw_mean_deg"]))
    if name in ("pitch_mean_deg", "yaw_mean_deg"):
        return abs(value) >= parent["max_abs_deg"]
    return False


def all_cases(tasks: dict[str, tuple[type[BaseModel], dict[str, Any]]], seed: int
              ) -> list[tuple[Case, bool]]:
    """Every (case, must it be refused) over every leaf of every task, values from ``seed``."""
    rng = random.Random(seed)
    out: list[tuple[Case, bool]] = []
    for task, (model, section) in tasks.items():
        for path in leaves(section):
            field = field_at(model, section, path)
            parent = parent_of(section, path)
            for kind, value in mutations(parent[path[-1]], field, rng):
                case = Case(task, path, kind, value)
                out.append((case, expected_error(case, field, section)))
    return out
