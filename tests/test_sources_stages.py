"""The real DVC stages on file sources, switched by params only (tiny fixture folders).

- render + real: UnityEyes-format synthetic (one bad file, skipped and counted; a row cap) and
  MPIIGaze v5 real; meta.json, MLflow and dvc.lock say what was read.
- an unlabelled real folder: the refiner's side works, the 'real' reference and evaluation say
  that no labels exist (exit 0, outputs well defined) instead of failing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from simgan.core.dataset import open_dataset
from simgan.tasks import watch
from tests.test_ingest_mpiigaze import make_dataset
from tests.test_ingest_unityeyes import write_sample
from tests.test_pipeline_e2e import _env, _source_files

ROOT = Path(__file__).resolve().parents[1]

UNITYEYES = {"kind": "unityeyes", "path": "inputs/unityeyes", "workers": 0, "skip_bad": True,
             "crop_scale": 1.5, "fast_jpeg": True, "equalize": False, "test_fraction": 0.25}


def _run(args: list[str], repo: Path, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=repo, env=_env(repo), capture_output=True, text=True,
                          timeout=300)
    if ok:
        assert proc.returncode == 0, (
            f"{' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def _copy_repo(dest: Path) -> Path:
    """A clone-like copy (git ls-files) with the smoke profile applied."""
    for rel in _source_files():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest / rel)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    _run(["git", "init", "-q"], dest)
    _run([*git, "add", "-A"], dest)
    _run([*git, "commit", "-qm", "copy"], dest)
    _run([sys.executable, "-m", "stages.profile", "configs/smoke.yaml"], dest)
    return dest


def _set_params(repo: Path, **sections) -> None:
    """Replace keys of gaze.<section> in params.yaml (what a user edits)."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in sections.items():
        params["gaze"][section].update(values)
    watch(params, {"gaze"})  # a file source must be watched (params.yaml: manifests)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _mlflow_runs(repo: Path, stage: str):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{repo / 'mlflow.db'}")
    return mlflow.search_runs(experiment_names=["simgan-gaze"],
                              filter_string=f"tags.stage = '{stage}'")


def test_render_and_real_read_unityeyes_and_mpiigaze_by_params(tmp_path):
    repo = _copy_repo(tmp_path / "repo")
    ue = repo / "inputs/unityeyes"  # relative to the project in params
    ue.mkdir(parents=True)
    for i in range(1, 13):
        write_sample(ue, str(i), look=(0.03 * i - 0.2, 0.02 * i - 0.1, -1.0))
    (ue / "7.json").write_text("{ not json")  # a bad file: skipped and counted
    mpii = make_dataset(tmp_path / "MPIIGaze", {0: {1: 3, 2: 2}, 1: {1: 2}})  # absolute path
    real_source = {"kind": "mpiigaze", "path": str(mpii), "workers": 0, "skip_bad": False,
                   "split": "persons", "test_persons": ["p01"], "test_fraction": 0.2,
                   "mirror_right": True, "equalize": False}
    _set_params(repo, render={"source": UNITYEYES, "n_test": 2},
                real={"source": real_source})

    proc = _run(["dvc", "repro", "render@gaze", "real@gaze"], repo)

    # 12 files, 3 to test (test_fraction) capped to 2 (n_test); one bad one skipped
    train, test = (open_dataset(repo / "data/gaze/synthetic" / s) for s in ("train", "test"))
    assert len(train) + len(test) == 10
    assert test.meta["rows_available"] == 3 and test.meta["rows_cap"] == 2
    for ds in (train, test):
        assert ds.images.shape[1:] == (35, 55) and ds.images.dtype == np.uint8
        assert ds.meta["source"] == "unityeyes" and ds.meta["labelled"] is True
        assert ds.meta["source_path"] == "inputs/unityeyes"  # portable: as written in params
        # as given, less the speed keys (meta.json does not depend on how many processes wrote it)
        assert ds.meta["source_params"] == {k: v for k, v in UNITYEYES.items() if k != "workers"}
        assert {"gaze_x", "gaze_y", "gaze_z", "pitch", "yaw", "pupil_u", "pupil_v"} <= set(
            ds.labels)
    skipped = train.meta["skipped_bad"] + test.meta["skipped_bad"]
    assert skipped == 1, (train.meta, test.meta)
    bad_split = "train" if train.meta["skipped_bad"] else "test"
    bad_meta = train.meta if bad_split == "train" else test.meta
    assert bad_meta["skipped_bad_examples"][0].startswith("inputs/unityeyes/7.json: ")
    assert "SKIPPED 1 bad input(s)" in proc.stderr
    run = _mlflow_runs(repo, "render").iloc[0]
    assert run[f"metrics.{bad_split}.skipped_bad"] == 1.0
    assert run["metrics.images"] == 10.0

    real_train, real_test = (open_dataset(repo / "data/gaze/real" / s) for s in ("train", "test"))
    assert (len(real_train), len(real_test)) == (10, 4)  # p00: 5 samples x 2 eyes; p01: 2 x 2
    assert real_test.meta["source"] == "mpiigaze" and real_test.meta["source_path"] == str(mpii)
    assert set(real_test.labels["person"]) == {1} and real_train.meta["skipped_bad"] == 0
    assert _mlflow_runs(repo, "real").iloc[0]["metrics.test.ingest_rows"] == 4.0

    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert lock["render@gaze"]["params"]["params.yaml"]["gaze.render"]["source"] == UNITYEYES
    _set_params(repo, real={"source": {**real_source, "mirror_right": False}})
    status = json.loads(_run(["dvc", "status", "--json", "render@gaze", "real@gaze"], repo).stdout)
    assert list(status) == ["real@gaze"]  # a source param change reruns its stage only
    _set_params(repo, real={"source": real_source})

    # Files changed at the same paths: the watched manifest stage (watch@gaze, run every time)
    # sees them, and DVC reruns exactly the stage reading them; unchanged files rerun nothing.
    def after_manifest() -> list[str]:
        _run(["dvc", "repro", "watch@gaze"], repo)
        status = _run(["dvc", "status", "--json", "render@gaze", "real@gaze"], repo).stdout
        return sorted(json.loads(status))

    manifest = repo / "data/gaze/manifest"
    before = {p.name: p.read_bytes() for p in manifest.iterdir()}
    assert b'"path/1.jpg"' in before["render.json"] and b"day01.mat" in before["real.json"]
    lock = (repo / "dvc.lock").read_bytes()
    assert after_manifest() == []
    assert {p.name: p.read_bytes() for p in manifest.iterdir()} == before
    assert (repo / "dvc.lock").read_bytes() == lock
    write_sample(ue, "13", look=(0.1, 0.0, -1.0))  # new renders in the same folder
    assert after_manifest() == ["render@gaze"]
    day = next((mpii / "Data/Normalized").rglob("day*.mat"))
    st = day.stat()
    os.utime(day, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a real day file rewritten
    assert after_manifest() == ["real@gaze", "render@gaze"]
    proc = _run(["dvc", "repro", "render@gaze", "real@gaze"], repo)
    assert sorted(re.findall(r"Running stage '([^']+)'", proc.stdout)) == [
        "real@gaze", "render@gaze", "watch@gaze"]
    assert len(open_dataset(repo / "data/gaze/synthetic/train")) + len(
        open_dataset(repo / "data/gaze/synthetic/test")) == 11  # the new pair was read


def _unlabelled_folder(path: Path, n: int) -> None:
    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (70, 110), dtype=np.uint8)).save(path / f"{i}.png")


