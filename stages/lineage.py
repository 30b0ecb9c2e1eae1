"""What a stage read, by content: dataset digests for MLflow inputs, model file hashes.

A dataset's digest is the md5 DVC recorded for the output that holds it in dvc.lock (the
producing stage writes its lock entry before any later stage starts, also in a queued
experiment's workspace), so an MLflow input names the same content as ``dvc status``. A
dataset DVC does not know (a stage run by hand before any ``dvc repro``) gets the md5 of
its meta.json, which records its params hash, seed and counts.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import yaml

#: how long to wait for another DVC process to finish writing dvc.lock
LOCK_WAIT_SECONDS = 120.0


def dataset_digest(root: Path, dataset: Path) -> str:
    """The DVC md5 of the output holding ``dataset`` (without ``.dir``), else md5 of meta.json."""
    rel = _relative(root, dataset)
    for out_path, md5 in _lock_outs(root / "dvc.lock").items():
        if rel == out_path or rel.startswith(out_path.rstrip("/") + "/"):
            return md5.removesuffix(".dir")
    meta = dataset / "meta.json"
    return hashlib.md5(meta.read_bytes() if meta.is_file() else b"").hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _relative(root: Path, path: Path) -> str:
    path = path.resolve()
    root = root.resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


def _lock_outs(lock: Path) -> dict[str, str]:
    """{out path: md5} of every stage in dvc.lock; {} without a lock file."""
    if not lock.is_file():
        return {}
    # libyaml's loader when PyYAML has it: dvc.lock lists every code dep of every stage
    # (150 KB), which the pure-Python loader takes 0.25 s to read, once per dataset
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(_read_whole(lock), Loader=loader) or {}  # noqa: S506 (a safe loader)
    outs: dict[str, str] = {}
    for stage in (data.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if "md5" in out:
                outs[out["path"]] = out["md5"]
    return outs


def _read_whole(lock: Path) -> str:
    """dvc.lock's text as DVC last wrote it whole.

    DVC rewrites dvc.lock in place, holding its repository lock (``.dvc/tmp/lock``, a
    zc.lockfile) while it does, and releases that lock while a stage's command runs. With
    stages side by side another stage's DVC process may be rewriting the file right now: a
    plain read then gets half of it (seen: a YAML error in compare, or worse, a prefix that
    parses). So read under the same lock, waiting while another process holds it. DVC's own
    lock attempts retry for 3 s, longer than this read takes. (With ``core.hardlink_lock``
    DVC uses another lock file; that setting is not used here.)
    """
    import zc.lockfile

    repo_lock = lock.parent / ".dvc" / "tmp" / "lock"
    if not repo_lock.parent.is_dir():  # not a DVC workspace with state: nobody writes it
        return lock.read_text()
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            held = zc.lockfile.LockFile(str(repo_lock))
        except zc.lockfile.LockError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{repo_lock}: another DVC process held the repository lock "
                                   f"for {LOCK_WAIT_SECONDS:.0f} s; cannot read {lock}") from None
            time.sleep(0.02)
            continue
        try:
            return lock.read_text()
        finally:
            held.close()
