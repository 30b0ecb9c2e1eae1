"""Which process owns an MLflow run, and whether that process still lives.

A stage killed by SIGKILL, the OOM killer or a power cut cannot close its run: it stays
RUNNING forever. So each run records its owner -- host, boot, pid namespace, pid and the
process's start time (clock ticks since boot, from /proc/<pid>/stat) -- and the next stage
start closes RUNNING runs whose owner is gone. The start time guards against pid reuse
(another process with the same pid has another start time); the boot id against a reboot
(every owner of a previous boot is gone); the pid namespace against containers sharing a
host name (their pids are not ours to look up). An owner on another host or in another pid
namespace is never judged: its runs are left alone.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

TAG_HOST = "owner_host"
TAG_PID = "owner_pid"
TAG_STARTED = "owner_start_ticks"
TAG_BOOT = "owner_boot"
TAG_PIDNS = "owner_pid_ns"
OWNER_TAGS = (TAG_HOST, TAG_PID, TAG_STARTED, TAG_BOOT, TAG_PIDNS)

Liveness = Literal["alive", "gone", "unknown"]


def proc_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks since boot) from /proc/<pid>/stat; None when
    there is no such process or it has exited (a zombie its parent has not reaped yet)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 onwards
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[1]), int(fields[19])


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "unknown"


def owner_tags(pid: int | None = None) -> dict[str, str]:
    """The tags that name ``pid`` (default: this process) as a run's owner; empty without
    /proc (then runs are never judged stale)."""
    pid = os.getpid() if pid is None else pid
    stat = proc_stat(pid)
    if stat is None:
        return {}
    return {TAG_HOST: socket.gethostname(), TAG_PID: str(pid), TAG_STARTED: str(stat[1]),
            TAG_BOOT: _boot_id(), TAG_PIDNS: _pid_namespace()}


def liveness(tags: Mapping[str, str]) -> Liveness:
    """``gone`` when the owner the tags name is certainly dead, ``alive`` when it certainly
    runs, ``unknown`` when this process cannot tell (no owner tags, another host or pid
    namespace, no /proc)."""
    if any(tag not in tags for tag in OWNER_TAGS):
        return "unknown"
    here = owner_tags()
    if not here or tags[TAG_HOST] != here[TAG_HOST]:
        return "unknown"
    if tags[TAG_BOOT] != here[TAG_BOOT]:
        return "gone"  # the machine rebooted since
    if tags[TAG_PIDNS] != here[TAG_PIDNS]:
        return "unknown"
    stat = proc_stat(int(tags[TAG_PID]))
    return "alive" if stat is not None and str(stat[1]) == tags[TAG_STARTED] else "gone"
