"""Shared tracking and shared data on real servers (docs/scale.md): the smoke pipeline of one
task logs to an ``mlflow server`` on PostgreSQL with its artifacts in S3 (moto), its DVC
outputs go to an S3 remote and come back in a fresh clone unchanged. (S3 going away:
tests/test_scale_faults.py.)

The servers (tests/servers.py) run on 127.0.0.1 for this module only. Skipped when the
PostgreSQL binaries are missing (.ci/run installs Debian's ``postgresql``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import servers
from tests.test_pipeline_e2e import STAGE_RUNS, _run, smoke_repo

# the module's servers and pipeline start in the first test's set-up: on a loaded 2-core
# machine that alone took up to ~10 min (unloaded: under 3), so that test gets more than 600 s
pytestmark = [pytest.mark.slow, pytest.mark.scale, pytest.mark.timeout(1200)]

TASK = "gaze"
PIPELINE = "scale-test"


@dataclass
class Deployment:
    repo: Path
    uri: str
    pg: servers.Postgres
    store: servers.S3
    logs: Path
    repro_s: float


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    servers.require_postgres()
    logs = tmp_path_factory.mktemp("servers")
    with servers.postgres() as pg, servers.s3(logs) as store, \
            servers.mlflow_server(logs, pg, store) as uri:
        repo = smoke_repo(tmp_path_factory.mktemp("scale") / "repo")
        t0 = time.monotonic()
        _run(["dvc", "repro", f"compare@{TASK}"], repo, timeout=900,
             env={"MLFLOW_TRACKING_URI": uri, "SIMGAN_PIPELINE_ID": PIPELINE})
        repro_s = time.monotonic() - t0
        print(f"[scale] smoke {TASK} pipeline against the server: {repro_s:.1f} s",
              file=sys.stderr)
        yield Deployment(repo, uri, pg, store, logs, repro_s)


def test_stage_runs_metrics_and_artifacts_are_on_the_server(deployment):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=deployment.uri)
    exp = client.get_experiment_by_name(f"simgan-{TASK}")
    assert exp.artifact_location == f"mlflow-artifacts:/simgan-{TASK}"
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags["run_kind"] == "pipeline"]
    assert [p.data.tags["pipeline_id"] for p in parents] == [PIPELINE]
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    stages = [r for r in runs if r.data.tags["run_kind"] == "stage"]
    assert {r.data.tags["mlflow.parentRunId"] for r in stages} == {parent.info.run_id}
    assert {r.info.status for r in stages} == {"FINISHED"}
    counts: dict[str, int] = {}
    for r in stages:
        counts[r.data.tags["stage"]] = counts.get(r.data.tags["stage"], 0) + 1
    assert counts == STAGE_RUNS
    # the compare run's metric is the one DVC sees in the headline file
    headline = json.loads((deployment.repo / f"reports/{TASK}/headline.json").read_text())
    compare = next(r for r in stages if r.data.tags["stage"] == "compare")
    assert compare.data.metrics["refined.mean_deg"] == pytest.approx(headline["refined"],
                                                                     abs=1e-9)
    # an artifact read back through the server has the local report's bytes, and is in S3
    local = (deployment.repo / f"reports/{TASK}/comparison.md").read_bytes()
    got = Path(client.download_artifacts(compare.info.run_id, "comparison.md",
                                         str(deployment.logs)))
    assert got.read_bytes() == local
    keys = deployment.store.keys("mlartifacts/")
    assert any(k.endswith(f"{compare.info.run_id}/artifacts/comparison.md") for k in keys)
    # the registered refiner's file is in S3 too, and nothing went to a local store
    [version] = client.search_model_versions(f"name = 'simgan-refiner-{TASK}'")
    assert version.tags["file_sha256"]
    assert any(k.endswith("/refiner.pt") for k in keys)
    assert not (deployment.repo / "mlflow.db").exists()
    assert not list((deployment.repo / "mlartifacts").glob("simgan-*"))


def test_the_runs_live_in_postgresql(deployment):
    import psycopg2
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=deployment.uri)
    exp = client.get_experiment_by_name(f"simgan-{TASK}")
    n_runs = len(client.search_runs([exp.experiment_id], max_results=1000))
    conn = psycopg2.connect(host="127.0.0.1", port=deployment.pg.port, user="postgres",
                            dbname="mlflow")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM runs WHERE experiment_id = %s",
                        (int(exp.experiment_id),))
            assert cur.fetchone()[0] == n_runs == sum(STAGE_RUNS.values()) + 1
    finally:
        conn.close()


def _git(repo: Path, *args: str) -> str:
    return _run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], repo)


def test_outputs_pushed_to_s3_come_back_unchanged_in_a_fresh_clone(deployment, tmp_path):
    """A team remote in .dvc/config (committed), pushed through flows.remote (what `make run`
    calls), pulled into a `git clone`: DVC finds nothing to rerun there."""
    repo, store = deployment.repo, deployment.store
    aws = {**servers.AWS_ENV}
    _run(["dvc", "remote", "add", "-d", "storage", f"s3://{store.bucket}/dvc"], repo)
    _run(["dvc", "remote", "modify", "storage", "endpointurl", store.endpoint], repo)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "smoke run and its S3 remote")
    t0 = time.monotonic()
    out = _run([sys.executable, "-m", "flows.remote", "push"], repo, env=aws, timeout=600)
    push_s = time.monotonic() - t0
    assert "Pushed DVC outputs to remote 'storage'" in out
    pushed = store.client().list_objects_v2(Bucket=store.bucket, Prefix="dvc/")
    assert pushed["KeyCount"] > 0
    size = sum(o["Size"] for o in pushed["Contents"])

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, timeout=120)
    t0 = time.monotonic()
    # this task's outputs (a full `make run` would have pushed every task's)
    _run(["dvc", "pull", "--with-deps", f"compare@{TASK}"], clone, env=aws, timeout=600)
    pull_s = time.monotonic() - t0
    print(f"[scale] dvc push {push_s:.1f} s, pull {pull_s:.1f} s, "
          f"{pushed['KeyCount']} objects, {size / 1e6:.1f} MB", file=sys.stderr)
    for rel in (f"reports/{TASK}/headline.json", f"data/{TASK}/refined/train/images.npy",
                f"models/{TASK}/refiner/refiner.pt"):
        assert (clone / rel).read_bytes() == (repo / rel).read_bytes(), rel
    status = json.loads(_run(["dvc", "status", "--json", f"compare@{TASK}"], clone, env=aws))
    assert status == {}
    ran = _run(["dvc", "repro", f"compare@{TASK}"], clone, env=aws)
    assert re.findall(r"Running stage '([^']+)'", ran) == []  # the pulled outputs are current
