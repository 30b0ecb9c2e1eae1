"""MLflow as a review tool: parent runs per pipeline execution, provenance tags, a store
that follows the project (copies, queued experiments), registered models and the champion
alias, the HTML report, and a clear error for an unwritable store. In-process and on tmp
stores (a few seconds); the whole graph is checked in test_pipeline_e2e."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from simgan.core import tracking
from simgan.core.report_html import markdown_to_html
from stages import lineage, provenance

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A minimal DVC project directory (a store root), with no tracking URI override."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "project"
    (root / ".dvc").mkdir(parents=True)
    return root


def _prov(root: Path, pipeline: str, **kw) -> tracking.Provenance:
    return tracking.Provenance(store_root=root, pipeline_id=pipeline, git_commit="abc123",
                               git_dirty=False, params_hash="p1", **kw)


def _runs(root: Path, task: str = "t"):
    client = tracking.use_store(root)
    exp = client.get_experiment_by_name(tracking.experiment_name(task))
    return client, client.search_runs([exp.experiment_id])


def test_stages_of_one_invocation_nest_under_one_parent_and_invocations_do_not_share(project):
    for pipeline in ("dvc-100-1", "dvc-200-2"):  # two `dvc repro` invocations
        for stage in ("render", "train_refiner"):  # two stage processes of each
            with tracking.stage_run(_prov(project, pipeline), "t", stage, {"a": {"b": 1}}):
                tracking.log_metrics({"x": 1.0})
    client, runs = _runs(project)
    parents = {r.data.tags[tracking.TAG_PIPELINE]: r for r in runs
               if r.data.tags[tracking.TAG_KIND] == "pipeline"}
    children = [r for r in runs if r.data.tags[tracking.TAG_KIND] == "stage"]
    assert sorted(parents) == ["dvc-100-1", "dvc-200-2"] and len(children) == 4
    for child in children:
        parent = parents[child.data.tags[tracking.TAG_PIPELINE]]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.params == {"a.b": "1"}
    for run in [*parents.values(), *children]:
        tags = run.data.tags
        assert tags[tracking.TAG_EXPERIMENT] == "workspace"
        assert tags[tracking.MLFLOW_GIT_COMMIT] == "abc123" and tags[tracking.TAG_DIRTY] == "false"
        assert tags[tracking.TAG_PARAMS_HASH] == "p1" and tags[tracking.TAG_TASK] == "t"
        assert run.info.status == "FINISHED"
    exp = client.get_experiment_by_name("simgan-t")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


def test_a_failing_stage_fails_its_parent(project):
    with pytest.raises(RuntimeError), tracking.stage_run(_prov(project, "p"), "t", "s", {}):
        raise RuntimeError("boom")
    _, runs = _runs(project)
    assert {r.data.tags[tracking.TAG_KIND]: r.info.status for r in runs} == {
        "pipeline": "FAILED", "stage": "FAILED"}


def test_execution_wide_files_go_to_the_parent_run_of_their_pipeline(project, tmp_path):
    """log_to_pipeline (the review page): into the parent the stages of the same execution
    made, which stays FINISHED; a parent of its own when no stage of the task ran."""
    page = tmp_path / "index.html"
    page.write_text("<!DOCTYPE html>page")
    with tracking.stage_run(_prov(project, "p1"), "t", "compare", {}) as run:
        stage_id = run.info.run_id
    parent = tracking.log_to_pipeline(_prov(project, "p1"), "t", [page], "review")
    alone = tracking.log_to_pipeline(_prov(project, "p2"), "t", [page], "review")
    client, runs = _runs(project)
    parents = {r.data.tags[tracking.TAG_PIPELINE]: r for r in runs
               if r.data.tags[tracking.TAG_KIND] == "pipeline"}
    assert sorted(parents) == ["p1", "p2"] and len(runs) == 3  # no stage run for the page
    assert parents["p1"].info.run_id == parent == \
        client.get_run(stage_id).data.tags["mlflow.parentRunId"]
    assert parents["p2"].info.run_id == alone
    for run_id in (parent, alone):
        assert client.get_run(run_id).info.status == "FINISHED"
        assert [a.path for a in client.list_artifacts(run_id, "review")] == ["review/index.html"]
        got = client.download_artifacts(run_id, "review/index.html", str(tmp_path / run_id))
        assert Path(got).read_text() == "<!DOCTYPE html>page"
    assert client.list_artifacts(stage_id, "review") == []


def test_a_copied_project_logs_artifacts_into_its_own_store(project, tmp_path):
    with tracking.stage_run(_prov(project, "p1"), "t", "s", {}):
        tracking.log_text("original", "note.txt")
    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    with tracking.stage_run(_prov(copy, "p2"), "t", "s", {}) as run:
        tracking.log_text("copy", "note.txt")
        run_id = run.info.run_id
    client, _ = _runs(copy)
    assert client.get_experiment_by_name("simgan-t").artifact_location == \
        "mlflow-artifacts:/simgan-t"
    logged = copy / "mlartifacts" / "simgan-t" / run_id / "artifacts" / "note.txt"
    assert logged.read_text() == "copy"
    assert not (project / "mlartifacts" / "simgan-t" / run_id).exists()
    assert Path(client.download_artifacts(run_id, "note.txt", str(tmp_path))).read_text() == \
        "copy"


def test_a_queued_experiment_logs_into_the_project_store(project, monkeypatch):
    """DVC runs a queued experiment's stages in .dvc/tmp/exps/... with DVC_ROOT (the project),
    DVC_EXP_NAME and DVC_EXP_BASELINE_REV set."""
    workspace = project / ".dvc" / "tmp" / "exps" / "tmpabc"
    workspace.mkdir(parents=True)
    monkeypatch.chdir(workspace)
    env = {"DVC_ROOT": str(project), "DVC_EXP_NAME": "seeds-gaze-1",
           "DVC_EXP_BASELINE_REV": "f" * 40, tracking.PIPELINE_ENV: "dvc-300-3"}
    prov = provenance.provenance(workspace, {"seed": 1}, env)
    assert prov.store_root == project.resolve()
    assert prov.pipeline_id == "dvc-300-3/seeds-gaze-1"
    with tracking.stage_run(prov, "t", "train_refiner", {}):
        tracking.log_text("x", "x.txt")
    assert not (workspace / "mlflow.db").exists() and not (workspace / "mlartifacts").exists()
    _, runs = _runs(project)
    assert len(runs) == 2
    for run in runs:
        assert run.data.tags[tracking.TAG_EXPERIMENT] == "seeds-gaze-1"
        assert run.data.tags[tracking.TAG_BASELINE] == "f" * 40
        assert run.data.tags[tracking.TAG_PARAMS_HASH] == provenance.params_hash({"seed": 1})


def test_stages_find_the_dvc_process_that_started_them(tmp_path):
    """A fake `dvc` runs two stage-like children: both see the same invocation id, a second
    `dvc` another one; a process without a dvc ancestor sees none."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    child = "from stages.provenance import dvc_invocation; print(dvc_invocation())"
    (bindir / "dvc").write_text(textwrap.dedent(f"""\
        #!/bin/sh
        {sys.executable} -c "{child}"
        {sys.executable} -c "{child}"
        """))
    (bindir / "dvc").chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def invoke() -> list[str]:
        out = subprocess.run([str(bindir / "dvc")], env=env, capture_output=True, text=True,
                             check=True).stdout.split()
        return out

    first, second = invoke(), invoke()
    assert first[0] == first[1] and second[0] == second[1] and first[0] != second[0]
    assert first[0].startswith("dvc-")
    alone = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True,
                           text=True, check=True).stdout.strip()
    assert alone == "None"
    assert provenance.is_dvc(["/x/.venv/bin/python", "/x/.venv/bin/dvc", "repro"])
    assert provenance.is_dvc(["python", "-m", "dvc", "repro"])
    assert not provenance.is_dvc(["python", "-m", "stages.render"])


