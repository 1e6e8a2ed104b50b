"""Process memory settings for the long-running GUI.

glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MB), after which the
many same-sized arrays of browsing (decoded images, masks, RGBA layers: 0.1-8 MB each) come from the heap
arenas, where freed space is rarely given back: resident memory then creeps up by hundreds of MB over a
long session. A fixed threshold keeps every large array in its own mapping, returned to the system on
free. benchmarks/bench_gui.py (goal 4) measures the effect on a 5,000-image browse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
LARGE_BLOCK = 256 * 1024


def return_large_blocks_to_os(threshold: int = LARGE_BLOCK) -> bool:
    """Serve allocations of `threshold` bytes and more from their own mappings (glibc only; a no-op
    returning False elsewhere or when the C library refuses)."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
