"""The review page (stages.review, stages.review_html) on a tiny fixture project: a gaze run
whose reports are written in compare's format (its own functions where they are cheap, the
result models of the realism and KID code), and a hand task that has not run.

The page is checked as text (tables, "not run", no external resource) and, in headless
Chromium, as a browser sees it: every <img> decodes and every expected table is in the DOM.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simgan.core.dataset import write_dataset
from simgan.core.kid import KidResult
from simgan.core.realism import RealismResult
from simgan.tasks import get_task, load_task_params

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (35, 55)


def _dataset(path: Path, images: np.ndarray, domain: str) -> None:
    labels = pd.DataFrame({"id": np.arange(len(images))})
    write_dataset(path, [(images, labels)], len(images), SHAPE, np.uint8,
                  {"task": "gaze", "domain": domain})


def _realism(auc: float) -> dict:
    return RealismResult(accuracy=0.9, ci95_low=0.85, ci95_high=0.94, n_test=400, auc=auc,
                         auc_ci95_low=auc - 0.02, auc_ci95_high=min(1.0, auc + 0.02),
                         verdict="distinguishable", n_needed=None).model_dump()


def _evaluation(mean_deg: float) -> dict:
    return {"mean_deg": mean_deg, "median_deg": mean_deg - 1, "std_deg": 2.0,
            "pct_within": 100 - 5 * mean_deg, "n": 400.0}


def gaze_comparison() -> dict:
    """A comparison.json as stages.compare writes it (its own helpers build the parts)."""
    from stages.compare import kid_ratio, refiner_summary, table_spec

    task = get_task("gaze")
    kid = {"synthetic_vs_real": KidResult(mean=5e-4, std=1e-5, subset_size=100,
                                          n_subsets=10).model_dump(),
           "refined_vs_real": KidResult(mean=2e-4, std=1e-5, subset_size=100,
                                        n_subsets=10).model_dump()}
    sources = {s: {"real_test": _evaluation(v), "synthetic_test": _evaluation(v - 2)}
               for s, v in (("synthetic", 8.9), ("refined", 6.7), ("real", 3.5))}
    return {
        "sources": sources,
        "refined_vs_synthetic_relative_pct": (6.7 - 8.9) / 8.9 * 100,
        "label_preservation": {"pupil_drift_mean_px": 0.08, "pupil_lost_n": 9.0},
        "realism": {"synthetic_vs_real": _realism(1.0), "refined_vs_real": _realism(0.97)},
        "kid": kid,
        "kid_ratio_refined_over_synthetic": kid_ratio(kid),
        "refiner": refiner_summary({"selected_step": 300, "last_step": 300, "drift": 55.9,
                                    "structure": 0.94, "criterion": "mmd", "curve": []}),
        "table": table_spec(task, load_task_params(ROOT / "params.yaml", "gaze")),
    }


def seeds_report() -> dict:
    from simgan.core.seeds import SeedRun, summarize

    runs = [SeedRun(0, gaze_comparison(), "workspace"),
            SeedRun(1, None, "seeds-gaze-1", error="train_refiner@gaze exited with 1")]
    task = get_task("gaze")
    return summarize(runs, task="gaze", headline=task.headline, higher_is_better=False,
                     columns=task.table_columns(load_task_params(ROOT / "params.yaml", "gaze")))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project root: params.yaml, gaze's reports and datasets; nothing for hand."""
    from simgan.core.plots import curves_png

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    reports = tmp_path / "reports" / "gaze"
    reports.mkdir(parents=True)
    (reports / "comparison.json").write_text(json.dumps(gaze_comparison()))
    (reports / "seeds.json").write_text(json.dumps(seeds_report()))
    curve = pd.DataFrame({"threshold": [0.0, 5.0, 10.0], "pct_within": [0.0, 50.0, 90.0]})
    (reports / "curves.png").write_bytes(
        curves_png({"synthetic": curve, "refined": curve}, xlabel="deg", title="gaze"))
    rng = np.random.default_rng(0)
    synthetic = rng.integers(60, 200, (20, *SHAPE), dtype=np.uint8)
    data = tmp_path / "data" / "gaze"
    _dataset(data / "synthetic" / "train", synthetic, "synthetic")
    _dataset(data / "refined" / "train", (synthetic * 0.8).astype(np.uint8), "refined")
    _dataset(data / "real" / "test", synthetic[::-1].copy(), "real")
    return tmp_path