def test_models_are_registered_safely_and_the_better_refiner_is_champion(project, tmp_path):
    from stages.compare import crown_refiner

    weights = tmp_path / "models" / "t" / "refiner" / "refiner.pt"
    weights.parent.mkdir(parents=True)
    torch.save({"state_dict": {"w": torch.ones(2)}, "net": {"width": 8}}, weights)
    sha = lineage.file_sha256(weights)
    name = tracking.registered_refiner("t")
    with tracking.stage_run(_prov(project, "p"), "t", "train_refiner", {}):
        assert tracking.log_model_file("refiner", weights, name, sha, {"task": "t"}) == "1"
    client = tracking.use_store(project)
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=str(tmp_path
                                                                                       / "dl")))
    saved = torch.load(local / "refiner.pt", weights_only=True)  # no pickled classes
    assert torch.equal(saved["state_dict"]["w"], torch.ones(2))
    assert (local / "model.json").is_file()
    ctx = SimpleNamespace(task=SimpleNamespace(name="t", headline_higher_is_better=False),
                          layout=SimpleNamespace(refiner_model=weights))
    crown_refiner(ctx, relative=+3.0)  # refined worse than synthetic: no champion
    assert not client.get_registered_model(name).aliases
    crown_refiner(ctx, relative=-12.5)
    assert str(client.get_model_version_by_alias(name, tracking.CHAMPION).version) == "1"
    assert tracking.registered_estimator("gaze", "refined") == "gaze-estimator-refined"


