"""The dataset container every stage reads and writes.

A dataset is a directory with three files, few and large so DVC stays fast:
``images.npy`` (N, H, W) opened memory-mapped, ``labels.parquet`` (one row per image)
and ``meta.json`` (task, domain, source, shape, dtype, scaling, seed, counts).
Writes are atomic: everything goes to a sibling temp directory that is renamed at the end,
so a crash never leaves a half-written dataset behind. Temp names carry the writer's pid
(simgan.core.tempnames), so what a killed writer leaves is removed at the next stage start;
a full disk is refused before the images are allocated (simgan.core.diskspace).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simgan.core.diskspace import DiskSpaceError, is_disk_full, require_free, reserve
from simgan.core.tempnames import temp_sibling

IMAGES = "images.npy"
LABELS = "labels.parquet"
META = "meta.json"
LABEL_ROWS_IN_MEMORY = 131_072
"""Label rows buffered before they are written out as a parquet row group: a dataset up to
this size is written in one piece (as before); a larger one (1.2M UnityEyes rows, ~50 float
columns) streams, so the label table never has to fit in memory two or three times over."""


@dataclass(frozen=True)
class Dataset:
    """An opened dataset: images are a read-only memmap, labels a DataFrame."""

    path: Path
    images: np.ndarray
    labels: pd.DataFrame
    meta: dict[str, Any]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def open_dataset(path: str | Path) -> Dataset:
    """Open a dataset directory; errors name the missing or inconsistent file."""
    path = Path(path)
    for name in (IMAGES, LABELS, META):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name}: missing (is {path} a simgan dataset?)")
    images = np.load(path / IMAGES, mmap_mode="r")
    labels = pd.read_parquet(path / LABELS)
    meta = json.loads((path / META).read_text())
    if len(labels) != images.shape[0]:
        raise ValueError(
            f"{path / LABELS}: {len(labels)} rows but {path / IMAGES} holds "
            f"{images.shape[0]} images"
        )
    return Dataset(path=path, images=images, labels=labels, meta=meta)


@contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temp directory next to ``final``; on success replace ``final`` with it.

    On any error the temp directory is removed; a full disk is raised as DiskSpaceError."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(final)
    tmp.mkdir()
    with _cleaned_up(tmp, final):
        yield tmp
        if final.exists():
            old = temp_sibling(final, "old")
            os.replace(final, old)
            try:
                os.replace(tmp, final)
            except BaseException:
                os.replace(old, final)  # keep the previous version, not an orphan to sweep
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file via a temp sibling and rename, so readers never see a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    with _cleaned_up(tmp, path):
        tmp.write_bytes(data)
        os.replace(tmp, path)


@contextmanager
def _cleaned_up(tmp: Path, final: Path) -> Iterator[None]:
    """Remove ``tmp`` if the block fails; a full disk becomes a DiskSpaceError on ``final``."""
    try:
        yield
    except BaseException as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if is_disk_full(exc) and not isinstance(exc, DiskSpaceError):
            raise DiskSpaceError(final, None, None) from exc
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_dataset(
    path: str | Path,
    chunks: Iterable[tuple[np.ndarray, pd.DataFrame]],
    n: int,
    image_shape: tuple[int, int],
    dtype: np.dtype | str,
    meta: dict[str, Any],
    *,
    allow_fewer: bool = False,
    late_meta: Callable[[], dict[str, Any]] | None = None,
) -> Dataset:
    """Stream ``(images, labels)`` chunks into a new dataset at ``path`` atomically.

    ``n`` is the total number of images: the .npy is pre-allocated as a memmap and filled
    chunk by chunk, so peak memory is one chunk whatever the dataset size.
    ``allow_fewer`` makes ``n`` an upper bound (readers that skip bad input files know the
    count only at the end): the file is then cut to the images written, in place.
    ``late_meta`` is called once the chunks are exhausted and its entries (e.g. counts of
    skipped inputs) are merged into meta.json.
    """
    dtype = np.dtype(dtype)
    with atomic_dir(path) as tmp:
        nbytes = n * int(np.prod(image_shape, dtype=np.int64)) * dtype.itemsize
        require_free(tmp, nbytes, final=path)
        out = np.lib.format.open_memmap(
            tmp / IMAGES, mode="w+", dtype=dtype, shape=(n, *image_shape)
        )
        reserve(tmp / IMAGES, final=path)
        frames: list[pd.DataFrame] = []
        buffered = filled = 0
        writer = None
        try:
            for images, labels in chunks:
                k = images.shape[0]
                if len(labels) != k:
                    raise ValueError(f"chunk has {k} images but {len(labels)} label rows")
                if filled + k > n:
                    raise ValueError(f"chunks hold more than the declared {n} images")
                out[filled : filled + k] = images
                frames.append(labels)
                filled += k
                buffered += k
                if buffered >= LABEL_ROWS_IN_MEMORY:
                    writer = _write_row_group(tmp / LABELS, frames, writer)
                    frames, buffered = [], 0
            if filled != n and not allow_fewer:
                raise ValueError(f"chunks held {filled} images, {n} declared")
            out.flush()
            del out
            if filled != n:
                truncate_npy(tmp / IMAGES, filled)
            if writer is None:
                labels_all = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
                labels_all.to_parquet(tmp / LABELS, index=False)
            elif frames:
                writer = _write_row_group(tmp / LABELS, frames, writer)
        finally:
            if writer is not None:
                writer.close()
        extra = late_meta() if late_meta is not None else {}
        full_meta = {
            **meta, **extra, "count": filled, "shape": list(image_shape), "dtype": dtype.name
        }
        (tmp / META).write_text(json.dumps(full_meta, indent=2, sort_keys=True) + "\n")
    return open_dataset(path)


def _write_row_group(path: Path, frames: list[pd.DataFrame], writer: Any) -> Any:
    """Append buffered label frames to the parquet file as one row group (opened on first use,
    with the first group's schema; later groups are cast to it)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(pd.concat(frames, ignore_index=True), preserve_index=False)
    if writer is None:
        writer = pq.ParquetWriter(path, table.schema)
    else:
        table = table.cast(writer.schema)
    writer.write_table(table)
    return writer


def truncate_npy(path: str | Path, rows: int) -> None:
    """Keep the first ``rows`` entries of a C-order .npy file, in place (no copy of the data).

    The header is rewritten with the smaller shape and padded to its old length (a shorter
    number always fits), then the file is truncated after the kept rows.
    """
    path = Path(path)
    with open(path, "r+b") as f:
        version = np.lib.format.read_magic(f)
        start = f.tell()
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        data_offset = f.tell()
        if fortran or not 0 <= rows <= shape[0]:
            raise ValueError(f"{path}: cannot keep {rows} rows of a {shape} array")
        new_shape = (rows, *shape[1:])
        header = repr({
            "descr": np.lib.format.dtype_to_descr(dtype),
            "fortran_order": False,
            "shape": new_shape,
        })
        len_bytes = 2 if version == (1, 0) else 4
        room = data_offset - start - len_bytes
        if len(header) + 1 > room:
            raise ValueError(f"{path}: new header does not fit")
        f.seek(start + len_bytes)
        f.write((header.ljust(room - 1) + "\n").encode("latin1"))
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        f.truncate(data_offset + rows * row_bytes)


def open_images(path: str | Path) -> np.ndarray:
    """Only the memory-mapped images of a dataset, for consumers that must not see labels
    (the refiner reads real images this way: S+U learning is unsupervised on the real side)."""
    path = Path(path) / IMAGES
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing (is {path.parent} a simgan dataset?)")
    return np.load(path, mmap_mode="r")
