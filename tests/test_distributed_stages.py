"""The training stages under torchrun (2 gloo ranks, smoke profile): the run succeeds, rank 0
alone writes the outputs and records ONE MLflow stage run; a stage that is not data-parallel
refuses torchrun with a clear message."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from simgan.core import tracking
from stages.layout import Layout
from tests.test_pipeline_e2e import _env
from tests.test_refiner_sigkill import _finish, _project

ROOT = Path(__file__).resolve().parents[1]


def _torchrun(root: Path, pipeline: str, stage: str, *args: str) -> str:
    """Run ``stage`` as 2 ranks to its end (bounded); returns the launcher's output."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**_env(root), "PYTHONPATH": str(ROOT), "SIMGAN_PIPELINE_ID": pipeline,
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
           "--master-addr", "127.0.0.1", "--master-port", str(port),
           "-m", f"stages.{stage}", "--task", "gaze", *args]
    proc = subprocess.Popen(cmd, cwd=root, env=env, text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    assert proc.returncode == 0, out[-4000:]
    return out


@pytest.mark.slow
@pytest.mark.scale
def test_training_stages_under_torchrun_write_once(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = _project(tmp_path / "project")
    layout = Layout(root, "gaze")
    _finish(root, "upstream", "render")
    _finish(root, "upstream", "real")
    out = _torchrun(root, "ddp", "train_estimator", "--source", "synthetic")
    assert out.count("train_estimator@gaze-synthetic finished") == 1, out[-3000:]
    saved = torch.load(layout.estimator_model("synthetic"), weights_only=True)
    assert saved["state_dict"] is not None
    out = _torchrun(root, "ddp", "train_refiner")
    assert out.count("train_refiner@gaze finished") == 1, out[-3000:]
    assert layout.refiner_model.is_file() and (layout.refiner_checkpoints / "last.pt").is_file()
    runs = [r for r in _runs_all(root) if r.data.tags[tracking.TAG_KIND] == "stage"
            and r.data.tags[tracking.TAG_STAGE] in ("train_refiner", "train_estimator")]
    stages = sorted(r.data.tags[tracking.TAG_STAGE] for r in runs)
    assert stages == ["train_estimator", "train_refiner"], stages
    assert all(r.info.status == "FINISHED" for r in runs)


def _runs_all(root: Path) -> list:
    client = tracking.use_store(root)
    exp = client.get_experiment_by_name(tracking.experiment_name("gaze"))
    return client.search_runs([exp.experiment_id])


def test_a_single_process_stage_refuses_torchrun(monkeypatch: pytest.MonkeyPatch) -> None:
    from simgan.core.launch import DistributedError
    from stages import common

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(DistributedError, match="refine runs in one process"):
        common._run("refine", lambda ctx: None, argparse.Namespace(task="gaze"))
