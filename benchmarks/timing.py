"""How every benchmark of ``make bench`` times a call: a fixed number of warm-up calls, then
``repeat`` timed calls, and the median (the machine is shared: the median ignores the one
call another process disturbed, the mean does not)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def time_calls(fn: Callable[[], object], warmup: int, repeat: int) -> list[float]:
    """Wall seconds of each of ``repeat`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def median_rate(fn: Callable[[], object], items: float, warmup: int, repeat: int) -> dict:
    """``items`` per second of ``fn`` (median over ``repeat`` calls), with the raw timings."""
    seconds = time_calls(fn, warmup, repeat)
    med = statistics.median(seconds)
    return {"per_s": items / med, "median_s": med, "seconds": seconds, "warmup": warmup,
            "repeat": repeat}
