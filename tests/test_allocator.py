"""stages/allocator.py: after keep_freed_memory, a large freed block stays in the heap (no
fresh mmap, no page faults) for the next one; checked in a fresh process, through glibc's own
accounting (mallinfo2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = r"""
import ctypes, ctypes.util, sys
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                 "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
if not hasattr(libc, "mallinfo2"):
    print("skip"); sys.exit()
libc.mallinfo2.restype = Info
if sys.argv[1] == "keep":
    from stages.allocator import keep_freed_memory
    assert keep_freed_memory()
import torch
x = torch.empty(16 << 20, dtype=torch.float32)  # 64 MiB
x.fill_(1.0)
during = libc.mallinfo2()
del x
after = libc.mallinfo2()
print(during.hblkhd >= 64 << 20, after.arena - after.uordblks >= 64 << 20)
"""


def _probe(mode: str) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120)
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_freed_large_block_stays_in_the_heap_only_with_the_setting() -> None:
    default, kept = _probe("default"), _probe("keep")
    if "skip" in (default, kept):
        pytest.skip("no mallinfo2 (glibc < 2.33)")
    # default: the 64 MiB block is mmapped, and gone from the process once freed
    assert default == "True False"
    # kept: served from the heap (no mmapped bytes), and still there, free, after del
    assert kept == "False True"
