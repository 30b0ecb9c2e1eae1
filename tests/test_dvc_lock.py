"""Two `dvc repro` at once on the smoke profile, in a temporary copy: while the first runs, a
plain second one fails with DVC's lock message, one through flows.dvc_wait (what `make run` and
every scheduled stage use) waits and then finds everything done, and dvc.lock stays intact."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from flows.dvc_wait import is_lock_error
from tests.test_pipeline_e2e import ROOT, _env, _run, _source_files

pytestmark = pytest.mark.slow

TARGET = "train_estimator@gaze-synthetic"  # render@gaze, then the estimator
CHAIN = ("render@gaze", TARGET)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for rel in _source_files():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, repo / rel)
    _run(["git", "init", "-q"], repo)
    _run([sys.executable, "-m", "stages.profile", "configs/smoke.yaml"], repo)
    return repo


def test_a_second_repro_waits_for_the_first_and_dvc_lock_stays_intact(repo: Path):
    """A user's plain `dvc repro`, then (while it runs) the wrapped one `make run` and every
    scheduled stage use: the wrapper waits, the first is not disturbed, nothing runs twice.
    (Two *plain* ones interleave: DVC releases its repository lock while a stage command runs,
    the second takes a stage the first has not reached, and one of them fails with
    "'<path>' is busy, it is being blocked by: (PID ...)"; dvc.lock stays intact.)"""
    env = _env(repo)
    dvc = [sys.executable, "-m", "dvc"]
    first = subprocess.Popen([*dvc, "repro", TARGET], cwd=repo, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert first.stdout is not None
    for line in first.stdout:  # DVC holds the workspace from here on
        if line.startswith("Running stage"):
            break
    started = time.monotonic()
    waiting = subprocess.Popen(
        [sys.executable, "-m", "flows.dvc_wait", "--max-wait", "240", "repro", TARGET],
        cwd=repo, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    first_out = first.stdout.read()
    assert first.wait(timeout=300) == 0, first_out[-3000:]
    wait_out, wait_err = waiting.communicate(timeout=300)
    print(f"first repro done after {time.monotonic() - started:.1f} s more; the waiting one "
          f"exited {waiting.returncode}; its waits: "
          f"{[x for x in wait_err.splitlines() if x.startswith('[dvc_wait]')]}")

    assert waiting.returncode == 0, wait_err[-3000:]
    assert "[dvc_wait] DVC is locked by another process (PID" in wait_err, wait_err[-2000:]
    # the first one did the work; nothing ran twice (the default draws its domains, so no
    # manifest stage runs every time)
    assert re.findall(r"Running stage '([^']+)'", wait_out) == [], wait_out
    assert not is_lock_error(first_out)

    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for stage in CHAIN:
        name, _, key = stage.partition("@")
        entry = lock["stages"][name][key] if name in lock["stages"] and key in lock[
            "stages"][name] else lock["stages"].get(stage)
        assert entry and all("md5" in out for out in entry["outs"]), stage
    status = subprocess.run([*dvc, "status", TARGET], cwd=repo, env=env, text=True,
                            capture_output=True, timeout=120)
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout
