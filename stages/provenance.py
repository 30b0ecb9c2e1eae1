"""Where a stage execution comes from: its pipeline, git revision, DVC experiment and params.

The pipeline a stage belongs to, without any variable set by us:
- ``SIMGAN_PIPELINE_ID`` when set (``make run``, ``make seeds``, the Prefect flow: a flow
  runs each stage in its own ``dvc repro --single-item``, so only the flow knows the group);
- else the ``dvc`` process that started the stage: all stages of one ``dvc repro`` or
  ``dvc exp run`` are children of one DVC process, which DVC does not name, so its pid and
  start time (pids are reused, the pair is not) identify the invocation;
- else (a stage run by hand) a fresh ``adhoc-`` id.
Inside a DVC experiment (``dvc exp run``, queued or not) DVC exports DVC_EXP_NAME,
DVC_EXP_BASELINE_REV and DVC_ROOT (the project root, even from the temporary workspace of
a queued experiment): the experiment name is appended to the id (one queue worker may run
several experiments) and DVC_ROOT is where the runs are stored. See docs/tracking.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from simgan.core.run_owner import proc_stat
from simgan.core.tracking import PIPELINE_ENV, Provenance

DVC_ROOT = "DVC_ROOT"
DVC_EXP_NAME = "DVC_EXP_NAME"
DVC_EXP_BASELINE_REV = "DVC_EXP_BASELINE_REV"
EXPERIMENT_FILES = ("params.yaml", "dvc.lock")
"""What ``dvc exp run -S`` rewrites in an experiment's workspace."""


def provenance(workspace: Path, params: Mapping[str, Any],
               env: Mapping[str, str] | None = None) -> Provenance:
    """The provenance of a stage running in ``workspace`` with the task's ``params``."""
    env = os.environ if env is None else env
    # an experiment's own params and lock edits are the experiment (dvc_experiment,
    # params_hash), not uncommitted code: only other tracked files make it dirty
    commit, dirty = git_state(workspace, EXPERIMENT_FILES if env.get(DVC_EXP_NAME) else ())
    experiment = env.get(DVC_EXP_NAME) or "workspace"
    base = env.get(PIPELINE_ENV) or dvc_invocation() or f"adhoc-{uuid.uuid4().hex[:12]}"
    return Provenance(
        store_root=store_root(workspace, env),
        pipeline_id=f"{base}/{experiment}" if env.get(DVC_EXP_NAME) else base,
        git_commit=commit,
        git_dirty=dirty,
        experiment=experiment,
        baseline_rev=env.get(DVC_EXP_BASELINE_REV),
        params_hash=params_hash(params),
        cpu_isa=cpu_isa(),
    )


def cpu_isa(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The widest x86 vector extension this CPU has (AVX512, AVX2, AVX, SSE) or, off x86 or
    without /proc/cpuinfo, the machine name. The same params and thread count give the same
    bytes only on the same ISA: numpy's and torch's kernels pick their code path by it, and
    the float sums of another path differ in the last bits (docs/science.md)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return platform.machine() or "unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith(("flags", "Features"))), [])
    for flag, name in (("avx512f", "AVX512"), ("avx2", "AVX2"), ("avx", "AVX"),
                       ("sse2", "SSE")):
        if flag in flags:
            return name
    return platform.machine() or "unknown"


def store_root(workspace: Path, env: Mapping[str, str]) -> Path:
    """DVC_ROOT when it is a DVC project (a queued experiment's parent repo), else the
    workspace."""
    root = env.get(DVC_ROOT)
    if root and (Path(root) / ".dvc").is_dir():
        return Path(root).resolve()
    return workspace.resolve()


def params_hash(params: Mapping[str, Any]) -> str:
    """First 16 hex digits of the SHA-256 of the params as canonical JSON."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def git_state(root: Path, ignore: tuple[str, ...] = ()) -> tuple[str, bool | None]:
    """(HEAD commit, whether tracked files other than ``ignore`` differ from it);
    ("unknown", None) outside git."""
    def git(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                                  timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None

    head = git("rev-parse", "HEAD")
    if head is None or head.returncode != 0 or not head.stdout.strip():
        return "unknown", None
    status = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                 *(f":(exclude){name}" for name in ignore))
    dirty = None if status is None or status.returncode != 0 else bool(status.stdout.strip())
    return head.stdout.strip(), dirty


def dvc_invocation(pid: int | None = None, max_depth: int = 8) -> str | None:
    """``dvc-<pid>-<start ticks>`` of the nearest ``dvc`` ancestor of ``pid`` (default: this
    process), or None (no dvc ancestor, or no /proc)."""
    current = os.getpid() if pid is None else pid
    for _ in range(max_depth):
        stat = proc_stat(current)
        if stat is None:
            return None
        ppid, _start = stat
        if ppid <= 1:
            return None
        parent = proc_stat(ppid)
        if parent is not None and is_dvc(_cmdline(ppid)):
            return f"dvc-{ppid}-{parent[1]}"
        current = ppid
    return None


def is_dvc(argv: list[str]) -> bool:
    """``dvc ...``, ``.../bin/dvc ...``, ``python .../dvc ...`` or ``python -m dvc ...``."""
    head = argv[:3]
    return any(Path(a).name == "dvc" for a in head) or "-m dvc" in " ".join(head)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a for a in raw.decode(errors="replace").split("\0") if a]
