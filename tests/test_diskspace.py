"""A full disk: refused before the memmap is allocated, ENOSPC while writing cleans up, and
both are one DiskSpaceError naming the output; on a real 2 MiB tmpfs (root only) too."""

from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simgan.core import dataset, diskspace
from simgan.core.dataset import atomic_write_bytes, open_dataset, write_dataset
from simgan.core.diskspace import DiskSpaceError

SHAPE = (35, 55)


def _chunks(n: int, k: int = 100):
    for start in range(0, n, k):
        m = min(k, n - start)
        yield (np.full((m, *SHAPE), start % 251, np.uint8),
               pd.DataFrame({"id": np.arange(start, start + m)}))


def _write(path: Path, n: int):
    return write_dataset(path, _chunks(n), n, SHAPE, "uint8", {"task": "gaze"})


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or ".old-" in p.name)


def test_too_little_free_space_is_refused_before_anything_is_allocated(tmp_path, monkeypatch):
    usage = diskspace.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(diskspace.shutil, "disk_usage",
                        lambda p: usage._replace(free=5 * 2**20))
    with pytest.raises(DiskSpaceError) as err:
        _write(tmp_path / "train", 1000)
    images = 1000 * 35 * 55
    needed = images + images // 4 + 16 * 2**20  # 25% and 16 MiB margin for labels and meta
    assert (err.value.needed, err.value.free) == (needed, 5 * 2**20)
    assert str(err.value).startswith(
        f"{tmp_path / 'train'}: not enough disk space: writing it needs 18.3 MiB ({needed} "
        "bytes, with a margin for the labels), only 5.0 MiB (5242880 bytes) is free there; "
        "nothing was written. Free space on that file system (unused DVC cache: `dvc gc -w`; "
        "old experiments: `dvc exp remove`) or make the dataset smaller, then rerun.")
    assert not (tmp_path / "train").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("failing", ["labels", "bytes"])
def test_enospc_while_writing_removes_the_temp_and_keeps_the_old_output(tmp_path, monkeypatch,
                                                                         failing):
    old = _write(tmp_path / "train", 10)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing == "labels":
        monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
        with pytest.raises(DiskSpaceError, match="disk filled up while writing it") as err:
            _write(tmp_path / "train", 20)
    else:
        monkeypatch.setattr(Path, "write_bytes", full)
        with pytest.raises(DiskSpaceError) as err:
            atomic_write_bytes(tmp_path / "train" / "extra.bin", b"x")
    assert isinstance(err.value.__cause__, OSError)
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "train") == []
    assert len(open_dataset(old.path)) == 10


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 2 MiB tmpfs, mounted for the test (needs root; skipped otherwise)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_a_real_full_tmpfs_is_refused_up_front(tiny_tmpfs):
    with pytest.raises(DiskSpaceError, match="only 2.0 MiB"):
        _write(tiny_tmpfs / "train", 2000)  # 3.7 MiB of images
    assert list(tiny_tmpfs.iterdir()) == []


def test_a_disk_that_fills_after_the_check_gives_enospc_not_sigbus(tiny_tmpfs, monkeypatch):
    # as if another process filled the disk after the check: writing through the sparse
    # memmap would now kill the process with SIGBUS; the reservation raises ENOSPC instead
    monkeypatch.setattr(dataset, "require_free", lambda *a, **k: None)
    with pytest.raises(DiskSpaceError, match="disk filled up while writing it"):
        _write(tiny_tmpfs / "train", 2000)
    assert list(tiny_tmpfs.iterdir()) == []
    assert len(_write(tiny_tmpfs / "train", 300)) == 300  # what fits is written as before


@pytest.mark.slow
def test_the_render_stage_says_so_in_one_line(tmp_path, tiny_tmpfs):
    from tests.test_ownership import _finish, _project

    root = _project(tmp_path / "project")
    (root / "data").symlink_to(tiny_tmpfs)  # data/ on the 2 MiB disk, MLflow's store not
    proc = _finish(root)
    train = root / "data" / "gaze" / "synthetic" / "train"
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        f"stages.render: DiskSpaceError: {train}: not enough disk space: writing it needs ")
    assert list(train.parent.iterdir()) == []
