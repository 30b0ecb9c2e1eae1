"""A running stage owns its outputs: one process per stage at a time, and the temps a killed
one left behind are removed before the next one writes.

Why: killing ``dvc`` (or its terminal) leaves the stage process running, and the next
``dvc repro`` starts a second one on the same outputs; two trainers then overwrite each
other's checkpoints and outputs. Each stage (stage, task and source, per project root) takes
an exclusive ``flock`` on ``.locks/<stage>@<task>[-<source>].lock`` for its whole life. The
kernel releases it when the process ends, however it ends (SIGKILL included), so a stale lock
cannot exist and nothing has to be cleaned up. The lock file holds the owner's pid, for the
message the second process prints.

Holding the lock, the stage then removes the temp siblings of its outputs (and the temp files
in its checkpoint directory) whose writers are dead (simgan.core.tempnames): a killed render
or a SIGBUS on a full disk leaves a ``.<name>.tmp-*`` directory that nothing else removes.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path
from typing import Any

from simgan.core.errors import UserError
from simgan.core.tempnames import remove_orphans

_held: dict[Path, int] = {}
"""The locks this process holds and their descriptors: open until it exits (a stage process
runs one stage; tests that call stages.common.main twice in one process take a lock once)."""


class StageBusyError(UserError):
    """Another live process is running the same stage on the same outputs."""


def acquire(lock: Path, label: str) -> int:
    """Take the exclusive lock ``lock`` for this process, or raise StageBusyError naming the
    pid that holds it. Returns the descriptor (closing it releases the lock)."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StageBusyError(
            f"{label} is already running as pid {holder} on the same outputs "
            f"(lock {os.path.relpath(lock)}); wait for it to finish or stop it "
            f"(kill {holder}), then rerun"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def own_outputs(stage: str, ctx: Any) -> None:
    """Called by stages.common.main before the stage's body: lock the stage, then remove what
    dead runs left next to its outputs. A busy stage raises StageBusyError, a UserError: one
    line, exit status 1 (stages/failures.py)."""
    label = f"{stage}@{ctx.task.name}" + (f"-{ctx.source}" if ctx.source else "")
    lock = ctx.layout.lock(stage, ctx.source).absolute()
    if lock not in _held:
        _held[lock] = acquire(lock, label)
    resume = ctx.layout.resume_state(stage, ctx.source)
    # holding the lock, no live process of this stage writes owner-less temps of old versions
    removed = remove_orphans(ctx.layout.outputs(stage, ctx.source),
                             [resume] if resume is not None else [], legacy=True)
    for path in removed:
        shown = path.relative_to(ctx.root) if path.is_relative_to(ctx.root) else path
        print(f"[simgan] {label}: removed {shown}, left by a run that was killed",
              file=sys.stderr)
