"""The whole DVC graph on the smoke profile, in a temporary copy of the repo.

Checks every output of the data contract, the metrics DVC sees, the MLflow runs and their
tags, that DVC reruns only what a params change touches, and `make seeds` (stages.seeds: the
refiner-seed experiments reuse the unchanged estimators).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from simgan.core import torchfile
from simgan.core.dataset import open_dataset

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("synthetic", "refined", "real")


def _env(repo: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(repo / ".dvc" / "site-cache"),
        MLFLOW_DISABLE_TELEMETRY="true",
        SIMGAN_PIPELINE_ID="e2e-test",
        PYTHONPATH=str(repo),
    )
    env.update(extra or {})
    return env


def _run(args: list[str], repo: Path, timeout: float = 240,
         env: dict[str, str] | None = None) -> str:
    """Run a command in the copy (``env``: more variables); returns stdout, fails the test
    with both streams' tails."""
    proc = subprocess.Popen(args, cwd=repo, env=_env(repo, env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException:  # a timeout, Ctrl-C: stop dvc's stage processes too, not only dvc
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    proc = subprocess.CompletedProcess(args, proc.returncode, out, err)
    assert proc.returncode == 0, (
        f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    )
    return proc.stdout


def _source_files() -> list[str]:
    """What a clone would hold: tracked and untracked-but-not-ignored files, minus dvc.lock."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split("\0")
    return [f for f in listed if f and f != "dvc.lock" and (ROOT / f).is_file()]


def smoke_repo(repo: Path) -> Path:
    """A git repo at ``repo`` holding the sources (as a clone would), on the smoke profile."""
    for rel in _source_files():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, repo / rel)
    _run(["git", "init", "-q"], repo)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A"], repo)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "e2e"], repo)
    _run([sys.executable, "-m", "stages.profile", "configs/smoke.yaml"], repo)
    return repo


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = smoke_repo(tmp_path_factory.mktemp("e2e") / "repo")
    # as `make run` does: stages side by side, two at a time even on one core, so that what
    # stages share (a fresh MLflow store, dvc.lock rewritten by the other's DVC process) is
    # exercised; the checks below hold for any schedule
    _run([sys.executable, "-m", "flows.side_by_side", "--max-parallel", "2"], repo, timeout=600)
    return repo


def _stale(repo: Path, *targets: str) -> dict:
    """`dvc status --json`. The smoke profile draws every domain (manifests.static), so no
    stage is "always changed" and an up-to-date pipeline reports nothing."""
    status = json.loads(_run(["dvc", "status", "--json", *targets], repo))
    assert not [name for name, why in status.items() if why == ["always changed"]], status
    return status


SHAPES = {"gaze": (35, 55), "hand": (32, 32)}
LABELS = {"gaze": {"gaze_x", "gaze_y", "gaze_z", "pupil_u", "pupil_v", "id"},
          "hand": {"j00_u", "j00_v", "j13_d", "crop_scale", "id"}}


@pytest.mark.parametrize("task", ["gaze", "hand"])
def test_every_dataset_follows_the_contract(repo, task):
    for rel in ("synthetic/train", "synthetic/test", "real/train", "real/test", "refined/train"):
        ds = open_dataset(repo / "data" / task / rel)
        assert ds.images.dtype == np.uint8 and ds.images.shape[1:] == SHAPES[task], rel
        assert LABELS[task] <= set(ds.labels), rel
        assert ds.meta["task"] == task and ds.meta["count"] == len(ds)
    syn = open_dataset(repo / "data" / task / "synthetic/train")
    ref = open_dataset(repo / "data" / task / "refined/train")
    assert ref.meta["domain"] == "refined"
    assert ref.labels.equals(syn.labels), "refine must carry labels over unchanged"
    assert not np.array_equal(ref.images, syn.images), "the refiner changed nothing"


def test_gaze_refiner_trains_its_own_label_model_and_hand_reuses_the_estimator(repo):
    """params.yaml gives gaze an appearance-blind label model (photometric augmentation):
    train_refiner trains it on the synthetic set and saves it beside the refiner; hand's
    section (sensor augmentation) is all zero, so it reads R(x) with its synthetic-trained
    estimator."""
    saved = torchfile.load(repo / "models/gaze/refiner/label_model.pt")
    assert saved["estimator"]["blur_jitter"] > 0 and saved["state_dict"]
    synthetic = torchfile.load(repo / "models/gaze/estimator_synthetic/model.pt")
    assert any(not torch.equal(saved["state_dict"][k], v)
               for k, v in synthetic["state_dict"].items())
    assert not (repo / "models/hand/refiner/label_model.pt").exists()


def test_reports_and_dvc_metrics_cover_all_sources(repo):
    comparison = json.loads((repo / "reports/gaze/comparison.json").read_text())
    for s in SOURCES:
        real_test = comparison["sources"][s]["real_test"]
        assert 0.0 <= real_test["mean_deg"] <= 180.0
        assert 0.0 <= real_test["pct_within"] <= 100.0
    assert "pupil_drift_mean_px" in comparison["label_preservation"]
    for pair in ("synthetic_vs_real", "refined_vs_real"):
        assert 0.0 <= comparison["realism"][pair]["accuracy"] <= 1.0
    md = (repo / "reports/gaze/comparison.md").read_text()
    assert all(f"| {s} |" in md for s in SOURCES)
    for png in ("curves.png", "samples.png"):
        assert (repo / "reports/gaze" / png).read_bytes().startswith(b"\x89PNG")
    shown = json.loads(_run(["dvc", "metrics", "show", "--json"], repo))
    files = next(iter(shown.values()))["data"]
    # DVC's metrics are the headline files only (a screen), with the same keys for each task
    assert set(files) == {f"reports/{task}/headline.json" for task in ("gaze", "hand")}
    headlines = [files[f"reports/{task}/headline.json"]["data"] for task in ("gaze", "hand")]
    assert set(headlines[0]) == set(headlines[1]) and len(headlines[0]) <= 10
    assert headlines[0]["metric"] == "mean_deg"
    assert headlines[0]["refined"] == comparison["sources"]["refined"]["real_test"]["mean_deg"]
    page = (repo / "reports/index.html").read_text()  # the review stage, over both tasks
    assert '<h2 id="gaze">' in page and '<h2 id="hand">' in page and "not run" not in page


def test_hand_reports_the_papers_measures(repo):
    comparison = json.loads((repo / "reports/hand/comparison.json").read_text())
    for s in SOURCES:
        for split in ("real_test", "synthetic_test"):
            m = comparison["sources"][s][split]
            assert 0.0 <= m["pct_joints_within"] <= 100.0 and 0.0 <= m["pct_images_within"] <= 100.0
            assert m["pct_images_within"] <= m["pct_joints_within"]
            assert m["mean_px"] >= 0.0 and m["n_joints"] == 14.0
        curve = (repo / f"reports/hand/eval/{s}/curve_real_test.csv").read_text().splitlines()
        assert curve[0] == "threshold,pct_within,pct_images_within" and len(curve) == 22
    lp = comparison["label_preservation"]
    assert {"synthetic_mean_px", "refined_mean_px", "delta_pct_joints_within"} <= set(lp)
    for pair in ("synthetic_vs_real", "refined_vs_real"):
        assert 0.0 <= comparison["realism"][pair]["accuracy"] <= 1.0
    md = (repo / "reports/hand/comparison.md").read_text()
    assert "% joints within 5 crop px" in md and all(f"| {s} |" in md for s in SOURCES)
    assert (repo / "reports/hand/curves.png").read_bytes().startswith(b"\x89PNG")
    plots = json.loads(_run(["dvc", "plots", "show", "--json"], repo))["data"]
    for name, column in (("hand_joints_within_on_real_test", "pct_within"),
                         ("hand_images_within_on_real_test", "pct_images_within")):
        values = plots[name][0]["content"]["data"]["values"]
        assert {v["filename"] for v in values} == {f"{s}/curve_real_test.csv" for s in SOURCES}
        assert all(column in v for v in values)


def test_committed_runs_keep_their_metrics_for_exp_show_and_diff(repo):
    """Reports are cached DVC outputs, so a commit's metrics are readable without being in git."""
    import dvc.api

    _run(["git", "add", "-A"], repo)
    _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "run"], repo)
    rev = _run(["git", "rev-parse", "HEAD"], repo).strip()
    shown = json.loads(_run(["dvc", "metrics", "show", "--all-commits", "--json"], repo))
    for task in ("gaze", "hand"):
        committed = shown[rev]["data"][f"reports/{task}/headline.json"]
        assert "error" not in committed, committed
        assert committed["data"]["refined"] > 0
        full = json.loads(dvc.api.read(f"reports/{task}/comparison.json", repo=str(repo),
                                       rev=rev))
        assert full["sources"]["refined"]["real_test"]["n"] > 0


