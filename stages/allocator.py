"""Keep freed memory in the process instead of handing it back to the kernel (glibc only).

glibc's malloc serves every block above its mmap threshold (128 KiB, raised dynamically up
to 32 MiB) with a fresh ``mmap`` and returns it with ``munmap`` when torch frees it, so every large
activation of every batch lands on new pages and pays a page fault per 4 KiB on first touch.
Measured at 1 thread on the 2-core AVX2 VM, in fresh processes: cloning a 61 MB tensor took
51-54 ms and a 16->16 3x3 conv on a batch of 512 eyes 104-106 ms; with freed memory kept, 16 ms
and 53-73 ms. Nothing computed changes: the same kernels run on the same values at the same
64-byte alignment (torch's own), so every output keeps its bytes (docs/performance.md).

Set by ``mallopt`` at a stage's start rather than by ``MALLOC_*`` environment variables, so
that a plain ``dvc repro`` or ``python -m stages.<stage>`` gets it too. The price is memory
that stays with the process after a peak: a stage's resident size is its peak (here < 2 GB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
TRIM_NEVER = 2**31 - 1  # mallopt takes an int: trim only above 2 GiB of free heap top


def keep_freed_memory() -> bool:
    """Serve large blocks from the heap and never trim it; True if glibc took both settings."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other libcs: no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_NEVER))