def test_datasets_are_logged_with_their_dvc_digest(project, tmp_path):
    data = tmp_path / "ws" / "data" / "t" / "synthetic" / "train"
    data.mkdir(parents=True)
    (data / "meta.json").write_text("{}")
    (tmp_path / "ws" / "dvc.lock").write_text(textwrap.dedent("""\
        schema: '2.0'
        stages:
          render@t:
            cmd: x
            outs:
            - path: data/t/synthetic/train
              md5: 0123456789abcdef0123456789abcdef.dir
        """))
    assert lineage.dataset_digest(tmp_path / "ws", data) == "0123456789abcdef0123456789abcdef"
    other = tmp_path / "ws" / "data" / "t" / "real" / "test"
    other.mkdir(parents=True)
    (other / "meta.json").write_text('{"seed": 1}')
    assert len(lineage.dataset_digest(tmp_path / "ws", other)) == 32  # md5 of meta.json
    with tracking.stage_run(_prov(project, "p"), "t", "evaluate", {}) as run:
        tracking.log_dataset("t/synthetic/train", "data/t/synthetic/train",
                             lineage.dataset_digest(tmp_path / "ws", data), "evaluation")
    client = tracking.use_store(project)
    (entry,) = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert entry.dataset.digest == "0123456789abcdef0123456789abcdef"
    assert "data/t/synthetic/train" in entry.dataset.source
    assert entry.tags[0].value == "evaluation"


def test_an_unwritable_store_is_a_one_line_error_naming_the_fix(project, monkeypatch):
    blocked = project / "mlartifacts"
    blocked.mkdir()
    real_access = os.access
    monkeypatch.setattr(tracking.os, "access",
                        lambda p, mode: Path(p) != blocked and real_access(p, mode))
    with pytest.raises(tracking.StoreError) as err:
        tracking.stage_run(_prov(project, "p"), "t", "s", {}).__enter__()
    message = str(err.value)
    assert "\n" not in message and str(blocked) in message
    assert "MLFLOW_TRACKING_URI" in message and "chmod" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_project_dir_is_refused(project):
    project.chmod(0o555)
    try:
        with pytest.raises(tracking.StoreError, match="not writable"):
            tracking.check_writable(project)
    finally:
        project.chmod(0o755)


def test_stage_main_reports_an_unwritable_store_in_one_line(monkeypatch, capsys):
    from stages import common

    def body(ctx):
        raise tracking.StoreError("MLflow store not writable: /x; make it writable")

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["render", "--task", "gaze"])
    monkeypatch.setattr(common, "_limit_threads", lambda: None)
    with pytest.raises(SystemExit) as exit_:
        common.main("render", body)
    assert exit_.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "stages.render: StoreError: MLflow store not writable: /x; make it writable")


