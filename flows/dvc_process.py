"""DVC as a subprocess: its environment, its output streamed line by line, its lock waited out.

Shared by the Prefect flow (``flows.pipeline``) and the side-by-side runner
(``flows.side_by_side``); it imports neither Prefect nor DVC, so ``make run`` starts fast.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flows.dvc_wait import (
    FIRST_DELAY_SECONDS,
    DvcLockTimeoutError,
    run_waiting,
    workspace_busy,
)
from flows.environment import project_environment

__all__ = [
    "RUNNING_STAGE",
    "StageFailedError",
    "dvc_waiting_for_lock",
    "own_dvc_pids",
    "repro_single",
    "run_dvc",
    "stage_environment",
    "stream_dvc",
]

STDERR_TAIL_LINES = 25
#: how ``dvc repro`` / ``dvc exp run`` announce a stage they execute (not skip)
RUNNING_STAGE = re.compile(r"^Running stage '([^']+)'")

class StageFailedError(RuntimeError):
    """A DVC stage exited non-zero; the message names the stage and ends with its stderr."""


_OWN_LOCK = threading.Lock()
_OWN_DVC_PIDS: set[int] = set()


def own_dvc_pids() -> frozenset[int]:
    """The DVC processes this process is running now (one per stage running side by side)."""
    with _OWN_LOCK:
        return frozenset(_OWN_DVC_PIDS)


def stage_environment(
    root: Path, pipeline_id: str | None, threads: int | None = None
) -> dict[str, str]:
    """Environment for ``dvc repro``: project defaults, unbuffered output, this venv first.

    Stage commands call ``python``: putting this interpreter's directory first on PATH makes
    that the project's venv even when it was not activated.
    """
    env = dict(os.environ)
    env.update(project_environment(root, env))
    env["PYTHONUNBUFFERED"] = "1"  # stream stage output line by line instead of at exit
    bindir = str(Path(sys.executable).parent)
    path_entries = env.get("PATH", "").split(os.pathsep)
    if path_entries[:1] != [bindir]:
        env["PATH"] = os.pathsep.join([bindir, *[p for p in path_entries if p]])
    if pipeline_id:
        env["SIMGAN_PIPELINE_ID"] = pipeline_id
    if threads:  # stages side by side share the cores (stages/common.py reads it)
        env["SIMGAN_THREADS"] = str(threads)
    return env


def _pump(stream: Any, name: str, lines: queue.Queue[tuple[str, str | None]]) -> None:
    """Read one pipe line by line into the queue (threads: a blocked pipe must not stall)."""
    try:
        for line in stream:
            lines.put((name, line.rstrip("\r\n")))
    finally:
        lines.put((name, None))


def _terminate(process: subprocess.Popen[str]) -> None:
    """Stop DVC and the stage command it started (own process group), politely first."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def stream_dvc(
    command: Sequence[str], cwd: Path, env: Mapping[str, str], logger: Any
) -> tuple[int, str, set[str]]:
    """One DVC subprocess, its output streamed to ``logger``.

    Returns (exit code, stderr tail, names of the stages DVC said it was running).
    """
    ran: set[str] = set()
    stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    process = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
        start_new_session=True,  # a process group, so cancelling also stops the stage command
    )
    with _OWN_LOCK:
        _OWN_DVC_PIDS.add(process.pid)
    readers = [
        threading.Thread(target=_pump, args=(process.stdout, "stdout", lines), daemon=True),
        threading.Thread(target=_pump, args=(process.stderr, "stderr", lines), daemon=True),
    ]
    try:
        for reader in readers:
            reader.start()
        open_streams = len(readers)
        while open_streams:
            stream, line = lines.get()
            if line is None:
                open_streams -= 1
                continue
            if stream == "stderr":
                stderr_tail.append(line)
            elif match := RUNNING_STAGE.match(line):
                ran.add(match.group(1))
            logger.info("%s", line)
        returncode = process.wait()
    finally:
        _terminate(process)
        with _OWN_LOCK:
            _OWN_DVC_PIDS.discard(process.pid)
        for reader in readers:
            reader.join(timeout=5)
    return returncode, "\n".join(stderr_tail), ran


def dvc_waiting_for_lock(
    command: Sequence[str], cwd: Path, env: Mapping[str, str], logger: Any,
    lock_wait_seconds: float | None, first_delay: float = FIRST_DELAY_SECONDS,
) -> tuple[int, str, set[str]]:
    """:func:`stream_dvc`, tried again while another DVC process holds the workspace.

    DVC processes this process started itself (stages side by side, each on its own stage)
    do not count as "another": the runner started them on disjoint, ready stages. A lock error
    between them (both writing dvc.lock at the same moment) is still waited out, from
    ``first_delay`` seconds on.
    """
    ran: set[str] = set()
    tail = ""

    def attempt() -> tuple[int, str]:
        nonlocal tail
        code, tail, names = stream_dvc(command, cwd, env, logger)
        ran.update(names)
        return code, tail

    returncode = run_waiting(
        attempt, busy=lambda: workspace_busy(cwd, ignore_pids=own_dvc_pids()),
        max_wait=lock_wait_seconds, log=logger.warning, first_delay=first_delay,
    )
    return returncode, tail, ran


def run_dvc(
    command: list[str], root: Path, pipeline_id: str | None, logger: Any,
    lock_wait_seconds: float | None, what: str, threads: int | None = None,
) -> tuple[set[str], float]:
    """Run a dvc command (waiting while DVC is busy): the stages it ran and its wall seconds;
    a failure raises :class:`StageFailedError` naming ``what`` with the tail of stderr.
    ``threads`` (stages side by side) also shortens the first wait: a sibling's lock is brief.
    """
    started = time.monotonic()
    try:
        returncode, tail, ran = dvc_waiting_for_lock(
            command, root, stage_environment(root, pipeline_id, threads), logger,
            lock_wait_seconds, first_delay=1.0 if threads else FIRST_DELAY_SECONDS,
        )
    except DvcLockTimeoutError as exc:
        raise StageFailedError(f"{what} did not start: {exc}") from None
    seconds = round(time.monotonic() - started, 3)
    if returncode != 0:
        raise StageFailedError(
            f"{what} failed with exit code {returncode} after {seconds:.1f} s; "
            f"stderr tail:\n{tail or '(no stderr)'}"
        )
    return set(ran), seconds


def repro_single(
    root: Path, stage: str, logger: Any, *, force: bool = False, pipeline_id: str | None = None,
    lock_wait_seconds: float | None = None, threads: int | None = None,
) -> tuple[str, float]:
    """``dvc repro --single-item <stage>`` in ``root``: ``ran`` when DVC executed the command,
    ``skipped`` when it found the stage up to date (or restored it from its run cache), and
    the wall seconds; a failure raises :class:`StageFailedError`."""
    command = [sys.executable, "-m", "dvc", "repro", "--single-item",
               *(["--force"] if force else []), stage]
    logger.info("$ %s  (cwd=%s)", " ".join(command[2:]), root)
    ran, seconds = run_dvc(command, root, pipeline_id, logger, lock_wait_seconds,
                           f"DVC stage {stage!r}", threads)
    return ("ran" if stage in ran else "skipped"), seconds
