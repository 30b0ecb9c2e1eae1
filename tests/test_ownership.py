"""A running stage owns its outputs: a second process of the same stage is refused while the
first lives, and the temps of a killed one are removed at the next start (real processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from simgan.core.config import read_yaml
from stages.layout import DVC_STAGES, LOCKS, Layout
from stages.ownership import StageBusyError, acquire
from tests.test_pipeline_e2e import _env

ROOT = Path(__file__).resolve().parents[1]
HOLD = ("import sys, time; from pathlib import Path; from stages.ownership import acquire; "
        "acquire(Path(sys.argv[1]), 'x'); print('held', flush=True); time.sleep(60)")


def test_layout_knows_each_stages_outputs_as_dvc_yaml_declares_them():
    from tests.test_dvc_graph import parse_cmd, stages

    seen = set()
    for name, stage in stages().items():
        module, task, source = parse_cmd(stage["cmd"])
        if task is None:
            continue  # review: one page over every task, written by its own main
        seen.add(module.removeprefix("stages."))
        outs = Layout(ROOT, task).outputs(module.removeprefix("stages."), source)
        assert [str(p.relative_to(ROOT)) for p in outs] == stage["outs"], name
    assert seen == set(DVC_STAGES)
    assert Layout(ROOT, "gaze").outputs("probe") == ()  # a test's stage: locked, no outputs


def test_the_lock_directory_is_ignored_by_git_and_dvc():
    from dvc.repo import Repo

    lock = Layout(ROOT, "gaze").lock("train_estimator", "refined")
    assert lock.relative_to(ROOT).as_posix() == f"{LOCKS}/train_estimator@gaze-refined.lock"
    assert subprocess.run(["git", "check-ignore", "-q", str(lock)], cwd=ROOT).returncode == 0
    with Repo(str(ROOT)) as repo:
        assert repo.dvcignore.is_ignored_dir(str(lock.parent))


def test_a_held_lock_names_its_pid_and_is_free_once_the_holder_dies(tmp_path):
    lock = tmp_path / ".locks" / "render@gaze.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StageBusyError, match=f"render@gaze is already running as pid "
                                                 f"{holder.pid} on the same outputs"):
            acquire(lock, "render@gaze")
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up runs: the kernel drops the lock
        holder.wait()
    os.close(acquire(lock, "render@gaze"))
    assert lock.read_text() == f"{os.getpid()}\n"


# ------------------------------------------------------------------ the render stage, killed


def _project(root: Path) -> Path:
    """A project of just a params file: the default with a 6000-image gaze render (~2 s of
    writing, so the test can catch it mid-write)."""
    params = read_yaml(ROOT / "params.yaml")
    params["gaze"]["render"].update(n_train=6000, n_test=64, chunk_size=100)
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def _render(root: Path, **kwargs):
    args = [sys.executable, "-m", "stages.render", "--task", "gaze"]
    env = {**_env(root), "PYTHONPATH": str(ROOT), "SIMGAN_THREADS": "1"}
    return subprocess.Popen(args, cwd=root, env=env, text=True, **kwargs)


def _finish(root: Path) -> subprocess.CompletedProcess:
    """Run the render stage in ``root`` to its end."""
    proc = _render(root, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=300)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _temps(root: Path) -> list[Path]:
    parent = root / "data" / "gaze" / "synthetic"
    return sorted(parent.glob(".*.tmp-*")) if parent.is_dir() else []


def _files(root: Path) -> dict[str, bytes]:
    data = root / "data" / "gaze" / "synthetic"
    return {str(p.relative_to(data)): p.read_bytes() for p in sorted(data.rglob("*"))
            if p.is_file()}


@pytest.mark.slow
def test_a_second_render_is_refused_while_the_first_lives_and_its_temps_go_after_a_kill(
        tmp_path):
    a, ref = _project(tmp_path / "a"), _project(tmp_path / "ref")
    with open(tmp_path / "first.err", "w") as log:
        first = _render(a, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 180
        while not _temps(a) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert _temps(a), (tmp_path / "first.err").read_text()[-3000:]
        first.send_signal(signal.SIGSTOP)  # frozen mid-write: alive, holding its lock

        second = _finish(a)
        assert second.returncode == 1 and "Traceback" not in second.stderr
        assert second.stderr.strip().splitlines()[-1] == (
            f"stages.render: StageBusyError: render@gaze is already running as pid "
            f"{first.pid} on the same outputs (lock .locks/render@gaze.lock); wait for it to "
            f"finish or stop it (kill {first.pid}), then rerun")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    (orphan,) = _temps(a)
    assert orphan.is_dir() and not (a / "data" / "gaze" / "synthetic" / "train").exists()

    rerun = _finish(a)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    removed = f"data/gaze/synthetic/{orphan.name}"
    assert f"[simgan] render@gaze: removed {removed}, left by a run that was killed" in (
        rerun.stderr)
    assert _temps(a) == []
    reference = _finish(ref)  # uninterrupted
    assert reference.returncode == 0, reference.stderr[-3000:]
    assert _files(a) == _files(ref) and len(_files(a)) == 6  # two splits, three files each
