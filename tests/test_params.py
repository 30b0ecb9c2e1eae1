"""Params are validated before any work, and errors name the key and what is allowed."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simgan.core.config import ParamsError, read_yaml, validate
from simgan.gaze.task import GazeParams
from simgan.tasks import load_task_params, watch
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
        assert load_task_params(tmp_path / "p.yaml", "hand") is not None, profile.name
        assert merged.keys() == read_yaml(ROOT / "params.yaml").keys()


def test_a_profile_typo_is_an_error():
    with pytest.raises(ParamsError, match="gaze.refiner.trian: not in params.yaml"):
        deep_merge({"gaze": {"refiner": {"train": {}}}}, {"gaze": {"refiner": {"trian": {}}}})


# ----------------------------------------------------------------------------- sources

UNITYEYES = {"kind": "unityeyes", "path": "data/ue", "workers": 0, "skip_bad": False,
             "crop_scale": 1.5, "fast_jpeg": True, "equalize": False, "test_fraction": 0.05}


def test_a_file_source_validates_with_every_key(gaze):
    gaze["render"]["source"] = dict(UNITYEYES)
    gaze["real"]["source"] = {"kind": "folder", "path": "/data/eyes", "workers": 2,
                              "skip_bad": True, "test_path": None, "test_fraction": 0.2,
                              "resize": "stretch", "equalize": False}
    p = validate(GazeParams, gaze, "gaze")
    assert p.render.source.kind == "unityeyes" and p.real.source.kind == "folder"
    assert str(p.real.source.path) == "/data/eyes"


# ------------------------------------------------------------------- manifests: watch / static


def _write(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def test_a_file_source_of_a_static_task_is_refused_before_any_work(tmp_path):
    """DVC sees a source's params, not its files: a task reading files must be watched (its
    manifest stage runs every time), or files added there would go unseen. The default
    (drawn domains) is static; the error names the key and what to do."""
    params = read_yaml(ROOT / "params.yaml")
    assert params["manifests"] == {"static": ["gaze", "hand"], "watch": []}
    params["gaze"]["render"]["source"] = dict(UNITYEYES)
    with pytest.raises(ParamsError) as exc:
        load_task_params(_write(tmp_path, params), "gaze")
    assert ("manifests.static lists 'gaze', but gaze.render.source (kind unityeyes) reads "
            "files under data/ue; move 'gaze' to manifests.watch") in str(exc.value)
    load_task_params(tmp_path / "params.yaml", "hand")  # hand draws its domains: fine
    watch(params, {"gaze"})
    assert params["manifests"] == {"static": ["hand"], "watch": ["gaze"]}
    assert load_task_params(_write(tmp_path, params), "gaze").render.source.kind == "unityeyes"


@pytest.mark.parametrize("groups, needle", [
    (None, "manifests must have the keys static, watch"),
    ({"static": ["gaze"], "watch": []}, "every task (gaze, hand) must be in exactly one"),
    ({"static": ["gaze", "hand"], "watch": ["gaze"]}, "must be in exactly one"),
    ({"static": ["gaze", "hands"], "watch": []}, "manifests.static: ['gaze', 'hands'] is not "
                                                 "allowed; a list of tasks (gaze, hand)"),
    ({"static": "gaze hand", "watch": []}, "manifests.static: 'gaze hand' is not allowed"),
])
def test_manifest_groups_hold_every_task_once(tmp_path, groups, needle):
    """dvc.yaml's manifest stages iterate over the two lists: a task in neither would lose
    its manifest stage (render's dep would have no producer), one in both would get two."""
    params = read_yaml(ROOT / "params.yaml")
    params["manifests"] = groups
    with pytest.raises(ParamsError, match=re.escape(needle)):
        load_task_params(_write(tmp_path, params), "hand")


def test_profiles_with_file_sources_watch_their_task_and_compose(tmp_path):
    """configs/real-data.yaml (gaze) and configs/nyu.yaml (hand) say nothing of manifests:
    applying them watches the task they give files, and applying both watches both."""
    apply_profile(ROOT / "params.yaml", ROOT / "configs/real-data.yaml", tmp_path / "a.yaml")
    assert read_yaml(tmp_path / "a.yaml")["manifests"] == {"static": ["hand"], "watch": ["gaze"]}
    apply_profile(tmp_path / "a.yaml", ROOT / "configs/nyu.yaml", tmp_path / "b.yaml")
    assert read_yaml(tmp_path / "b.yaml")["manifests"] == {"static": [], "watch": ["gaze", "hand"]}
    apply_profile(ROOT / "params.yaml", ROOT / "configs/smoke.yaml", tmp_path / "c.yaml")
    assert read_yaml(tmp_path / "c.yaml")["manifests"] == read_yaml(ROOT / "params.yaml")[
        "manifests"]


def test_missing_keys_follow_the_kind_into_the_chosen_source(gaze):
    src = dict(UNITYEYES)
    del src["crop_scale"], src["path"]  # both have library defaults; params must spell them out
    gaze["render"]["source"] = src
    msg = _error(gaze)
    assert "gaze.render.source.crop_scale: missing (expected float)" in msg
    assert "gaze.render.source.path: missing (expected Path)" in msg


def test_a_wrong_kind_names_the_key_and_the_allowed_kinds(gaze):
    gaze["render"]["source"] = {"kind": "mpiigaze", "path": "x"}  # a real-side kind
    msg = _error(gaze)
    assert ("gaze.render.source.kind: unknown kind 'mpiigaze'; allowed kinds here: "
            "builtin, unityeyes, folder") in msg
    assert "union_tag" not in msg and "Input tag" not in msg


def test_a_missing_kind_or_a_bare_string_lists_the_kinds(gaze):
    gaze["real"]["source"] = {"path": "x"}
    assert "gaze.real.source.kind: missing (expected one of standin, mpiigaze, folder)" in _error(
        gaze)
    gaze["real"]["source"] = "standin"  # the form before sources were a union
    msg = _error(gaze)
    assert ("gaze.real.source: expected a mapping with kind: one of standin, mpiigaze, folder "
            "(got 'standin')") in msg
    assert msg.count("gaze.real.source") == 1
    del gaze["real"]["source"]
    assert ("gaze.real.source: missing (expected a mapping with kind: one of standin, "
            "mpiigaze, folder)") in _error(gaze)


def test_errors_inside_a_source_name_the_key_without_the_tag(gaze):
    gaze["render"]["source"] = {**UNITYEYES, "crop_scale": 0.1, "cropscale": 1.5}
    msg = _error(gaze)
    assert "gaze.render.source.crop_scale: Input should be greater than 0.5 (got 0.1)" in msg
    assert "gaze.render.source.cropscale: unknown key; allowed here: path, workers" in msg
    assert "source.unityeyes" not in msg


def test_a_profile_switching_kind_replaces_the_source(tmp_path):
    base = read_yaml(ROOT / "params.yaml")
    merged = deep_merge(base, {"gaze": {"render": {"source": dict(UNITYEYES), "n_train": 50}}})
    assert merged["gaze"]["render"]["source"] == UNITYEYES
    assert merged["gaze"]["render"]["n_train"] == 50
    validate(GazeParams, merged["gaze"], "gaze")
    with pytest.raises(ParamsError, match="gaze.render.source.crop: not in params.yaml"):
        deep_merge(merged, {"gaze": {"render": {"source": {"crop": 2.0}}}})
