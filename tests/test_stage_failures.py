"""How a stage ends when it cannot finish: one line for what a user can fix, a summary over
the traceback for a bug (with a FAILED MLflow run), KILLED runs on SIGTERM, and runs left
RUNNING by a SIGKILL closed as KILLED at the next stage start (a live one left alone)."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from simgan.core import run_owner, tracking
from simgan.core.config import ParamsError
from simgan.core.errors import DeviceError
from simgan.core.ingest.common import IngestError
from stages.failures import reported

ROOT = Path(__file__).resolve().parents[1]
PROBE = textwrap.dedent('''
    """A stage that fails, or waits inside its MLflow run, as PROBE_MODE says."""
    import os
    import time
    from pathlib import Path

    from stages.common import main, tracked


    def body(ctx):
        with tracked(ctx, "probe", {"a": 1}):
            if os.environ["PROBE_MODE"] == "boom":
                raise RuntimeError("kaput at step 3")
            Path("started").write_text(str(os.getpid()))
            time.sleep(120)


    main(os.environ.get("PROBE_STAGE", "probe"), body)
''')


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "probe.py").write_text(PROBE)
    return tmp_path


def _start(project: Path, mode: str, pipeline: str, stage: str = "probe"
           ) -> subprocess.Popen[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"], "PROBE_MODE": mode,
           "PROBE_STAGE": stage,
           "SIMGAN_PIPELINE_ID": pipeline, "MLFLOW_DISABLE_TELEMETRY": "true",
           "SIMGAN_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "probe.py", "--task", "gaze"], cwd=project,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_started(project: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 120
    while not (project / "started").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the probe stage never entered its run"
        time.sleep(0.2)
    (project / "started").unlink()


def _runs(project: Path) -> dict[tuple[str, str], object]:
    """(run kind, pipeline id) -> run, for the gaze experiment of the project store."""
    client = tracking.use_store(project)
    exp = client.get_experiment_by_name(tracking.experiment_name("gaze"))
    return {(r.data.tags[tracking.TAG_KIND], r.data.tags[tracking.TAG_PIPELINE]): r
            for r in client.search_runs([exp.experiment_id])}


def _start_stage_in_process(project: Path) -> None:
    """The next start of the same stage (task gaze, stage probe), in this process."""
    prov = tracking.Provenance(store_root=project, pipeline_id="next")
    with tracking.stage_run(prov, "gaze", "probe", {"a": 1}):
        pass


def test_an_unexpected_exception_is_summarised_over_its_traceback_and_fails_the_run(project):
    proc = _start(project, "boom", "p-boom")
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 1
    lines = err.splitlines()
    first = lines.index("stages.probe: unexpected RuntimeError: kaput at step 3 "
                        "(traceback below)")
    assert lines[first + 1] == "Traceback (most recent call last):"
    assert lines[-1] == "RuntimeError: kaput at step 3"
    runs = _runs(project)
    assert runs["stage", "p-boom"].info.status == "FAILED"
    assert runs["pipeline", "p-boom"].info.status == "FAILED"


def test_a_sigkilled_stage_run_is_closed_as_killed_at_the_next_start_a_live_one_is_not(project):
    # another stage name: a stage runs once at a time per project (stages/ownership.py)
    killed = _start(project, "wait", "p-killed", stage="probe_killed")
    _wait_started(project, killed)
    alive = _start(project, "wait", "p-alive")
    try:
        _wait_started(project, alive)
        before = _runs(project)
        tags = before["stage", "p-killed"].data.tags
        assert tags[run_owner.TAG_PID] == str(killed.pid)
        assert tags[run_owner.TAG_STARTED] == str(run_owner.proc_stat(killed.pid)[1])
        killed.kill()  # SIGKILL: no handler runs, the run stays RUNNING
        killed.communicate(timeout=60)
        assert _runs(project)["stage", "p-killed"].info.status == "RUNNING"

        _start_stage_in_process(project)

        after = _runs(project)
        assert after["stage", "p-killed"].info.status == "KILLED"
        assert after["pipeline", "p-killed"].info.status == "KILLED"
        assert f"owner pid {killed.pid}" in after["stage", "p-killed"].data.tags[
            tracking.TAG_CLOSED]
        assert after["stage", "p-alive"].info.status == "RUNNING"
        assert after["pipeline", "p-alive"].info.status == "RUNNING"
        assert after["stage", "next"].info.status == "FINISHED"

        alive.send_signal(signal.SIGTERM)  # what DVC, Prefect and `kill` send
        _, err = alive.communicate(timeout=60)
        assert alive.returncode == 128 + signal.SIGTERM
        assert err.strip().splitlines()[-1] == (
            "stages.probe: stopped by SIGTERM; its MLflow run is marked KILLED")
        assert "Traceback" not in err
        final = _runs(project)
        assert final["stage", "p-alive"].info.status == "KILLED"
        assert final["pipeline", "p-alive"].info.status == "KILLED"
    finally:
        for proc in (killed, alive):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def test_a_run_is_judged_only_by_an_owner_this_process_can_see():
    here = run_owner.owner_tags()
    assert run_owner.liveness(here) == "alive"
    assert run_owner.liveness({**here, run_owner.TAG_STARTED: "1"}) == "gone"  # pid reused
    assert run_owner.liveness({**here, run_owner.TAG_BOOT: "other-boot"}) == "gone"
    assert run_owner.liveness({**here, run_owner.TAG_HOST: "elsewhere"}) == "unknown"
    assert run_owner.liveness({**here, run_owner.TAG_PIDNS: "pid:[1]"}) == "unknown"
    assert run_owner.liveness({}) == "unknown"  # runs made before owners were recorded


def _outcome(exc: BaseException, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as ended, reported("train_refiner"):
        raise exc
    return ended.value.code, capsys.readouterr().err


@pytest.mark.parametrize("exc, status, line", [
    (ParamsError("params.yaml: invalid params: gaze.render.seed: Input should be less than "
                 "or equal to 4294967295 (got -1)"), 2,
     "stages.train_refiner: params.yaml: invalid params: gaze.render.seed: Input should be "
     "less than or equal to 4294967295 (got -1)"),
    (IngestError("data/x/1.png", "image", "not a PNG"), 1,
     "stages.train_refiner: IngestError: "),
    (DeviceError("device 'cuda' is not available here (0 CUDA devices); set the params' "
                 "device to auto or cpu"), 1,
     "stages.train_refiner: DeviceError: device 'cuda' is not available here (0 CUDA "
     "devices); set the params' device to auto or cpu"),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "data/gaze/synthetic"), 1,
     "stages.train_refiner: FileNotFoundError: [Errno 2] No such file or directory: "
     "'data/gaze/synthetic'; run the stages before this one first (dvc repro runs them in "
     "order)"),
    (OSError(errno.ENOSPC, "No space left on device"), 1,
     "stages.train_refiner: OSError: [Errno 28] No space left on device; free disk space "
     "(df -h .) and run the stage again"),
    (MemoryError("Unable to allocate 190. GiB"), 1,
     "stages.train_refiner: MemoryError: Unable to allocate 190. GiB; lower the batch_size / "
     "chunk_size / n_per_set params, or free memory"),
    (KeyboardInterrupt(), 130,
     "stages.train_refiner: stopped by SIGINT; its MLflow run is marked KILLED"),
])
def test_a_failure_a_user_can_fix_is_one_line(exc, status, line, capsys, monkeypatch):
    monkeypatch.delenv("SIMGAN_TRACEBACK", raising=False)
    code, err = _outcome(exc, capsys)
    assert code == status
    assert len(err.splitlines()) == 1 and err.startswith(line), err


def test_a_pick_of_a_missing_device_is_a_device_error():
    import torch

    from simgan.core.images import pick_device

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(DeviceError, match=r"device 'cuda:1' is not available here"):
        pick_device("cuda:1")
    assert pick_device("auto").type == "cpu" and pick_device("cpu").type == "cpu"
