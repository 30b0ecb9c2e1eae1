"""Run DVC and, when another DVC process holds the workspace, wait and try again (bounded).

A manual ``dvc repro`` locks the workspace: DVC's repository lock (``.dvc/tmp/lock``, "Unable to
acquire lock") while it reads and writes dvc.lock, and read/write locks on each running stage's
deps and outs (``.dvc/tmp/rwlock``, "'<path>' is busy, it is being blocked by"). A scheduled run
that meets either used to fail after one retry; here it waits with exponential backoff (5 s,
10 s, ... at most 5 min apart), logging each wait, for up to ``SIMGAN_DVC_LOCK_WAIT_SECONDS``
(default 30 min) in total. A lock error means DVC started nothing, so trying again is safe; any
other failure is returned at once.

Before each attempt it also checks that no other DVC process holds the workspace (a live PID in
``.dvc/tmp/rwlock`` or a held ``.dvc/tmp/lock``): starting next to a running ``dvc repro`` can
make *that* one fail, since DVC releases its repository lock while a stage command runs and
the newcomer may take a stage the first one has not reached yet.

Command line (what ``make run`` uses)::

    python -m flows.dvc_wait [--max-wait SECONDS] repro [dvc args ...]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Sequence
from pathlib import Path

__all__ = [
    "DEFAULT_MAX_WAIT_SECONDS",
    "ENV_MAX_WAIT",
    "FIRST_DELAY_SECONDS",
    "DvcLockTimeoutError",
    "backoff_delays",
    "is_lock_error",
    "max_wait_seconds",
    "run_waiting",
    "workspace_busy",
]

ENV_MAX_WAIT = "SIMGAN_DVC_LOCK_WAIT_SECONDS"
DEFAULT_MAX_WAIT_SECONDS = 1800.0
FIRST_DELAY_SECONDS = 5.0
MAX_DELAY_SECONDS = 300.0
#: DVC's two messages for "another DVC process has the workspace" (dvc/lock.py, dvc/rwlock.py)
LOCK_MESSAGES = ("Unable to acquire lock", "is busy, it is being blocked by")


class DvcLockTimeoutError(RuntimeError):
    """DVC stayed locked by another process for longer than the allowed wait."""


def is_lock_error(stderr: str) -> bool:
    """True when DVC's output says another DVC process holds the workspace."""
    return any(message in stderr for message in LOCK_MESSAGES)


def max_wait_seconds(value: float | None = None) -> float:
    """The wait bound: ``value`` if given, else ``$SIMGAN_DVC_LOCK_WAIT_SECONDS``, else 30 min."""
    if value is not None:
        return max(0.0, float(value))
    raw = os.environ.get(ENV_MAX_WAIT, "").strip()
    if not raw:
        return DEFAULT_MAX_WAIT_SECONDS
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ValueError(f"{ENV_MAX_WAIT}={raw!r} is not a number of seconds") from None


def backoff_delays(
    max_wait: float, first: float = FIRST_DELAY_SECONDS, cap: float = MAX_DELAY_SECONDS
) -> Iterator[float]:
    """Delays first, 2*first, 4*first, ... (each at most ``cap``) summing to ``max_wait``."""
    waited, delay = 0.0, first
    while waited < max_wait:
        step = min(delay, cap, max_wait - waited)
        yield step
        waited += step
        delay *= 2


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def workspace_busy(
    root: str | os.PathLike[str], ignore_pids: Collection[int] = ()
) -> str | None:
    """Who else holds the DVC workspace at ``root`` ("PID 12: dvc repro ..."), or None.

    ``ignore_pids``: DVC processes of our own (stages run side by side on disjoint stages)."""
    tmp = Path(root) / ".dvc" / "tmp"
    with contextlib.suppress(OSError, ValueError):
        table = json.loads((tmp / "rwlock").read_text() or "{}")
        holders = [*table.get("write", {}).values()]
        for readers in table.get("read", {}).values():
            holders.extend(readers)
        for info in holders:
            pid = int(info.get("pid", 0))
            if pid != os.getpid() and pid not in ignore_pids and _alive(pid):
                return f"PID {info['pid']}: {info.get('cmd', '?')[-120:]}"
    lock = tmp / "lock"
    if lock.exists():
        with contextlib.suppress(OSError), open(lock, "a") as handle:
            try:  # DVC's repository lock (zc.lockfile: flock); released at once if we get it
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return f"the repository lock {lock}"
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    return None


def run_waiting(
    attempt: Callable[[], tuple[int, str]],
    *,
    busy: Callable[[], str | None] = lambda: None,
    max_wait: float | None = None,
    log: Callable[[str], None] = print,
    sleep: Callable[[float], None] = time.sleep,
    first_delay: float = FIRST_DELAY_SECONDS,
) -> int:
    """Call ``attempt`` (-> exit code, stderr) until it succeeds or fails for another reason.

    ``busy`` (e.g. :func:`workspace_busy`) is asked before each attempt: while it names a
    holder, wait as for a lock error. Returns the last exit code. Raises DvcLockTimeoutError
    when DVC is still locked after ``max_wait`` seconds of waiting (:func:`max_wait_seconds`).
    """
    bound = max_wait_seconds(max_wait)
    delays = backoff_delays(bound, first=first_delay)
    waited = 0.0
    while True:
        holder = busy()
        if holder is None:
            code, stderr = attempt()
            if code == 0 or not is_lock_error(stderr):
                return code
            holder = "another DVC process"
        delay = next(delays, None)
        if delay is None:
            raise DvcLockTimeoutError(
                f"DVC is still locked by another process after waiting {waited:.0f} s "
                f"(a manual `dvc repro`?); let it finish, or raise {ENV_MAX_WAIT} "
                f"(now {bound:.0f})"
            )
        log(
            f"DVC is locked by another process ({holder}; waited {waited:.0f} s of "
            f"{bound:.0f} s); trying again in {delay:.0f} s"
        )
        sleep(delay)
        waited += delay


def _dvc_once(args: Sequence[str], tail_lines: int = 40) -> tuple[int, str]:
    """Run ``python -m dvc ARGS`` with stdout inherited; forward stderr, keep its tail."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dvc", *args],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    assert process.stderr is not None
    tail: deque[str] = deque(maxlen=tail_lines)
    for line in process.stderr:
        sys.stderr.write(line)
        tail.append(line)
    return process.wait(), "".join(tail)


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: ``dvc ARGS``, waiting while another DVC process holds the workspace."""
    parser = argparse.ArgumentParser(
        prog="python -m flows.dvc_wait",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--max-wait", type=float, default=None, metavar="SECONDS",
                        help=f"total wait bound (default: ${ENV_MAX_WAIT} or 1800)")
    parser.add_argument("dvc_args", nargs=argparse.REMAINDER, help="arguments for dvc")
    args = parser.parse_args(argv)
    if not args.dvc_args:
        parser.error("give the dvc command, e.g. `repro`")

    def log(message: str) -> None:
        print(f"[dvc_wait] {message}", file=sys.stderr, flush=True)

    try:
        return run_waiting(lambda: _dvc_once(args.dvc_args), busy=lambda: workspace_busy("."),
                           max_wait=args.max_wait, log=log)
    except (DvcLockTimeoutError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
