"""Wall time of each stage's latest MLflow run (what the closing notes quote).

    .venv/bin/python benchmarks/stage_times.py [--task gaze] [--pipeline-id ID]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402

from simgan.core import tracking  # noqa: E402


def stage_times(root: Path, task: str, pipeline_id: str | None = None) -> list[dict]:
    """[{name, seconds, status, pipeline_id}] of the latest stage run of each stage of ``task``
    (of ``pipeline_id`` if given), oldest first; [] when nothing is on record (no tracking
    database is created to find that out)."""
    uri = tracking.tracking_uri(root)
    db = tracking.sqlite_path(uri)
    if db is not None and not db.is_file():
        return []
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(tracking.experiment_name(task)) is None:
        return []
    query = f"tags.{tracking.TAG_KIND} = 'stage'"  # not the parent run of each pipeline
    if pipeline_id:
        query += f" and tags.{tracking.TAG_PIPELINE} = '{pipeline_id}'"
    runs = mlflow.search_runs(
        experiment_names=[tracking.experiment_name(task)], filter_string=query,
        order_by=["start_time DESC"],
    )
    if runs.empty:
        return []
    runs["seconds"] = (runs["end_time"] - runs["start_time"]).dt.total_seconds()
    runs["name"] = runs["tags.mlflow.runName"]
    latest = runs.drop_duplicates("name").sort_values("start_time")
    pid = f"tags.{tracking.TAG_PIPELINE}"
    return [{"name": r["name"], "seconds": float(r["seconds"]), "status": r["status"],
             "pipeline_id": r.get(pid)} for _, r in latest.iterrows()]


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
