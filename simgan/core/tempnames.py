"""Temp names that say who writes them, so a later run can remove those of dead writers.

Atomic writes go to a sibling ``.<name>.tmp-<owner>-<random>`` that is renamed at the end.
A process killed in between (SIGKILL, SIGBUS on a full disk, a power cut) leaves it behind,
and nothing else ever removes it: it wastes the space the next run needs. ``<owner>`` is
``<host>-<pid>-<start>``: the machine and pid namespace (a short hash), the writer's pid and
its start time from ``/proc/<pid>/stat`` (so a reused pid is not taken for the writer; the
same owner as simgan.core.run_owner gives an MLflow run). A temp is an orphan when its host
is this machine and that process is gone; a temp of a live writer, or of another machine or
container (whose processes we cannot see), is never touched.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from simgan.core.run_owner import TAG_HOST, TAG_PIDNS, owner_tags, proc_stat

KINDS = ("tmp", "old")
"""``tmp``: being written; ``old``: the previous version, moved aside just before the swap."""
_OWNED = re.compile(r"^(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-(?P<start>\d+)-[0-9a-f]{6}$")
_LEGACY = re.compile(r"^[0-9a-f]{8}$")
"""The owner-less suffix of earlier versions (``uuid4().hex[:8]``)."""


@cache
def _host() -> str:
    """This machine and pid namespace, hashed (pids of another namespace are not ours to look
    up: a temp written there is never judged)."""
    tags = owner_tags()
    where = f"{tags.get(TAG_HOST, socket.gethostname())}|{tags.get(TAG_PIDNS, 'unknown')}"
    return hashlib.sha256(where.encode()).hexdigest()[:6]


def _start(pid: int) -> int | None:
    """The process's start time (clock ticks since boot); None if it is gone."""
    stat = proc_stat(pid)
    return None if stat is None else stat[1]


@cache
def _owner(pid: int) -> str:
    return f"{_host()}-{pid}-{_start(pid) or 0}"


def owner_token() -> str:
    """This process's ``<host>-<pid>-<start>`` (per pid, so a forked child gets its own)."""
    return _owner(os.getpid())


def temp_sibling(final: str | Path, kind: str = "tmp") -> Path:
    """A fresh name next to ``final`` for writing it (``tmp``) or moving it aside (``old``)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    final = Path(final)
    return final.parent / f".{final.name}.{kind}-{owner_token()}-{uuid.uuid4().hex[:6]}"


def is_orphan(path: Path, legacy: bool = False) -> bool:
    """Whether ``path`` (a temp sibling) was left by a process of this machine that is gone.

    ``legacy``: also count the owner-less names of earlier versions as orphans (only safe for
    the caller that holds the lock of the stage owning them: stages/ownership.py)."""
    suffix = path.name.rsplit(".", 1)[-1]
    kind, _, owner = suffix.partition("-")
    if kind not in KINDS:
        return False
    if _LEGACY.match(owner):
        return legacy
    m = _OWNED.match(owner)
    if m is None or m["host"] != _host():
        return False
    if m["start"] == "0" or not Path("/proc/self/stat").exists():
        return False  # written or read where there is no /proc: cannot tell
    return _start(int(m["pid"])) != int(m["start"])


def temp_siblings(final: Path) -> list[Path]:
    """Every temp sibling of ``final`` (``.<name>.tmp-*`` and ``.<name>.old-*``), any owner."""
    if not final.parent.is_dir():
        return []
    return sorted(p for kind in KINDS for p in final.parent.glob(f".{final.name}.{kind}-*"))


def temps_inside(directory: Path) -> list[Path]:
    """Temp files and directories directly in ``directory`` (any name, any owner)."""
    if not directory.is_dir():
        return []
    return sorted(p for kind in KINDS for p in directory.glob(f".*.{kind}-*"))


def remove_orphans(finals: Iterable[Path], dirs: Iterable[Path] = (),
                   legacy: bool = False) -> list[Path]:
    """Remove the orphaned temps of the outputs ``finals`` (their siblings, and inside those
    that are directories) and inside ``dirs``; returns what was removed."""
    candidates: list[Path] = []
    for final in finals:
        candidates += temp_siblings(final) + temps_inside(final)
    for directory in dirs:
        candidates += temps_inside(directory)
    removed = []
    for path in dict.fromkeys(candidates):
        if is_orphan(path, legacy):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
