"""Free disk space, checked before a large write, and full disks reported as one clear error.

Datasets are written into a memory-mapped ``.npy`` that is sized up front. Created sparse, a
mapping over a full disk does not fail when it is made but when a page is first written: the
kernel sends SIGBUS and the stage dies without a word (and, before tempnames.py, left its temp
directory behind). So the space is checked first (with a margin for the labels and meta.json)
and then reserved with ``posix_fallocate``, which turns a disk that fills up meanwhile into
ENOSPC, an ordinary exception, instead of SIGBUS.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from simgan.core.errors import UserError

MARGIN_FRACTION = 0.25
"""Extra room asked for, as a fraction of the images: labels.parquet and meta.json (labels are
~10-20% of the images for the tasks here)."""
MARGIN_BYTES = 16 * 2**20
"""Extra room asked for on top, so that a nearly full disk is refused before it is filled."""


class DiskSpaceError(UserError):
    """Not enough free space to write ``path``; the message says how much and what to do."""

    def __init__(self, path: str | Path, needed: int | None, free: int | None):
        self.path, self.needed, self.free = str(path), needed, free
        if needed is None:
            what = "the disk filled up while writing it; the partial output was removed"
        else:
            what = (f"writing it needs {_size(needed, 'with a margin for the labels')}, only "
                    f"{_size(free or 0)} is free there; nothing was written")
        super().__init__(
            f"{self.path}: not enough disk space: {what}. Free space on that file system "
            "(unused DVC cache: `dvc gc -w`; old experiments: `dvc exp remove`) or make the "
            "dataset smaller, then rerun. `dvc repro` then copies each output into .dvc/cache, "
            "which needs as much again."
        )

    def __reduce__(self):
        return (DiskSpaceError, (self.path, self.needed, self.free))


def _size(n: int, note: str = "") -> str:
    return f"{n / 2**20:.1f} MiB ({n} bytes{', ' + note if note else ''})"


def free_bytes(path: str | Path) -> int:
    """Bytes free to this user on the file system holding ``path`` (an existing path)."""
    return shutil.disk_usage(path).free


def with_margin(nbytes: int) -> int:
    return nbytes + int(nbytes * MARGIN_FRACTION) + MARGIN_BYTES


def require_free(where: str | Path, nbytes: int, final: str | Path) -> None:
    """Raise :class:`DiskSpaceError` naming ``final`` unless the file system of ``where``
    (an existing directory) has room for ``nbytes`` plus the margin."""
    needed = with_margin(nbytes)
    free = free_bytes(where)
    if free < needed:
        raise DiskSpaceError(final, needed, free)


def reserve(path: str | Path, final: str | Path) -> None:
    """Allocate the whole existing file ``path`` (contents unchanged), so writes through a
    memory map of it cannot fault on a full disk. File systems that cannot preallocate are
    left as they are."""
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, max(os.fstat(fd).st_size, 1))
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskSpaceError(final, None, None) from exc
        if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            raise
    finally:
        os.close(fd)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the user's quota) is full; pyarrow's IO errors carry
    no errno, only the text."""
    if isinstance(exc, DiskSpaceError):
        return True
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, OSError) and "No space left on device" in str(exc)