STAGE_RUNS = {"render": 1, "real": 1, "train_refiner": 1, "refine": 1, "train_estimator": 3,
              "evaluate": 3, "compare": 1}


@pytest.mark.parametrize(("task", "headline"), [("gaze", "mean_deg"),
                                                ("hand", "pct_joints_within")])
def test_mlflow_holds_one_finished_run_per_stage(repo, task, headline):
    import mlflow

    from simgan.core import tracking

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=[f"simgan-{task}"])
    assert set(runs["status"]) == {"FINISHED"}
    assert set(runs["tags.pipeline_id"]) == {"e2e-test"}
    assert set(runs["tags.task"]) == {task}
    assert runs["tags.stage"].value_counts().to_dict() == STAGE_RUNS
    refined = mlflow.search_runs(experiment_names=[f"simgan-{task}"],
                                 filter_string="tags.train_source = 'refined'")
    assert sorted(refined["tags.stage"]) == ["evaluate", "train_estimator"]
    assert f"metrics.real_test.{headline}" in refined.columns
    compare = runs[runs["tags.stage"] == "compare"]
    assert f"metrics.refined.{headline}" in compare.columns
    # the review stage logged its page to the execution's parent run of each task
    parents = runs[runs["tags.run_kind"] == "pipeline"]
    assert len(parents) == 1
    client = tracking.use_store(repo)
    assert [a.path for a in client.list_artifacts(parents["run_id"].iloc[0], "review")] == [
        "review/index.html"]


