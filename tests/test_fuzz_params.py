"""Params fuzzing: every mutation of every params.yaml leaf is either refused with a
ParamsError that names the key, or accepted as valid, as :mod:`tests.params_fuzz` predicts;
files that are not params (not UTF-8, not YAML, not a mapping) are one-line ParamsErrors.
Also checks the rule that makes this hold for keys the file does not use: every params
model is strict and every number in it is bounded on both sides."""

from __future__ import annotations

import collections
import math
import random
from pathlib import Path
from typing import Any, get_args

import pytest
from pydantic import BaseModel

from simgan.core.config import ParamsError, discriminated, leaf_types, read_yaml, validate
from simgan.core.fields import SEED_MAX
from simgan.tasks import get_task, load_task_params, task_names
from tests.params_fuzz import Case, all_cases, bounds, item_metadata, number_metadata

ROOT = Path(__file__).resolve().parents[1]
SEED = 20240611


def _tasks() -> dict[str, tuple[type[BaseModel], dict[str, Any]]]:
    data = read_yaml(ROOT / "params.yaml")
    return {t: (get_task(t).params_model, data[t]) for t in task_names()}


def _outcome(case: Case, tasks: dict[str, tuple[type[BaseModel], dict[str, Any]]]) -> str | None:
    """The error message, or None when the mutated params are accepted."""
    model, section = tasks[case.task]
    try:
        validate(model, case.apply(section), case.task)
    except ParamsError as exc:
        return str(exc)
    return None


def _names(message: str, case: Case) -> bool:
    """The error names the key, or (a rule across keys) its section and the key's name."""
    section = case.key.rsplit(".", 1)[0]
    return case.key in message or (f"{section}:" in message and case.path[-1] in message)


def _run(cases: list[tuple[Case, bool]]) -> collections.Counter[str]:
    tasks = _tasks()
    counts: collections.Counter[str] = collections.Counter()
    wrong = []
    for case, must_fail in cases:
        message = _outcome(case, tasks)
        if must_fail and (message is None or not _names(message, case)):
            wrong.append(f"{case}: expected an error naming {case.key}, got {message!r}")
        elif not must_fail and message is not None:
            wrong.append(f"{case}: expected it accepted, got {message!r}")
        elif message is not None:
            assert message.startswith("params.yaml: ") and "Traceback" not in message
        counts["ParamsError naming the key" if must_fail else "accepted as valid"] += 1
    assert not wrong, f"{len(wrong)} of {len(cases)} cases:\n" + "\n".join(wrong[:30])
    return counts


def _report(label: str, counts: collections.Counter[str]) -> None:
    total = sum(counts.values())
    print(f"\n[params fuzz {label}] {total} cases: " +
          ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


def test_every_single_mutation_of_every_leaf_has_its_predicted_outcome():
    cases = all_cases(_tasks(), SEED)
    counts = _run(cases)
    _report("single mutations", counts)
    assert sum(counts.values()) >= 150 and counts["accepted as valid"] > 20


def test_the_known_late_failures_are_refused_up_front():
    """The defects a probe found: each passed validation and broke a stage later."""
    tasks = _tasks()
    found = {
        ("refiner", "train", "adam_betas"): ([0.9], "expected 2 items (got [0.9])"),
        ("compare", "realism", "device"): ("abc", "expected auto, cpu, cuda, cuda:N or mps"),
        ("compare", "realism", "widths"): ([-16, 32], "greater than or equal to 1 (got -16)"),
        ("compare", "realism", "seed"): (-1, "greater than or equal to 0 (got -1)"),
        ("evaluate", "curve_max_deg"): (math.inf, "finite number (got inf)"),
        ("render", "seed"): (2**70, f"less than or equal to {SEED_MAX}"),
        ("real", "n_train"): (1e12, "less than or equal to 100000000"),
        ("evaluate", "curve_step_deg"): (1e-6, "at most 10000: raise curve_step_deg"),
    }
    for path, (value, text) in found.items():
        message = _outcome(Case("gaze", path, "set", value), tasks)
        assert message is not None and "gaze." + ".".join(path[:-1]) in message, path
        assert text in message and len(message.splitlines()) == 1, message


def test_all_problems_are_reported_at_once_each_on_its_line():
    tasks = _tasks()
    section = tasks["hand"][1]
    bad = Case("hand", ("render", "seed"), "set", -3).apply(section)
    bad = Case("hand", ("estimator", "lr"), "set", math.nan).apply(bad)
    bad = Case("hand", ("refine", "device"), "set", "gpu").apply(bad)
    with pytest.raises(ParamsError) as exc:
        validate(tasks["hand"][0], bad, "hand")
    lines = str(exc.value).splitlines()
    assert lines[0] == "params.yaml: 3 invalid params"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "  - hand.render.seed", "  - hand.refine.device", "  - hand.estimator.lr"]


