"""Params are validated before any work, and errors name the key and what is allowed."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simgan.config import ParamsError, load_task_params, read_yaml, validate
from simgan.gaze import GazeParams
from stages.profile import apply_profile, deep_merge

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def gaze() -> dict:
    return read_yaml(ROOT / "params.yaml")["gaze"]


def _error(data: dict) -> str:
    with pytest.raises(ParamsError) as exc:
        validate(GazeParams, data, "gaze")
    return str(exc.value)


def test_the_default_params_are_valid():
    p = load_task_params(ROOT / "params.yaml", "gaze")
    assert p.render.eye.height == 35 and p.render.eye.width == 55


def test_a_missing_key_is_named_with_its_type(gaze):
    del gaze["refiner"]["train"]["lr"]
    assert "gaze.refiner.train.lr: missing (expected float)" in _error(gaze)


def test_a_wrong_choice_lists_the_allowed_values(gaze):
    gaze["refiner"]["train"]["optimizer"] = "adamw"
    msg = _error(gaze)
    assert "gaze.refiner.train.optimizer" in msg and "'adam' or 'sgd'" in msg and "'adamw'" in msg


def test_out_of_range_and_mistyped_values_are_named(gaze):
    bad = copy.deepcopy(gaze)
    bad["render"]["n_train"] = 0
    bad["estimator"]["epochs"] = "many"
    msg = _error(bad)
    assert "gaze.render.n_train: Input should be greater than 0 (got 0)" in msg
    assert "gaze.estimator.epochs" in msg and "'many'" in msg


def test_an_unknown_key_lists_the_allowed_keys(gaze):
    gaze["refine"]["batchsize"] = 3
    msg = _error(gaze)
    assert "gaze.refine.batchsize: unknown key; allowed here: batch_size, device" in msg


def test_a_stage_with_bad_params_fails_before_any_work(tmp_path, gaze):
    gaze["render"]["chunk_size"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"gaze": gaze}))
    proc = subprocess.run(
        [sys.executable, "-m", "stages.render", "--task", "gaze"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2
    assert "gaze.render.chunk_size: Input should be greater than 0 (got -1)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_an_unknown_task_is_refused():
    with pytest.raises(KeyError, match="unknown task 'hands'; allowed values: gaze"):
        load_task_params(ROOT / "params.yaml", "hands")


def test_profiles_merge_and_validate(tmp_path):
    for profile in sorted((ROOT / "configs").glob("*.yaml")):
        merged = apply_profile(ROOT / "params.yaml", profile, tmp_path / "p.yaml")
        assert load_task_params(tmp_path / "p.yaml", "gaze") is not None, profile.name
        assert merged.keys() == read_yaml(ROOT / "params.yaml").keys()


def test_a_profile_typo_is_an_error():
    with pytest.raises(ParamsError, match="gaze.refiner.trian: not in params.yaml"):
        deep_merge({"gaze": {"refiner": {"train": {}}}}, {"gaze": {"refiner": {"trian": {}}}})
