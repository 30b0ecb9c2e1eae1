"""What a stage read, by content: dataset digests for MLflow inputs, model file hashes.

A dataset's digest is the md5 DVC recorded for the output that holds it in dvc.lock (the
producing stage writes its lock entry before any later stage starts, also in a queued
experiment's workspace), so an MLflow input names the same content as ``dvc status``. A
dataset DVC does not know (a stage run by hand before any ``dvc repro``) gets the md5 of
its meta.json, which records its params hash, seed and counts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml


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
    data = yaml.load(lock.read_text(), Loader=loader) or {}  # noqa: S506 (a safe loader)
    outs: dict[str, str] = {}
    for stage in (data.get("stages") or {}).values():
        for out in stage.get("outs") or []:
            if "md5" in out:
                outs[out["path"]] = out["md5"]
    return outs
