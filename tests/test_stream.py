"""The shared streaming toolkit: the ordered pool keeps submission order under out-of-order
completion, bounds the work in flight and propagates errors; the regrouper cuts pieces into
chunks of exactly ``chunk_size`` rows; block ranges give the same rows however cut."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from simgan.core.stream import block_range, ordered_map, regroup


def _slow_first(x: int) -> int:
    """Item 0 finishes last (picklable: used by the process pool too)."""
    time.sleep(0.3 if x == 0 else 0.0)
    return x * x


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise KeyError(f"item {x}")
    return x


# ----------------------------------------------------------------------------- ordered pool


def test_results_come_in_submission_order_though_the_first_finishes_last() -> None:
    done: list[int] = []

    def work(x: int) -> int:
        time.sleep(0.3 if x == 0 else 0.01)
        done.append(x)
        return 10 * x

    got = list(ordered_map(work, range(6), workers=3, kind="thread", in_flight=6))
    assert got == [0, 10, 20, 30, 40, 50]
    assert done[0] != 0  # item 0 really completed after others


def test_process_flavour_keeps_order_too() -> None:
    got = list(ordered_map(_slow_first, range(5), workers=2, kind="process", in_flight=4))
    assert got == [0, 1, 4, 9, 16]


def test_no_workers_runs_inline_and_lazily() -> None:
    pulled: list[int] = []

    def items():
        for i in range(3):
            pulled.append(i)
            yield i

    it = ordered_map(lambda x: threading.current_thread(), items(), workers=0)
    assert next(it) is threading.current_thread()
    assert pulled == [0]


def test_work_in_flight_is_bounded() -> None:
    """At most ``in_flight`` items are taken from the input before their results are
    consumed, however slow the consumer."""
    pulled = 0
    seen: list[int] = []

    def items():
        nonlocal pulled
        for i in range(20):
            pulled += 1
            yield i

    for r in ordered_map(lambda x: x, items(), workers=2, kind="thread", in_flight=3):
        seen.append(pulled - (r + 1))  # items submitted whose results are not yet yielded
        time.sleep(0.005)
    assert max(seen) == 3  # never more than in_flight, and the pool uses the room it has


def test_default_bound_is_twice_the_workers() -> None:
    pulled = 0

    def items():
        nonlocal pulled
        for i in range(50):
            pulled += 1
            yield i

    gaps = [pulled - (r + 1) for r in ordered_map(lambda x: x, items(), workers=2)]
    assert max(gaps) == 4


@pytest.mark.parametrize("kind", ["thread", "process"])
def test_the_first_error_in_item_order_propagates(kind: str) -> None:
    got = []
    with pytest.raises(KeyError, match="item 3"):
        for r in ordered_map(_fail_on_three, range(10), workers=2, kind=kind):
            got.append(r)
    assert got == [0, 1, 2]  # everything before the failing item, in order


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="workers"):
        list(ordered_map(abs, [1], workers=-1))
    with pytest.raises(ValueError, match="in_flight"):
        list(ordered_map(abs, [1], workers=1, in_flight=0))
    with pytest.raises(ValueError, match="kind"):
        list(ordered_map(abs, [1], workers=1, kind="fiber"))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- regrouper


def _piece(lo: int, hi: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Rows lo..hi: image r is filled with r, labels id = r (index deliberately not 0-based)."""
    ids = np.arange(lo, hi)
    images = np.broadcast_to(ids[:, None, None], (hi - lo, 2, 3)).astype(np.uint8)
    return images, pd.DataFrame({"id": ids, "x": ids * 0.5}, index=ids + 100)


def test_chunks_of_exactly_chunk_size_hand_computed() -> None:
    # pieces of 3, 0, 5, 1, 4 rows = 13 rows; chunks of 4: rows 0-3, 4-7, 8-11, 12
    bounds = [(0, 3), (3, 3), (3, 8), (8, 9), (9, 13)]
    chunks = list(regroup((_piece(lo, hi) for lo, hi in bounds), 4))
    assert [c[1]["id"].tolist() for c in chunks] == [[0, 1, 2, 3], [4, 5, 6, 7],
                                                    [8, 9, 10, 11], [12]]
    for images, labels in chunks:
        assert images.flags["C_CONTIGUOUS"] and images.shape[1:] == (2, 3)
        assert (images[:, 0, 0] == labels["id"].to_numpy()).all()  # rows stay paired
        assert labels.index.tolist() == list(range(len(labels)))  # fresh 0-based index
        assert labels["x"].tolist() == [i * 0.5 for i in labels["id"]]


def test_one_big_piece_is_cut_and_exact_multiples_leave_no_empty_chunk() -> None:
    chunks = list(regroup([_piece(0, 10)], 3))
    assert [len(c[0]) for c in chunks] == [3, 3, 3, 1]
    assert [len(c[0]) for c in regroup([_piece(0, 4), _piece(4, 6)], 2)] == [2, 2, 2]
    assert list(regroup([], 5)) == []
    assert list(regroup([_piece(0, 0)], 5)) == []


def test_regroup_rejects_mismatched_pieces() -> None:
    images, labels = _piece(0, 3)
    with pytest.raises(ValueError, match="3 images but 2 label rows"):
        list(regroup([(images, labels.iloc[:2])], 2))
    other = labels.rename(columns={"x": "y"})
    with pytest.raises(ValueError, match="label columns differ"):
        list(regroup([(images, labels), (images, other)], 100))
    with pytest.raises(ValueError, match="chunk_size"):
        list(regroup([(images, labels)], 0))


# ----------------------------------------------------------------------------- block ranges


def _block(b: int) -> tuple[np.ndarray, pd.DataFrame]:
    return _piece(10 * b, 10 * b + 10)


@pytest.mark.parametrize("threads", [0, 2])
def test_block_range_gives_the_rows_of_the_range_however_cut(threads: int) -> None:
    # rows 7..33 of blocks of 10: blocks 0-3, clipped to 7-9, 10-19, 20-29, 30-32
    chunks = list(block_range(_block, 10, 7, 26, 8, threads))
    assert [len(c[0]) for c in chunks] == [8, 8, 8, 2]
    assert pd.concat([c[1] for c in chunks])["id"].tolist() == list(range(7, 33))
    assert list(block_range(_block, 10, 5, 0, 8)) == []
    with pytest.raises(ValueError, match="must be >= 0"):
        list(block_range(_block, 10, -1, 3, 8))