def test_the_html_report_embeds_its_images():
    md = "# T\n\n| a | b |\n|---|---|\n| 1 | **2** |\n\n- x\n\n![curves](curves.png)\n"
    html = markdown_to_html(md, images={"curves.png": b"\x89PNG"})
    assert "<h1>T</h1>" in html and "<td><b>2</b></td>" in html and "<li>x</li>" in html
    assert "src='data:image/png;base64,iVBORw==" in html and "curves.png'" not in html


def test_an_experiments_params_edit_is_not_a_dirty_tree(tmp_path) -> None:
    """``dvc exp run -S`` rewrites params.yaml in the experiment's workspace: that is the
    experiment, recorded by its name and params hash, not uncommitted code."""

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for name in ("params.yaml", "dvc.lock", "code.py"):
        (tmp_path / name).write_text("a\n")
    git("add", ".")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base")
    (tmp_path / "params.yaml").write_text("b\n")
    (tmp_path / "dvc.lock").write_text("b\n")
    in_experiment = {"DVC_EXP_NAME": "seeds-gaze-1", "SIMGAN_PIPELINE_ID": "p"}
    assert provenance.provenance(tmp_path, {}, in_experiment).git_dirty is False
    in_workspace = {"SIMGAN_PIPELINE_ID": "p"}
    assert provenance.provenance(tmp_path, {}, in_workspace).git_dirty is True
    (tmp_path / "code.py").write_text("b\n")
    assert provenance.provenance(tmp_path, {}, in_experiment).git_dirty is True


def test_dataset_digests_wait_for_a_dvc_process_rewriting_the_lock_file(tmp_path):
    """DVC rewrites dvc.lock in place under its repository lock, which it releases while a
    stage runs: a stage side by side must not read another DVC process's half-written file.
    Here another process holds that lock with half a file written, then completes it."""
    ws = tmp_path / "ws"
    (ws / ".dvc" / "tmp").mkdir(parents=True)
    data = ws / "data" / "t" / "synthetic" / "train"
    data.mkdir(parents=True)
    whole = ("schema: '2.0'\nstages:\n  render@t:\n    cmd: x\n    outs:\n"
             "    - path: data/t/synthetic/train\n"
             "      md5: 0123456789abcdef0123456789abcdef.dir\n")
    writer = textwrap.dedent(f"""\
        import sys, time, zc.lockfile
        held = zc.lockfile.LockFile({str(ws / ".dvc" / "tmp" / "lock")!r})
        open({str(ws / "dvc.lock")!r}, "w").write({whole[:40]!r})
        print("half", flush=True)
        time.sleep(1.5)
        open({str(ws / "dvc.lock")!r}, "w").write({whole!r})
        held.close()
        """)
    proc = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "half"
    t0 = time.monotonic()
    assert lineage.dataset_digest(ws, data) == "0123456789abcdef0123456789abcdef"
    assert time.monotonic() - t0 > 0.5  # it waited for the writer
    assert proc.wait(timeout=30) == 0


def test_stages_opening_a_fresh_store_at_once_all_succeed(project):
    """Stages side by side on a fresh clone open the not-yet-created sqlite store together;
    MLflow's table creation is not safe against itself, so the openings take turns (without
    that, `make run` failed with "table _alembic_tmp_trace_tags already exists")."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env.update(PYTHONPATH=str(ROOT), MLFLOW_DISABLE_TELEMETRY="true")
    code = ("import sys; from simgan.core import tracking; "
            "c = tracking.use_store(sys.argv[1]); "
            "print(tracking.experiment_id(c, 'gaze', sys.argv[1]))")
    opened = [subprocess.Popen([sys.executable, "-c", code, str(project)], env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for _ in range(4)]
    results = [p.communicate(timeout=240) + (p.returncode,) for p in opened]
    assert [rc for _, _, rc in results] == [0, 0, 0, 0], [err[-400:] for _, err, _ in results]
    assert len({out.strip() for out, _, _ in results}) == 1  # one experiment, found by all
