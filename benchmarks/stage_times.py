"""Wall time of each stage's latest MLflow run (what the closing notes quote).

    .venv/bin/python benchmarks/stage_times.py [--task gaze] [--pipeline-id ID]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Run  # noqa: E402

from simgan.core import tracking  # noqa: E402


def stage_times(root: Path, task: str, pipeline_id: str | None = None) -> list[dict]:
    """[{name, seconds, status, pipeline_id}] of the latest stage run of each stage of ``task``
    (of ``pipeline_id`` if given), oldest first; [] when nothing is on record (no tracking
    database is created to find that out, and no global MLflow setting is changed)."""
    uri = tracking.tracking_uri(root)
    db = tracking.sqlite_path(uri)
    if db is not None and not db.is_file():
        return []
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(tracking.experiment_name(task))
    if exp is None:
        return []
    query = f"tags.{tracking.TAG_KIND} = 'stage'"  # not the parent run of each pipeline
    if pipeline_id:
        query += f" and tags.{tracking.TAG_PIPELINE} = '{pipeline_id}'"
    latest: dict[str, Run] = {}
    for run in client.search_runs([exp.experiment_id], query,
                                  order_by=["attributes.start_time DESC"], max_results=5000):
        latest.setdefault(run.info.run_name, run)
    done = [r for r in latest.values() if r.info.end_time]
    return [{"name": r.info.run_name, "seconds": (r.info.end_time - r.info.start_time) / 1e3,
             "status": r.info.status, "pipeline_id": r.data.tags.get(tracking.TAG_PIPELINE)}
            for r in sorted(done, key=lambda r: r.info.start_time)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="gaze")
    ap.add_argument("--pipeline-id", default=None, help="default: the latest run of each stage")
    args = ap.parse_args()
    rows = stage_times(Path.cwd(), args.task, args.pipeline_id)
    if not rows:
        raise SystemExit("no runs found")
    for r in rows:
        print(f"{r['name']:<28} {r['seconds']:8.1f} s  {r['status']}")
    print(f"{'total':<28} {sum(r['seconds'] for r in rows):8.1f} s")


if __name__ == "__main__":
    main()
