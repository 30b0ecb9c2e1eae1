"""The dataset container: round trip, memmap, atomicity, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from simgan.core.dataset import atomic_dir, open_dataset, open_images, write_dataset


def _chunks(n: int, chunk: int):
    for start in range(0, n, chunk):
        k = min(chunk, n - start)
        imgs = (np.arange(start, start + k)[:, None, None] % 251 * np.ones((1, 3, 4))).astype(
            np.uint8
        )
        yield imgs, pd.DataFrame({"id": np.arange(start, start + k), "y": np.arange(k) * 0.5})


def test_round_trip_is_memmapped_and_complete(tmp_path):
    ds = write_dataset(tmp_path / "d", _chunks(10, 4), 10, (3, 4), "uint8", {"task": "t"})
    assert isinstance(ds.images, np.memmap)
    assert ds.images.shape == (10, 3, 4) and ds.images.dtype == np.uint8
    assert ds.images[7, 0, 0] == 7 and ds.labels["id"].tolist() == list(range(10))
    assert ds.meta == {"task": "t", "count": 10, "shape": [3, 4], "dtype": "uint8"}
    assert open_images(tmp_path / "d").shape == (10, 3, 4)


def test_failed_write_leaves_no_output_and_keeps_the_old_one(tmp_path):
    write_dataset(tmp_path / "d", _chunks(4, 4), 4, (3, 4), "uint8", {"v": 1})

    def broken():
        yield from _chunks(4, 2)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="renderer crashed"):
        write_dataset(tmp_path / "d", broken(), 8, (3, 4), "uint8", {"v": 2})
    assert open_dataset(tmp_path / "d").meta["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_count_mismatch_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="held 4 images, 6 declared"):
        write_dataset(tmp_path / "d", _chunks(4, 2), 6, (3, 4), "uint8", {})
    assert not (tmp_path / "d").exists()


def test_open_names_the_missing_file(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError, match="images.npy"):
        open_dataset(tmp_path / "d")


def test_atomic_dir_replaces_existing(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic_dir(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]


def test_upper_bound_count_truncates_in_place_and_merges_late_meta(tmp_path):
    """Readers that skip bad files know the count only at the end."""
    counts = {}
    ds = write_dataset(tmp_path / "d", _chunks(5, 2), 9, (3, 4), "uint8", {"task": "t"},
                       allow_fewer=True, late_meta=lambda: {"skipped_bad": 4, **counts})
    assert ds.images.shape == (5, 3, 4) and ds.images[4, 0, 0] == 4
    assert (tmp_path / "d" / "images.npy").stat().st_size == 128 + 5 * 12
    assert ds.meta["count"] == 5 and ds.meta["skipped_bad"] == 4


def test_large_label_tables_stream_as_row_groups(tmp_path, monkeypatch):
    import simgan.core.dataset as dataset

    monkeypatch.setattr(dataset, "LABEL_ROWS_IN_MEMORY", 4)
    ds = write_dataset(tmp_path / "d", _chunks(11, 3), 11, (3, 4), "uint8", {})
    assert ds.labels["id"].tolist() == list(range(11))
    assert ds.labels["y"].dtype == np.float64 and ds.labels.index.tolist() == list(range(11))
    import pyarrow.parquet as pq

    groups = pq.ParquetFile(tmp_path / "d" / "labels.parquet").num_row_groups
    assert groups == 2  # 3 + 3 rows, then 3 + 2
