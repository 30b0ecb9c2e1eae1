"""The Prefect flow over a throwaway DVC project: order, selection, skipping, overrides, failure.

One Prefect test harness (an ephemeral API server on a temporary database, 15-30 s to start
on 2 cores) is shared by the tests that run flows; with it they take 55-75 s, so they are marked
slow, while the graph/params/environment tests stay fast. Prefect reads PREFECT_HOME when it is
imported, so the variables are set at the top of this module, before anything imports Prefect.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from flows.environment import project_environment

_STATE_DIR = Path(tempfile.mkdtemp(prefix="simgan-test-flow-"))
atexit.register(shutil.rmtree, _STATE_DIR, ignore_errors=True)
# Tests must not write into the repository (or the user's home): force these two to tmp.
os.environ["PREFECT_HOME"] = str(_STATE_DIR / "prefect")
os.environ["DVC_SITE_CACHE_DIR"] = str(_STATE_DIR / "dvc-site-cache")
os.environ.update(project_environment(_STATE_DIR))

from flows.pipeline import (  # noqa: E402
    OverrideError,
    apply_overrides,
    list_stages,
    parse_set_params,
    pipeline,
    stage_matches_task,
)

STEP_SCRIPT = """\
import os, sys
name, out, inputs = sys.argv[1], sys.argv[2], sys.argv[3:]
text = "".join(open(path).read() for path in inputs) + name + "\\n"
print(f"hello from {name} pipeline={os.environ.get('SIMGAN_PIPELINE_ID')}")
with open(out, "w") as handle:
    handle.write(text)
"""

PARAMS = """\
# knobs of the toy pipeline
a:
  n: 1  # rerun a when this changes
b:
  factor: 2
"""

DVC_YAML = """\
stages:
  a:
    cmd: python step.py a a.txt
    deps: [step.py]
    params: [a.n]
    outs: [a.txt]
  b:
    cmd: python step.py b-${b.factor} b.txt a.txt
    deps: [step.py, a.txt]
    params: [b.factor]
    outs: [b.txt]
  c:
    cmd: python step.py c c.txt b.txt
    deps: [step.py, b.txt]
    outs: [c.txt]
  other:
    cmd: python step.py other other.txt
    deps: [step.py]
    outs: [other.txt]
  per_task:
    foreach: [gaze, hand]
    do:
      cmd: python step.py ${item} ${item}.txt a.txt
      deps: [step.py, a.txt]
      outs: ["${item}.txt"]
  broken:
    cmd: >-
      python -c "import sys; open('attempts.log', 'a').write('try\\n');
      print('boom on stderr', file=sys.stderr); sys.exit(3)"
    deps: [a.txt]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh git + DVC project with the toy pipeline above."""
    root = tmp_path / "toy"
    root.mkdir()
    (root / "step.py").write_text(STEP_SCRIPT)
    (root / "params.yaml").write_text(PARAMS)
    (root / "dvc.yaml").write_text(DVC_YAML)
    env = {**os.environ, **project_environment(root)}
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=env)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, env=env)
    return root


def _task_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the Prefect task-run loggers received (these records also go to the API)."""
    return "\n".join(
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("prefect.task_runs")
    )


def test_stages_in_dependency_order_from_dvc(project: Path) -> None:
    everything = list_stages(project, task=None)
    assert everything == ["a", "b", "c", "other", "per_task@gaze", "per_task@hand", "broken"]
    assert list_stages(project, targets=["b"], task=None) == ["a", "b"]
    assert list_stages(project, targets=["per_task"], task=None) == [
        "a",
        "per_task@gaze",
        "per_task@hand",
    ]
    gaze = list_stages(project, task="gaze")
    assert "per_task@gaze" in gaze and "per_task@hand" not in gaze
    with pytest.raises(ValueError, match="not part of task"):
        list_stages(project, targets=["per_task@hand"], task="gaze")
    with pytest.raises(ValueError, match="unknown stage"):
        list_stages(project, targets=["nope"])


def test_task_matching() -> None:
    assert stage_matches_task("render@gaze", "gaze")
    assert stage_matches_task("train_estimator@gaze-synthetic", "gaze")
    assert stage_matches_task("sub/dvc.yaml:evaluate@refined-gaze", "gaze")
    assert stage_matches_task("render@hand", "gaze") is False
    assert stage_matches_task("render@gazer", "gaze") is False
    assert stage_matches_task("compare", "gaze") is None


def test_overrides_like_dvc_set_param(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS)
    applied = apply_overrides(
        tmp_path, parse_set_params(["a.n=0.5", "+b.extra.deep=[1, 2]", "b.factor=x"])
    )
    assert applied == {
        "params.yaml:a.n": 0.5,
        "params.yaml:b.extra.deep": [1, 2],
        "params.yaml:b.factor": "x",
    }
    text = params.read_text()
    assert "# knobs of the toy pipeline" in text and "# rerun a when this changes" in text
    for bad in ({"missing.key": 1}, {"+a.n": 2}, {"a.n": "[unclosed"}):
        with pytest.raises(OverrideError):
            apply_overrides(tmp_path, bad)
    assert params.read_text() == text  # nothing written by a failed override
    apply_overrides(tmp_path, {"~b.extra": None})
    assert "extra" not in params.read_text()
    assert not list(tmp_path.glob(".params.yaml.*"))  # no temporary files left behind


