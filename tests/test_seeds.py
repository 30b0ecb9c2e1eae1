"""The refiner-seed aggregation (simgan.core.seeds) on hand-made comparison.json dicts: mean,
sample sd, the worst seed in both directions, unavailable figures, failed seeds; and the
reading of `dvc exp show` entries (stages.seeds) without DVC."""

from __future__ import annotations

import json
import math

import pytest

from simgan.core.seeds import SeedRun, lookup, render_markdown, spread, summarize

GAZE_COLUMNS = (("mean_deg", "mean error (deg)"), ("median_deg", "median (deg)"),
                ("pct_within", "% within 7 deg"))
HAND_COLUMNS = (("pct_joints_within", "% joints within 5 crop px"),
                ("pct_images_within", "% images, worst joint within 5 crop px"),
                ("mean_px", "mean joint error (crop px)"))


def comparison(key: str, synthetic: float, refined: float, real: float | None,
               auc_refined: float, auc_synthetic: float = 0.9) -> dict:
    """A comparison.json with the structure stages/compare.py writes."""
    def evals(v: float | None) -> dict:
        if v is None:
            return {"real_test": {"labels_available": False},
                    "synthetic_test": {key: 1.0, "n": 10}}
        return {"real_test": {key: v, "mean_deg": v, "median_deg": v - 1, "pct_within": 50.0,
                              "pct_images_within": v / 2, "mean_px": 3.0, "n": 64},
                "synthetic_test": {key: v + 1, "n": 64}}
    return {
        "sources": {"synthetic": evals(synthetic), "refined": evals(refined),
                    "real": evals(real)},
        "refined_vs_synthetic_relative_pct": (refined - synthetic) / synthetic * 100.0,
        "label_preservation": {"pupil_drift_mean_px": 0.1 + refined / 100},
        "realism": {"refined_vs_real": {"auc": auc_refined, "accuracy": 0.6},
                    "synthetic_vs_real": {"auc": auc_synthetic, "accuracy": 0.9}},
    }


def gaze_runs() -> list[SeedRun]:
    return [SeedRun(0, comparison("mean_deg", 10.0, 8.0, 5.0, 0.70), "workspace"),
            SeedRun(1, comparison("mean_deg", 10.0, 9.0, 5.0, 0.80), "seeds-gaze-1",
                    stages_run=("train_refiner@gaze", "refine@gaze")),
            SeedRun(2, comparison("mean_deg", 10.0, 7.0, 5.0, 0.60), "seeds-gaze-2",
                    stages_run=("train_refiner@gaze",))]


def test_spread_is_mean_sample_sd_and_worst_in_the_headline_direction():
    values = {0: 8.0, 1: 9.0, 2: 7.0}
    lower = spread(values, higher_is_better=False)
    assert lower["mean"] == pytest.approx(8.0) and lower["sd"] == pytest.approx(1.0)
    assert lower["n"] == 3 and (lower["worst"], lower["worst_seed"]) == (9.0, 1)
    higher = spread(values, higher_is_better=True)
    assert (higher["worst"], higher["worst_seed"]) == (7.0, 2)
    assert "worst" not in spread(values)  # no direction (AUC, drift): no worst


def test_spread_of_one_or_no_value():
    assert spread({3: 2.5}, False) == {"mean": 2.5, "sd": None, "n": 1, "worst": 2.5,
                                       "worst_seed": 3}
    assert spread({0: None}) == {"mean": None, "sd": None, "n": 0}


def test_lookup_skips_what_is_not_a_finite_number():
    tree = {"a": {"b": 1, "flag": True, "nan": math.nan, "s": "x"}}
    assert lookup(tree, "a.b") == 1.0
    assert lookup(tree, "a.flag") is None and lookup(tree, "a.nan") is None
    assert lookup(tree, "a.s") is None and lookup(tree, "a.missing.deeper") is None
    assert lookup(None, "a") is None