@pytest.mark.slow
def test_an_unlabelled_real_folder_runs_the_graph_and_says_there_are_no_labels(tmp_path):
    repo = _copy_repo(tmp_path / "repo")
    _unlabelled_folder(repo / "inputs/real_eyes", 40)
    source = {"kind": "folder", "path": "inputs/real_eyes", "workers": 0, "skip_bad": False,
              "test_path": None, "test_fraction": 0.25, "resize": "stretch", "equalize": False}
    _set_params(repo, real={"source": source})

    proc = _run(["dvc", "repro", "compare@gaze"], repo)

    real_train = open_dataset(repo / "data/gaze/real/train")
    assert len(real_train) == 30 and real_train.meta["labelled"] is False
    assert list(real_train.labels.columns) == ["id", "file"]
    assert "has no labels (source: folder inputs/real_eyes), so no estimator is trained on " \
           "'real'" in proc.stderr
    assert "the real test set (folder inputs/real_eyes) has no labels" in proc.stderr
    eval_dir = repo / "reports/gaze/eval"
    synthetic = json.loads((eval_dir / "synthetic/metrics.json").read_text())
    assert synthetic["real_test"] == {"labels_available": False, "n": 10}
    assert synthetic["synthetic_test"]["n"] == 64 and "mean_deg" in synthetic["synthetic_test"]
    real = json.loads((eval_dir / "real/metrics.json").read_text())
    assert real["real_test"] == {"estimator_trained": False, "n": 10}
    assert (eval_dir / "synthetic/curve_real_test.csv").read_text().strip() == \
        "threshold,pct_within"
    assert len((eval_dir / "synthetic/predictions.csv").read_text().splitlines()) == 11

    comparison = json.loads((repo / "reports/gaze/comparison.json").read_text())
    assert comparison["refined_vs_synthetic_relative_pct"] is None
    assert comparison["unavailable"]["refined.real_test"] == "the test set has no labels"
    assert comparison["unavailable"]["real.synthetic_test"].startswith("no estimator")
    assert 0.0 <= comparison["realism"]["refined_vs_real"]["accuracy"] <= 1.0
    md = (repo / "reports/gaze/comparison.md").read_text()
    assert "**The real test set has no labels**" in md and "| real | n/a | n/a | n/a | n/a |" in md
    shown = json.loads(_run(["dvc", "metrics", "show", "--json"], repo).stdout)
    headline = next(iter(shown.values()))["data"]["reports/gaze/headline.json"]["data"]
    assert "refined" not in headline and "refined_vs_synthetic_pct" not in headline
    runs = _mlflow_runs(repo, "evaluate")
    assert set(runs["status"]) == {"FINISHED"}
    synth = runs[runs["tags.train_source"] == "synthetic"].iloc[0]
    assert synth["tags.real_test.labels_available"] == "false"