def test_project_environment_never_overrides(tmp_path: Path) -> None:
    env = project_environment(tmp_path, {"DO_NOT_TRACK": "0"})
    assert "DO_NOT_TRACK" not in env
    assert env["PREFECT_HOME"] == str(tmp_path.resolve() / ".prefect")
    assert env["DVC_SITE_CACHE_DIR"] == str(tmp_path.resolve() / ".dvc" / "site-cache")
    assert env["DVC_NO_ANALYTICS"] == "1" and env["MLFLOW_DISABLE_TELEMETRY"] == "true"


@pytest.mark.slow
def test_flow_runs_ancestors_then_skips_then_reruns_overridden(
    prefect_api: None, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    state = pipeline(targets=["b"], root=str(project), task=None, return_state=True)
    assert state.is_completed(), state.message
    assert {name: info["status"] for name, info in state.result().items()} == {
        "a": "ran",
        "b": "ran",
    }
    assert not (project / "c.txt").exists() and not (project / "other.txt").exists()
    # Stage stdout reaches the Prefect task logger, and the stages got the flow run id.
    logs = _task_log(caplog)
    assert f"hello from a pipeline={state.state_details.flow_run_id}" in logs
    assert "hello from b-2" in logs

    again = pipeline(targets=["b"], root=str(project), task=None)
    assert {name: info["status"] for name, info in again.items()} == {
        "a": "skipped",
        "b": "skipped",
    }
    assert all(info["seconds"] >= 0 for info in again.values())

    # Overrides run as `dvc exp run --temp` (needs a commit): params.yaml is never edited.
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "add", "-A"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-qm", "toy"], cwd=project, check=True)
    params_before = (project / "params.yaml").read_text()
    changed = pipeline(targets=["c"], root=str(project), task=None, overrides={"b.factor": "3"})
    assert {name: info["status"] for name, info in changed.items()} == {
        "a": "skipped",
        "b": "ran",
        "c": "ran",
    }
    assert (project / "params.yaml").read_text() == params_before
    assert not (project / "c.txt").exists()  # the experiment ran in a temporary copy
    exps = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=project,
                          capture_output=True, text=True, check=True).stdout
    assert re.search(r'"factor":\s*3\b', exps), "the experiment's params are not in dvc exp show"

    forced = pipeline(targets=["a"], root=str(project), task=None, force=True)
    assert forced["a"]["status"] == "ran"


def test_flow_side_by_side_runs_each_stage_after_its_upstream(
    prefect_api: None, project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    state = pipeline(targets=["c", "other", "per_task"], root=str(project), task=None,
                     max_parallel=2, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert set(result) == {"a", "b", "c", "other", "per_task@gaze", "per_task@hand"}
    assert {info["status"] for info in result.values()} == {"ran"}
    assert (project / "c.txt").read_text() == "a\nb-2\nc\n"  # each after its upstream
    flow_log = "\n".join(r.getMessage() for r in caplog.records)
    assert "up to 2 stage(s) at once" in flow_log
    # every stage recorded by DVC: nothing left to run
    again = pipeline(targets=["c", "other", "per_task"], root=str(project), task=None,
                     max_parallel=2)
    assert {info["status"] for info in again.values()} == {"skipped"}


@pytest.mark.slow
def test_failing_stage_fails_flow_after_retries(prefect_api: None, project: Path) -> None:
    state = pipeline(
        targets=["broken"],
        root=str(project),
        task=None,
        retries=1,
        retry_delay_seconds=0,
        return_state=True,
    )
    assert state.is_failed()
    assert "'broken'" in state.message and "boom on stderr" in state.message
    assert (project / "attempts.log").read_text().count("try") == 2  # first try + 1 retry
    assert (project / "a.txt").exists()  # the upstream stage ran before the failure


@pytest.mark.slow
def test_deploy_serves_the_flow_on_a_cron_or_interval(
    prefect_api: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows import deploy

    served: dict[str, object] = {}
    monkeypatch.setattr(deploy.pipeline, "serve", lambda **kwargs: served.update(kwargs))
    assert deploy.main(["--cron", "0 3 * * *", "--target", "b", "-S", "a.n=2"]) == 0
    assert served["cron"] == "0 3 * * *"
    assert served["limit"] == 1
    assert served["global_limit"].limit == 1  # single flight, held by the server
    assert served["pause_on_shutdown"] is False  # stopping the process keeps the schedule
    # no --task: every task (None); --task names one
    assert served["parameters"] == {"task": None, "targets": ["b"], "overrides": {"a.n": "2"}}
    assert deploy.main(["--interval", "3600", "--task", "hand", "--lock-wait", "60"]) == 0
    assert served["interval"] == 3600
    assert served["parameters"] == {"task": "hand", "lock_wait_seconds": 60}