def test_gaze_summary_has_the_required_shape_and_figures():
    report = summarize(gaze_runs(), task="gaze", headline="mean_deg", higher_is_better=False,
                       columns=GAZE_COLUMNS)
    json.dumps(report)  # plain JSON
    assert report["metric"] == "real_test.mean_deg" and report["seeds"] == [0, 1, 2]
    assert report["failed"] == []
    s = report["summary"]
    assert s["refined"]["mean"] == pytest.approx(8.0) and s["refined"]["sd"] == pytest.approx(1.0)
    assert (s["refined"]["worst"], s["refined"]["worst_seed"]) == (9.0, 1)  # highest error
    assert s["synthetic"] == {"mean": 10.0, "sd": 0.0, "n": 3, "worst": 10.0, "worst_seed": 0}
    assert s["real"]["mean"] == 5.0
    assert s["realism_auc_refined_vs_real"]["mean"] == pytest.approx(0.7)
    assert s["realism_auc_synthetic_vs_real"]["mean"] == pytest.approx(0.9)
    assert s["refined_vs_synthetic_relative_pct"]["mean"] == pytest.approx(-20.0)
    assert s["label_preservation"]["pupil_drift_mean_px"]["mean"] == pytest.approx(0.18)
    assert set(s["table"]) == {"real_test.mean_deg", "real_test.median_deg",
                               "real_test.pct_within", "synthetic_test.mean_deg"}
    assert s["table"]["real_test.median_deg"]["refined"]["mean"] == pytest.approx(7.0)
    assert report["per_seed"]["1"] == {
        "status": "ok", "experiment": "seeds-gaze-1",
        "stages_run": ["train_refiner@gaze", "refine@gaze"], "synthetic": 10.0,
        "refined": 9.0, "real": 5.0, "refined_vs_synthetic_relative_pct": -10.0,
        "realism_auc_refined_vs_real": 0.8, "realism_auc_synthetic_vs_real": 0.9}


def test_hand_worst_seed_is_the_lowest_percentage():
    runs = [SeedRun(s, comparison("pct_joints_within", 45.0, v, 80.0, 0.8), f"e{s}")
            for s, v in ((0, 51.8), (1, 47.0), (2, 45.8))]
    report = summarize(runs, task="hand", headline="pct_joints_within",
                       higher_is_better=True, columns=HAND_COLUMNS)
    refined = report["summary"]["refined"]
    assert report["metric"] == "real_test.pct_joints_within"
    assert (refined["worst"], refined["worst_seed"]) == (45.8, 2)
    assert refined["mean"] == pytest.approx((51.8 + 47.0 + 45.8) / 3)
    assert refined["sd"] == pytest.approx(3.1749, abs=1e-4)
    assert report["summary"]["refined_vs_synthetic_relative_pct"]["worst_seed"] == 2


def test_a_failed_seed_is_listed_not_averaged():
    runs = gaze_runs()
    runs[1] = SeedRun(1, None, "seeds-gaze-1", error="train_refiner@gaze exited with 1",
                      stages_run=("train_refiner@gaze",))
    report = summarize(runs, task="gaze", headline="mean_deg", higher_is_better=False,
                       columns=GAZE_COLUMNS)
    assert report["failed"] == [1] and report["seeds"] == [0, 1, 2]
    assert report["per_seed"]["1"]["status"] == "failed"
    assert report["per_seed"]["1"]["error"] == "train_refiner@gaze exited with 1"
    refined = report["summary"]["refined"]
    assert refined["n"] == 2 and refined["mean"] == pytest.approx(7.5)
    assert refined["worst_seed"] == 0
    md = render_markdown(report, GAZE_COLUMNS, "gaze.refiner.train.seed")
    assert "**Failed: seed 1**" in md and "train_refiner@gaze exited with 1" in md
    assert "over the 2 seed(s) that finished" in md
    assert "| 1 | seeds-gaze-1 | failed |" in md


