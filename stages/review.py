"""review: reports/index.html, one self-contained page to review a run of every task.

    python -m stages.review            # after `make run` (or any subset of tasks)

It reads what compare wrote (comparison.json, curves.png), a few fixed synthetic / refined /
real images to draw what the refiner changed (refined - synthetic), seeds.json when `make
seeds` ran, each task's params section and the git commit; a task without reports is shown
as "not run". Figures are embedded (base64), so the file opens offline and can be mailed.

The page is also logged to MLflow, as ``review/index.html`` of each shown task's parent run
of this pipeline execution (docs/tracking.md), so the run a reviewer opens holds it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from simgan.core.config import read_yaml
from simgan.core.dataset import atomic_write_text
from simgan.core.tracking import StoreError
from simgan.tasks import task_names
from stages.common import stage_parser
from stages.layout import Layout
from stages.provenance import provenance, store_root
from stages.review_html import TaskReport, page

#: where the page goes, relative to the project root (dvc.yaml declares the same path)
PAGE = Path("reports") / "index.html"
#: image pairs drawn per task
ROWS = 6
#: where the page goes among the artifacts of each task's MLflow parent run
ARTIFACT_PATH = "review"


def difference_figure(layout: Layout, rows: int = ROWS) -> bytes:
    """synthetic | refined | difference | real for ``rows`` fixed pairs of the train split."""
    from simgan.core.dataset import open_dataset
    from simgan.core.difference import difference_png, fixed_rows

    synthetic = open_dataset(layout.synthetic("train"))
    refined = open_dataset(layout.refined())
    real = open_dataset(layout.real("test"))
    pairs = fixed_rows(min(len(synthetic), len(refined)), rows)
    return difference_png(synthetic.images[pairs], refined.images[pairs],
                          real.images[fixed_rows(len(real), rows)])


def read_json(path: Path) -> Any | None:
    import json

    return json.loads(path.read_text()) if path.is_file() else None


def task_report(root: Path, task: str, params: dict[str, Any]) -> TaskReport:
    """Everything the page shows of one task; missing pieces become notes, not errors."""
    layout = Layout(root, task)
    comparison = read_json(layout.reports / "comparison.json")
    section = params.get(task)
    if comparison is None:
        return TaskReport(task, None, params=section)
    notes = []
    curves = layout.reports / "curves.png"
    try:
        diff = difference_figure(layout)
    except FileNotFoundError as exc:
        diff, notes = None, [f"no difference map: {exc}"]
    return TaskReport(task, comparison, params=section,
                      curves_png=curves.read_bytes() if curves.is_file() else None,
                      difference_png=diff, seeds=read_json(layout.reports / "seeds.json"),
                      notes=notes)


def git_commit(root: Path) -> str:
    """HEAD's short hash, "+ local changes" when tracked files differ; "unknown" outside git."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)

    head = git("rev-parse", "--short=12", "HEAD")
    if head.returncode != 0:
        return "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return head.stdout.strip() + (" + local changes" if dirty else "")


def build(root: Path, params_file: Path) -> str:
    params = read_yaml(params_file) if params_file.is_file() else {}
    return page([task_report(root, t, params) for t in task_names()], git_commit(root))


def shown_tasks(root: Path) -> list[str]:
    """The tasks the page shows results of (the others are "not run")."""
    return [t for t in task_names() if (Layout(root, t).reports / "comparison.json").is_file()]


def log_page(root: Path, page: Path) -> dict[str, str]:
    """Log ``page`` to the MLflow parent run of this pipeline execution of every shown task
    (created when none of the task's stages ran in it); returns {task: parent run id}.

    A parent created here has no ``params_hash`` tag: that hash is of the task's validated
    params, which only the task's own stages load (this stage imports no task)."""
    from simgan.core import tracking

    prov = replace(provenance(root, {}), params_hash=None)
    return {task: tracking.log_to_pipeline(prov, task, [page], ARTIFACT_PATH)
            for task in shown_tasks(root)}


def main() -> None:
    from simgan.core import tracking

    ap = stage_parser("review", __doc__)
    ap.add_argument("--params", default="params.yaml", help="params file (default params.yaml)")
    args = ap.parse_args()
    root = Path.cwd()
    try:
        if shown_tasks(root):  # check the store before any work, as the stages do
            tracking.check_writable(store_root(root, os.environ))
        atomic_write_text(root / PAGE, build(root, root / args.params))
        parents = log_page(root, root / PAGE)
    except StoreError as exc:
        print(f"stages.review: StoreError: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    logged = f" (MLflow: parent run of {', '.join(parents)})" if parents else ""
    print(f"[simgan] review: {PAGE}{logged}")


if __name__ == "__main__":
    main()
