"""Resume files that survive a kill, a full disk or a damaged file.

A checkpoint is one torch file holding ``{"format", "sha256", "payload"}``: the payload is the
training state as :func:`simgan.core.torchfile.dumps` bytes (a uint8 tensor), and ``sha256``
its digest, checked before anything is unpickled. Each write goes to a temp file that is
flushed to disk and renamed over ``last.pt``; the file it replaces is kept as
``last.prev.pt``. Reading tries ``last.pt`` and then ``last.prev.pt``: a file that is
truncated, fails its checksum or is not a checkpoint is moved aside (``*.corrupt``) with a
WARNING naming it and the reason, so the run resumes from the previous good state, or starts
afresh when there is none. Everything loads with ``weights_only=True``. A checkpoint from
before checksums (a plain torch file with a ``fingerprint``) is still read, so an update does
not throw away finished training; the next save writes the new format.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch

from simgan.core import torchfile
from simgan.core.tempnames import temp_sibling

log = logging.getLogger(__name__)

#: tags the envelope
FORMAT = "simgan-checkpoint/1"


class CorruptCheckpoint(Exception):
    """The file cannot be trusted: unreadable, not a checkpoint, or its checksum fails."""


def previous(path: Path) -> Path:
    """Where the checkpoint before ``path`` is kept: ``last.pt`` -> ``last.prev.pt``."""
    return path.with_name(f"{path.stem}.prev{path.suffix}")


def write_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Replace ``path`` with ``state`` (checksummed), keeping the file it replaces as the
    previous checkpoint. A kill at any point leaves at least one good file to resume from."""
    path = Path(path)
    payload = torchfile.dumps(state)
    envelope = {
        "format": FORMAT,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)  # names its writer: stages/ownership.py sweeps dead ones
    try:
        with open(tmp, "wb") as f:
            f.write(torchfile.dumps(envelope))
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.replace(path, previous(path))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The state saved at ``path``; :class:`CorruptCheckpoint` (saying why) if it cannot be
    trusted. Only the checked payload is unpickled, with ``weights_only=True``."""
    path = Path(path)
    try:
        envelope = torchfile.load(path)
    except Exception as e:  # truncated zip, bad pickle, ...: torch raises several kinds
        size = path.stat().st_size
        raise CorruptCheckpoint(f"unreadable, {size} bytes: {_describe(e)}") from e
    if isinstance(envelope, dict) and "format" not in envelope and "fingerprint" in envelope:
        return envelope  # written before checksums: the zip's own CRCs were its only check
    if not (isinstance(envelope, dict) and envelope.get("format") == FORMAT
            and isinstance(envelope.get("payload"), torch.Tensor)
            and isinstance(envelope.get("sha256"), str)):
        raise CorruptCheckpoint(f"not a {FORMAT} file")
    payload = envelope["payload"].numpy().tobytes()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != envelope["sha256"]:
        raise CorruptCheckpoint(
            f"checksum mismatch: recorded {envelope['sha256'][:12]}..., content {digest[:12]}..."
        )
    try:
        return torchfile.loads(payload)
    except Exception as e:  # checked bytes this torch cannot read (e.g. a newer format)
        raise CorruptCheckpoint(f"payload unreadable: {_describe(e)}") from e


def load_checkpoint(path: str | Path, fingerprint: str, what: str) -> dict[str, Any] | None:
    """The newest trustworthy state at ``path`` (else its previous file) written by the run
    with ``fingerprint``; None to start afresh. Damaged files are moved aside with a WARNING;
    a state from other params or data is left in place and not used. Temp files of writes
    that a kill interrupted are removed (one run owns a checkpoint directory)."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):  # a write a kill interrupted
        stale.unlink(missing_ok=True)
    for candidate in (path, previous(path)):
        if not candidate.is_file():
            continue
        try:
            saved = read_checkpoint(candidate)
        except CorruptCheckpoint as e:
            aside = candidate.with_name(candidate.name + ".corrupt")
            os.replace(candidate, aside)
            log.warning("%s checkpoint %s is unusable (%s); moved it to %s and %s",
                        what, candidate, e, aside.name, _next_step(candidate, path))
            continue
        if saved.get("fingerprint") != fingerprint:
            log.warning("%s was written with other params or data: starting afresh", candidate)
            return None
        if candidate != path:
            log.warning("%s training resumes from the previous checkpoint %s", what, candidate)
        return saved
    return None


def _next_step(candidate: Path, path: Path) -> str:
    prev = previous(path)
    if candidate == path and prev.is_file():
        return f"trying the previous one, {prev.name}"
    return "starting afresh"


def _describe(e: BaseException) -> str:
    """The exception's type and first sentence (torch appends a paragraph of advice)."""
    text = (str(e).strip().splitlines() or [""])[0].split(". ")[0][:160]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _fsync_dir(directory: Path) -> None:
    """Make the renames durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