def test_all_seeds_failed_gives_no_numbers_but_a_report():
    runs = [SeedRun(s, None, f"seeds-hand-{s}", error="boom") for s in (0, 1)]
    report = summarize(runs, task="hand", headline="pct_joints_within",
                       higher_is_better=True, columns=HAND_COLUMNS)
    assert report["failed"] == [0, 1]
    assert report["summary"]["refined"] == {"mean": None, "sd": None, "n": 0, "worst": None,
                                            "worst_seed": None}
    md = render_markdown(report, HAND_COLUMNS, "hand.refiner.train.seed")
    assert md.count("**Failed: seed") == 2 and "n/a" in md


def test_unlabelled_real_test_is_na_not_zero():
    runs = [SeedRun(s, comparison("mean_deg", 10.0, 8.0 + s, None, 0.7), f"e{s}")
            for s in (0, 1)]
    report = summarize(runs, task="gaze", headline="mean_deg", higher_is_better=False,
                       columns=GAZE_COLUMNS)
    assert report["summary"]["real"]["n"] == 0 and report["summary"]["refined"]["n"] == 2
    assert report["per_seed"]["0"]["real"] is None


def test_markdown_has_mean_pm_sd_for_every_headline_figure():
    report = summarize(gaze_runs(), task="gaze", headline="mean_deg", higher_is_better=False,
                       columns=GAZE_COLUMNS)
    md = render_markdown(report, GAZE_COLUMNS, "gaze.refiner.train.seed")
    assert "| refined | 8.00 ± 1.00 | 7.00 ± 1.00 | 50.00 ± 0.00 | 9.00 ± 1.00 |" in md
    assert "| synthetic | 10.00 ± 0.00 |" in md
    assert "Worst seed (refined, real test mean_deg, lower is better): 9.00 (seed 1)." in md
    assert "Refined vs synthetic on real test (mean_deg): -20.0 ± 10.0 %" in md
    assert "| refined vs real | 0.600 ± 0.000 | 0.700 ± 0.100 |" in md
    assert "- pupil_drift_mean_px: 0.180 ± 0.010" in md
    assert "| 0 | workspace | 10.00 | 8.00 | 5.00 | -20.00 | 0.70 | (workspace) |" in md


# ------------------------------------------------------------------------------ stages.seeds


#: the comparison.json of each experiment commit, as read from DVC's cache (faked)
CACHED = {"rev-with-comparison": {"x": 1}}


def shown_entry(name: str, seed: int, state: str = "success", rev: str = "rev-with-comparison",
                error: dict | None = None) -> dict:
    """One experiment as `dvc exp show --json` lists it under its baseline."""
    data = {"params": {"params.yaml": {"data": {"gaze": {"refiner": {"train": {"seed": seed}}}}}}}
    return {"name": name, "executor": {"state": state},
            "revs": [{"rev": rev, "name": name, "data": data, "error": error}]}


@pytest.fixture
def no_logs(monkeypatch):
    import stages.seeds as seeds

    log = ("Stage 'render@gaze' didn't change, skipping\nRunning stage 'train_refiner@gaze':\n"
           "ERROR: failed to reproduce 'train_refiner@gaze': exited with 2\n")

    def fake_dvc(*args, **kwargs):
        import subprocess
        return subprocess.CompletedProcess(["dvc", *args], 0, stdout=log, stderr="")
    def fake_read(rev: str, task: str) -> dict:
        assert task == "gaze"
        if rev not in CACHED:
            raise FileNotFoundError(f"reports/{task}/comparison.json at {rev}")
        return CACHED[rev]
    monkeypatch.setattr(seeds, "dvc", fake_dvc)
    monkeypatch.setattr(seeds, "read_comparison", fake_read)
    return seeds