def test_repro_is_incremental(repo):
    assert _stale(repo) == {}
    # builtin and stand-in sources: empty manifests, static (not rerun); nothing reruns and
    # dvc.lock keeps its bytes
    manifests = sorted((repo / "data").glob("*/manifest/*.json"))
    assert [m.read_text() for m in manifests] == ["[]\n"] * 4
    lock = (repo / "dvc.lock").read_bytes()
    ran = _run(["dvc", "repro"], repo)
    assert re.findall(r"Running stage '([^']+)'", ran) == [] and "up to date" in ran, ran
    assert (repo / "dvc.lock").read_bytes() == lock
    params = (repo / "params.yaml").read_text()
    assert params.count("within_deg: 7.0") == 1 and params.count("within_px: 5.0") == 1
    changed = params.replace("within_deg: 7.0", "within_deg: 5.0")
    (repo / "params.yaml").write_text(changed)
    try:
        status = _stale(repo)
        # review shows every task's params section, so it is touched too (and cheap)
        assert sorted(status) == [
            *(f"evaluate@gaze-{s}" for s in ("real", "refined", "synthetic")), "review"]
        (repo / "params.yaml").write_text(changed.replace("within_px: 5.0", "within_px: 4.0"))
        status = _stale(repo)
        assert sorted(status) == [*(f"evaluate@{t}-{s}" for t in ("gaze", "hand")
                                    for s in ("real", "refined", "synthetic")), "review"]
    finally:
        (repo / "params.yaml").write_text(params)


def test_seeds_rerun_only_what_the_refiner_seed_touches(repo):
    """`make seeds` on one task and two seeds (last: it adds runs): the seed-1 experiment
    reruns the refiner and what follows it, restores the synthetic and real estimators from
    DVC's cache, and the workspace stays the seed-0 run; seeds.json has its shape."""
    import mlflow

    params = (repo / "params.yaml").read_bytes()
    _run([sys.executable, "-m", "stages.seeds", "--tasks", "gaze", "--seeds", "0", "1"], repo,
         timeout=600)
    report = json.loads((repo / "reports/gaze/seeds.json").read_text())
    assert report["metric"] == "real_test.mean_deg"
    assert report["seeds"] == [0, 1] and report["failed"] == []
    assert report["per_seed"]["0"]["experiment"] == "workspace"
    assert set(report["per_seed"]["1"]["stages_run"]) == {
        "train_refiner@gaze", "refine@gaze", "train_estimator@gaze-refined",
        "evaluate@gaze-refined", "compare@gaze"}
    summary = report["summary"]
    assert all({"mean", "sd"} <= set(summary[s]) for s in SOURCES)
    assert summary["synthetic"]["sd"] == 0.0 and summary["real"]["sd"] == 0.0  # same models
    assert summary["refined"]["worst_seed"] in (0, 1)
    for pair in ("refined_vs_real", "synthetic_vs_real"):
        assert 0.0 <= summary[f"realism_auc_{pair}"]["mean"] <= 1.0
    assert "±" in (repo / "reports/gaze/seeds.md").read_text()
    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    trained = mlflow.search_runs(experiment_names=["simgan-gaze"],
                                 filter_string="tags.stage = 'train_estimator'")
    assert trained["tags.train_source"].value_counts().to_dict() == {
        "synthetic": 1, "real": 1, "refined": 2}
    # the queued experiment logged into this project's store, named as its DVC experiment
    refined = trained[trained["tags.train_source"] == "refined"]
    assert "seeds-gaze-1" in set(refined["tags.dvc_experiment"])
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))
    assert (repo / "params.yaml").read_bytes() == params
    assert _stale(repo) == {}