def test_compare_shows_na_and_says_why_without_real_labels():
    from types import SimpleNamespace

    from simgan.tasks import get_task, load_task_params
    from stages.compare import render_markdown, unavailable_reason

    task = get_task("gaze")
    ctx = SimpleNamespace(params=load_task_params(ROOT / "params.yaml", "gaze"))
    measured = {"mean_deg": 2.0, "median_deg": 1.5, "pct_within": 90.0, "std_deg": 1.0, "n": 64}
    no_labels = {"labels_available": False, "n": 10}
    untrained = {"estimator_trained": False, "n": 10}
    evals = {"synthetic": {"real_test": no_labels, "synthetic_test": measured},
             "refined": {"real_test": no_labels, "synthetic_test": measured},
             "real": {"real_test": untrained, "synthetic_test": untrained}}
    assert unavailable_reason(measured, "mean_deg") is None
    assert unavailable_reason(no_labels, "mean_deg") == "the test set has no labels"
    realism = {"refined_vs_real": {
        "accuracy": 0.5, "ci95_low": 0.45, "ci95_high": 0.55, "auc": 0.95, "auc_ci95_low": 0.93,
        "auc_ci95_high": 0.97, "n_test": 400, "verdict": "distinguishable", "n_needed": None}}
    md = render_markdown(task, evals, None, {"pupil_drift_mean_px": 0.1}, realism, ctx)
    assert "| synthetic | n/a | n/a | n/a | 2.00 |" in md
    assert "| real | n/a | n/a | n/a | n/a |" in md
    assert "**The real test set has no labels**" in md
    assert "- real / synthetic test: n/a, no estimator: its training set has no labels." in md
    row = "| refined vs real | 0.950 | 0.930-0.970 | 0.500 | 0.450-0.550 | 400 | distinguishable |"
    assert f"{row} n/a |" in md and "**Read the AUC**" in md
    kid = {"synthetic_vs_real": {"mean": 2e-3, "std": 1e-4, "subset_size": 4, "n_subsets": 2},
           "refined_vs_real": {"mean": 5e-4, "std": 2e-5, "subset_size": 4, "n_subsets": 2}}
    md = render_markdown(task, evals, None, {}, realism, ctx, kid=kid)
    assert f"{row} 5.000e-04 +- 2.0e-05 |" in md
    assert "KID refined->real / synthetic->real: 0.250" in md
    labelled = {s: {"real_test": measured, "synthetic_test": measured} for s in evals}
    md = render_markdown(task, labelled, -10.0, {}, {}, ctx)
    assert "n/a" not in md and "Refined vs synthetic on real test (mean_deg): -10.0%" in md
    from stages.compare import refiner_summary

    curve = [{"step": 0, "eligible": 1.0}, {"step": 50, "eligible": 0.0}]
    stuck = refiner_summary({"selected_step": 0, "last_step": 100, "structure": 1.0,
                             "drift": 0.0, "criterion": "mmd_local_statistics", "curve": curve})
    assert stuck["identity"] and "curve" not in stuck
    md = render_markdown(task, labelled, -10.0, {}, {}, ctx, selection=stuck)
    assert "Selected checkpoint: adversarial step 0 of 100" in md
    assert "**The refiner made no change**: the selected checkpoint is the untrained refiner " \
        "(adversarial step 0); 1 later checkpoint(s) failed the structure/drift guards" in md
    moved = refiner_summary({"selected_step": 50, "last_step": 100, "structure": 0.97,
                             "drift": 3.2, "criterion": "mmd_local_statistics", "curve": curve})
    md = render_markdown(task, labelled, -10.0, {}, {}, ctx, selection=moved)
    assert not moved["identity"] and "made no change" not in md
    assert "mean change 3.20 gray levels" in md


def test_an_unlabelled_synthetic_folder_stops_render_with_a_clear_message(tmp_path):
    from simgan.core.config import read_yaml

    _unlabelled_folder(tmp_path / "eyes", 3)
    params = read_yaml(ROOT / "params.yaml")
    params["gaze"]["render"]["source"] = {
        "kind": "folder", "path": "eyes", "workers": 0, "skip_bad": False, "test_path": None,
        "test_fraction": 0.0, "resize": "stretch", "equalize": False}
    watch(params, {"gaze"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run(
        [sys.executable, "-m", "stages.render", "--task", "gaze"], cwd=tmp_path,
        capture_output=True, text=True, timeout=120,
        env={**_env(tmp_path), "PYTHONPATH": str(ROOT)},  # this checkout's code
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "NoLabelsError: gaze.render.source (folder, " in proc.stderr
    assert "The synthetic domain must be labelled" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "data").exists()