def test_read_experiment_success_failure_and_wrong_seed(no_logs):
    seeds = no_logs
    good = seeds.read_experiment(shown_entry("seeds-gaze-1", 1), "gaze", 1)
    assert not good.failed and good.comparison == {"x": 1}
    assert good.stages_run == ("train_refiner@gaze",)
    bad = seeds.read_experiment(shown_entry("seeds-gaze-2", 2, "failed",
                                            error={"msg": "Experiment run failed"}), "gaze", 2)
    assert bad.failed and bad.error.startswith("failed to reproduce 'train_refiner@gaze'")
    wrong = seeds.read_experiment(shown_entry("seeds-gaze-1", 0), "gaze", 1)
    assert wrong.failed and "seed 0" in wrong.error
    missing = seeds.read_experiment(None, "gaze", 3)
    assert missing.failed and missing.experiment == "seeds-gaze-3"
    no_metrics = seeds.read_experiment(shown_entry("seeds-gaze-1", 1, rev="uncached"), "gaze", 1)
    assert no_metrics.failed and "comparison.json unreadable" in no_metrics.error
    assert "uncached" in no_metrics.error


def test_read_comparison_reads_a_commits_cached_output(tmp_path, monkeypatch):
    """The real reader: comparison.json of a commit, from DVC's cache through its lock file,
    while the workspace holds another version."""
    import json
    import os
    import subprocess
    import sys

    import stages.seeds as seeds

    env = {**os.environ, "DVC_NO_ANALYTICS": "1",
           "DVC_SITE_CACHE_DIR": str(tmp_path / ".dvc" / "site-cache"),
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]

    def run(*args: str) -> str:
        return subprocess.run(args, cwd=tmp_path, env=env, check=True, capture_output=True,
                              text=True, timeout=120).stdout

    (tmp_path / "value.json").write_text('{"x": 1}')
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  compare:\n"
        "    cmd: mkdir -p reports/gaze && cp value.json reports/gaze/comparison.json\n"
        "    deps: [value.json]\n    outs: [reports/gaze/comparison.json]\n")
    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "repro", "-q")
    run(*git, "add", "-A")
    run(*git, "commit", "-qm", "one")
    rev = run("git", "rev-parse", "HEAD").strip()
    (tmp_path / "value.json").write_text('{"x": 2}')
    run("dvc", "repro", "-q")
    assert json.loads((tmp_path / "reports/gaze/comparison.json").read_text()) == {"x": 2}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_SITE_CACHE_DIR", env["DVC_SITE_CACHE_DIR"])
    assert seeds.read_comparison(rev, "gaze") == {"x": 1}


def test_experiments_are_read_from_the_commit_they_were_queued_from() -> None:
    """A commit made while the queue runs moves HEAD; the experiments stay under the
    baseline taken before queueing, and only those are read (oldest first)."""
    from stages.seeds import baseline_experiments

    shown = [
        {"rev": "new-head", "experiments": None},
        {"rev": "queued-from", "experiments": [{"name": "seeds-gaze-2"}, {"name": "seeds-gaze-1"}]},
    ]
    assert [e["name"] for e in baseline_experiments(shown, "queued-from")] == [
        "seeds-gaze-1", "seeds-gaze-2"]
    assert baseline_experiments(shown, "new-head") == []


@pytest.mark.parametrize("workers, removed", [("0 active, 0 idle", 2), ("1 active, 0 idle", 0)])
def test_stale_worker_requests_are_cleared_only_when_no_worker_is_alive(
        tmp_path, monkeypatch, workers, removed):
    """A `dvc queue stop` left in DVC's broker would stop the next workers after one
    experiment each; it is deleted only when no worker could still answer it, and the queued
    experiments themselves (task messages) are never touched."""
    import subprocess

    import stages.seeds as seeds

    inbox = tmp_path / seeds.BROKER_INBOX
    inbox.mkdir(parents=True)
    task = inbox / "75276162_ca6a.celery.msg"
    requests = [inbox / f"7654429{i}_f844.dvc-exp-cde9b5-{i}@localhost.celery.pidbox.msg"
                for i in (1, 2)]
    for path in (task, *requests):
        path.write_text("{}")
    status = f"Task  Name  Created  Status\n\nWorker status: {workers}\n"
    monkeypatch.setattr(seeds, "dvc", lambda *a, **k: subprocess.CompletedProcess(
        ["dvc", *a], 0, stdout=status, stderr=""))
    assert len(seeds.clear_stale_requests(tmp_path)) == removed
    assert task.exists()
    assert sum(p.exists() for p in requests) == 2 - removed