def build_page(project: Path) -> str:
    from stages.review import build

    return build(project, project / "params.yaml")


def test_page_holds_every_part_of_a_run_and_says_not_run_for_a_missing_task(project):
    html = build_page(project)
    gaze, hand = html.split('<h2 id="gaze">')[1].split('<h2 id="hand">')
    # comparison table with the task's own column titles, and the figures it shows
    assert "real test: % within 7 deg" in gaze and "<td>refined</td><td>6.70</td>" in gaze
    assert "-24.7%" in gaze
    assert gaze.count("<img ") == 2  # curves, synthetic | refined | difference | real
    assert "distinguishable" in gaze and "0.970" in gaze and "0.400" in gaze  # AUC, KID ratio
    assert "pupil_drift_mean_px" in gaze
    assert "failed: train_refiner@gaze exited with 1" in gaze  # per-seed rows
    assert "within_deg: 7.0" in gaze  # params section
    assert 'class="notrun">not run' in hand and "<img" not in hand
    overview = html.split("At a glance")[1].split('<h2 id="gaze">')[0]
    assert "mean_deg" in overview and "not run" in overview
    assert "unknown (not a git checkout)" in html


def test_page_needs_no_network(project):
    html = build_page(project)
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", html), "a non-embedded resource"
    assert "<script" not in html and "http" not in html


def test_page_is_written_atomically_by_the_stage(project, monkeypatch, capsys):
    from stages import review

    monkeypatch.chdir(project)
    monkeypatch.setattr("sys.argv", ["stages.review"])
    review.main()
    page = project / review.PAGE
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert not [p for p in page.parent.iterdir() if p.name != "index.html" and
                p.name not in ("gaze",)], "a temp file was left behind"


def test_the_stage_logs_the_page_to_the_parent_run_of_each_task_shown(project, monkeypatch,
                                                                      tmp_path):
    """Into the parent run the task's stages of the same execution (SIMGAN_PIPELINE_ID) made;
    a task that has not run gets nothing."""
    from simgan.core import tracking
    from stages import review
    from stages.provenance import provenance

    monkeypatch.chdir(project)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv(tracking.PIPELINE_ENV, "make-review-test")
    with tracking.stage_run(provenance(project, {}), "gaze", "compare", {}):
        pass
    monkeypatch.setattr("sys.argv", ["stages.review"])
    review.main()
    client = tracking.use_store(project)
    assert client.get_experiment_by_name("simgan-hand") is None
    exp = client.get_experiment_by_name("simgan-gaze")
    runs = client.search_runs([exp.experiment_id], "tags.run_kind = 'pipeline'")
    assert [r.data.tags[tracking.TAG_PIPELINE] for r in runs] == ["make-review-test"]
    parent = runs[0].info.run_id
    got = client.download_artifacts(parent, f"{review.ARTIFACT_PATH}/index.html", str(tmp_path))
    assert Path(got).read_bytes() == (project / review.PAGE).read_bytes()
    assert client.get_run(parent).info.status == "FINISHED"


def test_an_old_comparison_without_table_spec_still_renders(project):
    path = project / "reports" / "gaze" / "comparison.json"
    old = json.loads(path.read_text())
    del old["table"]
    path.write_text(json.dumps(old))
    html = build_page(project)
    assert "real test: mean_deg" in html and "-24.7%" in html


# ------------------------------------------------------------------------------ Chromium

PROBE = """<script>
window.addEventListener("load", () => {
  const imgs = Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth]);
  const tables = Array.from(document.querySelectorAll("table")).map(t => t.className);
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify({imgs, tables});
  document.body.appendChild(out);
});
</script>"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_page_renders_in_headless_chromium(project, tmp_path):
    binary = chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed on CI (.ci/run installs it)")
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    # the page under test plus a probe that writes what the browser decoded into the DOM
    probed = tmp_path / "probed.html"
    probed.write_text(build_page(project).replace("</body>", PROBE + "</body>"))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [binary, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000",
         "--dump-dom", probed.as_uri()],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', proc.stdout, re.S)
    assert found, f"the probe did not run ({time.perf_counter() - t0:.1f} s):\n" \
                  f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    probe = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(probe["imgs"]) == 2
    for alt, complete, width in probe["imgs"]:
        assert complete and width > 0, f"image not decoded: {alt}"
    assert {"overview", "results", "realism", "preservation", "seeds"} <= set(probe["tables"])