@pytest.mark.parametrize("content, expected", [
    (b"gaze:\n  render: \xff\xfe\n", "not UTF-8 text (byte 0xff at offset 16); save it as UTF-8"),
    (b"- gaze\n- hand\n", "expected a mapping of task names to their params at the top "
                          "level (got list)"),
    (b"42\n", "expected a mapping of task names to their params at the top level (got int)"),
    (b"", "expected a mapping of task names to their params at the top level (got NoneType)"),
    (b"gaze: [1\n", ":2:1: not valid YAML: while parsing a flow sequence, expected ',' or ']'"),
    (b"gaze:\n\tx: 1\n", ":2:1: not valid YAML: while scanning for the next token, found "
                         "character '\\t' that cannot start any token"),
    (b"hand: {}\n", "missing top-level key 'gaze' (tasks present: ['hand'])"),
    (b"gaze: 3\n", "gaze: Input should be a valid dictionary or instance of GazeParams (got 3)"),
])
def test_a_file_that_is_not_params_is_a_one_line_error(tmp_path, content, expected):
    path = tmp_path / "params.yaml"
    path.write_bytes(content)
    with pytest.raises(ParamsError) as exc:
        load_task_params(path, "gaze")
    message = str(exc.value)
    assert message.startswith(str(path)) and expected in message
    assert len(message.splitlines()) == 1


def test_an_unreadable_params_path_is_a_one_line_error(tmp_path):
    (tmp_path / "params.yaml").mkdir()
    with pytest.raises(ParamsError, match=r"params.yaml: params file not found$"):
        load_task_params(tmp_path / "params.yaml", "gaze")


def _models(model: type[BaseModel]) -> dict[type[BaseModel], None]:
    """``model`` and every params model under it, through unions of kinds."""
    found: dict[type[BaseModel], None] = {model: None}
    for field in model.model_fields.values():
        union = discriminated(field)
        members = union[1].values() if union else [
            t for t in leaf_types(field.annotation)
            if isinstance(t, type) and issubclass(t, BaseModel)]
        for member in members:
            found.update(_models(member))
    return found


def _params_models() -> dict[type[BaseModel], None]:
    found: dict[type[BaseModel], None] = {}
    for task in task_names():
        found.update(_models(get_task(task).params_model))
    return found


def test_every_params_model_refuses_unknown_keys_and_non_finite_numbers():
    for model in _params_models():
        assert model.model_config.get("extra") == "forbid", model
        floats = [n for n, f in model.model_fields.items() if float in leaf_types(f.annotation)]
        if floats:  # a bound refuses nan too; StrictParams refuses both without one
            assert model.model_config.get("allow_inf_nan") is False or all(
                math.isfinite(bounds(number_metadata(model.model_fields[n]))[0])
                for n in floats), (model, floats)


def test_every_number_in_params_has_both_bounds():
    """The class of bug behind seed 2**70 and n_train 1e12: a number without an upper bound.
    Items of lists count (realism widths [-16])."""
    unbounded = []
    for model in _params_models():
        for name, field in model.model_fields.items():
            types = leaf_types(field.annotation)
            if not types & {int, float} or "Literal" in str(field.annotation):
                continue
            is_list = Ellipsis in get_args(field.annotation) or (
                str(field.annotation).startswith("tuple"))
            lo, _, hi, _ = bounds(item_metadata(field) if is_list else number_metadata(field))
            if not (math.isfinite(lo) and math.isfinite(hi)):
                unbounded.append(f"{model.__name__}.{name}")
            if name == "seed":
                assert hi == SEED_MAX, f"{model.__name__}.seed: use simgan.core.fields.Seed"
    assert not unbounded, f"numbers without both bounds: {unbounded}"


@pytest.mark.slow
def test_many_seeds_and_combined_mutations_have_their_predicted_outcomes():
    """Other random values for every single mutation, and combinations of up to four
    always-refused mutations at once: each of their keys must be named."""
    counts: collections.Counter[str] = collections.Counter()
    for seed in range(SEED + 1, SEED + 7):
        counts += _run(all_cases(_tasks(), seed))
    tasks = _tasks()
    rng = random.Random(SEED)
    refused = [c for c, bad in all_cases(tasks, SEED)
               if bad and c.kind in ("huge", "inf", "nan", "wrong_type", "bool_for_number")
               and c.path[-1] not in ("source", "kind")]  # a kind chooses the keys to check
    combos = 0
    for _ in range(2000):
        task = rng.choice(task_names())
        picked = rng.sample([c for c in refused if c.task == task], rng.randint(2, 4))
        if len({c.path for c in picked}) < len(picked):
            continue
        data = tasks[task][1]
        for case in picked:
            data = case.apply(data)
        with pytest.raises(ParamsError) as exc:
            validate(tasks[task][0], data, task)
        for case in picked:
            assert case.key in str(exc.value), (picked, str(exc.value))
        combos += 1
    counts["combined, every key named"] += combos
    _report("slow", counts)
