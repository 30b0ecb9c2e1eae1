"""train_refiner killed by a real SIGKILL (issue 11): its MLflow run is left RUNNING, the
rerun resumes from the checkpoint, closes that run as KILLED, leaves no temps, and writes the
bytes of a run that was never killed (tests/test_train_refiner.py covers the library with a
simulated kill; this is the stage process, on the smoke profile)."""

from __future__ import annotations

import hashlib
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from simgan.core import tracking
from stages.layout import CHECKPOINTS, Layout
from stages.profile import apply_profile
from tests.test_pipeline_e2e import _env
from tests.test_stage_failures import _runs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TRAIN = {"steps": 24, "checkpoint_every": 10}
"""Over the smoke profile: 30 steps, the first checkpoint at step 10 (after a selection), so
the kill lands well before the end."""
RESUMED = re.compile(r"resuming refiner training at step (\d+)/(\d+)")
TEMP = re.compile(r"\.(tmp|old)-")


def _project(root: Path) -> Path:
    """A project of just a params file (the code is the repo's): the smoke profile, with the
    refiner's checkpoints early and its training long enough to be killed."""
    root.mkdir()
    params = apply_profile(ROOT / "params.yaml", ROOT / "configs/smoke.yaml", root / "params.yaml")
    params["gaze"]["refiner"]["train"].update(TRAIN)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def _start(root: Path, pipeline: str, stage: str, *args: str, **kwargs) -> subprocess.Popen:
    env = {**_env(root), "PYTHONPATH": str(ROOT), "SIMGAN_THREADS": "1",
           "SIMGAN_PIPELINE_ID": pipeline}
    return subprocess.Popen([sys.executable, "-m", f"stages.{stage}", "--task", "gaze", *args],
                            cwd=root, env=env, text=True, **kwargs)


def _finish(root: Path, pipeline: str, stage: str, *args: str) -> str:
    """Run the stage to its end; returns its stderr."""
    proc = _start(root, pipeline, stage, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"{stage} failed:\n{out[-2000:]}\n{err[-4000:]}"
    return err


def _sha256(layout: Layout) -> dict[str, str]:
    outs = (layout.refiner_model, layout.refiner_report / "selection.json")
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in outs}


def test_a_sigkilled_refiner_resumes_to_the_bytes_of_an_uninterrupted_run(tmp_path, monkeypatch):
    # an earlier test in this worker may have left MLflow's URI exported: read this project's
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = _project(tmp_path / "project")
    layout = Layout(root, "gaze")
    _finish(root, "upstream", "render")
    _finish(root, "upstream", "real")
    _finish(root, "upstream", "train_estimator", "--source", "synthetic")  # the label model

    with open(tmp_path / "killed.err", "w") as log:
        killed = _start(root, "killed", "train_refiner", stdout=subprocess.DEVNULL, stderr=log)
    ckpt = layout.refiner_checkpoints / "last.pt"
    try:
        deadline = time.monotonic() + 240
        while not ckpt.exists() and killed.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        # frozen at once, so a loaded machine cannot let it finish while the store is read
        killed.send_signal(signal.SIGSTOP)
        assert killed.poll() is None and ckpt.exists(), (tmp_path / "killed.err").read_text()
        runs = _runs(root)
        assert ("stage", "killed") in runs, (sorted(runs), (tmp_path / "killed.err").read_text())
        assert runs["stage", "killed"].info.status == "RUNNING"
    finally:
        killed.send_signal(signal.SIGKILL)  # no handler, no finally: the run stays RUNNING
        killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert _runs(root)["stage", "killed"].info.status == "RUNNING"

    err = _finish(root, "resumed", "train_refiner")
    resumed_at = RESUMED.findall(err)  # from the checkpoint, not from scratch
    assert len(resumed_at) == 1, err[-3000:]
    step, total = map(int, resumed_at[0])
    assert 10 <= step < total == 30, err[-3000:]
    temps = [p for d in ("data", "models", "reports", CHECKPOINTS) for p in (root / d).rglob("*")
             if TEMP.search(p.name)]
    assert temps == []
    runs = _runs(root)
    assert runs["stage", "killed"].info.status == "KILLED"
    assert runs["stage", "resumed"].info.status == "FINISHED"
    assert runs["stage", "killed"].data.tags[tracking.TAG_STAGE] == "train_refiner"

    resumed = _sha256(layout)
    shutil.rmtree(layout.refiner_checkpoints)
    shutil.rmtree(layout.refiner_model.parent)
    (layout.refiner_report / "selection.json").unlink()
    assert not RESUMED.search(_finish(root, "uninterrupted", "train_refiner"))
    assert _sha256(layout) == resumed
