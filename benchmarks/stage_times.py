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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="gaze")
    ap.add_argument("--pipeline-id", default=None, help="default: the latest run of each stage")
    args = ap.parse_args()
    mlflow.set_tracking_uri(tracking.tracking_uri(Path.cwd()))
    query = f"tags.{tracking.TAG_PIPELINE} = '{args.pipeline_id}'" if args.pipeline_id else ""
    runs = mlflow.search_runs(
        experiment_names=[tracking.experiment_name(args.task)], filter_string=query,
        order_by=["start_time DESC"],
    )
    if runs.empty:
        raise SystemExit("no runs found")
    runs["seconds"] = (runs["end_time"] - runs["start_time"]).dt.total_seconds()
    runs["name"] = runs["tags.mlflow.runName"]
    latest = runs.drop_duplicates("name").sort_values("start_time")
    total = 0.0
    for _, r in latest.iterrows():
        print(f"{r['name']:<28} {r['seconds']:8.1f} s  {r['status']}")
        total += r["seconds"]
    print(f"{'total':<28} {total:8.1f} s")


if __name__ == "__main__":
    main()
