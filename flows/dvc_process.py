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
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flows.dvc_wait import FIRST_DELAY_SECONDS, run_waiting, workspace_busy
from flows.environment import project_environment

__all__ = [
    "RUNNING_STAGE",
    "dvc_waiting_for_lock",
    "own_dvc_pids",
    "stage_environment",
    "stream_dvc",
]

STDERR_TAIL_LINES = 25
#: how ``dvc repro`` / ``dvc exp run`` announce a stage they execute (not skip)
RUNNING_STAGE = re.compile(r"^Running stage '([^']+)'")

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
