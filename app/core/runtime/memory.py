"""Process memory settings: glibc's malloc tuned for large arrays made and dropped at a high rate.

Two costs pull against each other:
- An array served from its own mapping (glibc does that above its mmap threshold) goes back to the system
  when freed, but every new one is page-faulted in afresh. An evaluation of 12 Cityscapes images with two
  models spent about 2 of its 18 core-seconds in the kernel that way (benchmarks/bench_gui.py, goal 5).
  glibc's default moves that threshold around (it rises as big blocks are freed) and trims the heap top
  whenever 128 KB are free there, so the same faults come back in waves.
- An array served from the heap arenas is reused without faults, but freed space in the middle of an arena
  is not given back: over a long browse resident memory creeps up by hundreds of MB (goal 4).

So large arrays (up to 32 MB, glibc's limit) are served from the arenas and reused, the heap top is not
trimmed on every free, and a background thread hands the arenas' free pages back to the system every few
seconds (malloc_trim). Arrays larger than 32 MB still get their own mappings.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from functools import cache

_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
REUSE_UP_TO = 32 * 1024 * 1024  # the largest mmap threshold glibc accepts on 64-bit systems
TRIM_ABOVE = 64 * 1024 * 1024  # free bytes at the heap top kept for reuse before it shrinks on its own
RELEASE_EVERY_S = 5.0


@cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        try:
            libc = ctypes.CDLL("libc.so.6")  # glibc's name; find_library runs ldconfig (milliseconds)
        except OSError:
            from ctypes.util import find_library  # only here: it imports subprocess, shutil and more

            libc = ctypes.CDLL(find_library("c"))
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
    except (OSError, AttributeError):  # musl and others have neither
        return None
    return libc


def reuse_large_blocks(threshold: int = REUSE_UP_TO, trim_above: int = TRIM_ABOVE) -> bool:
    """Serve allocations below `threshold` bytes from the heap arenas (reused without page faults) and
    let the heap top shrink only past `trim_above` free bytes. glibc only: False elsewhere or when the C
    library refuses."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, trim_above)
    )


def release_free_memory() -> bool:
    """Give the free pages of every malloc arena back to the system (glibc's malloc_trim(0)). Runs
    without the GIL. False where there is no such call."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def _release_every(interval: float) -> None:
    while True:
        time.sleep(interval)
        release_free_memory()


_releaser: threading.Thread | None = None  # a daemon thread: it ends with the process
_releaser_lock = threading.Lock()


def manage_memory(interval: float = RELEASE_EVERY_S) -> bool:
    """reuse_large_blocks() plus a background release of free pages every `interval` seconds, once per
    process (later calls do nothing). False where the C library offers neither (nothing is changed)."""
    global _releaser
    with _releaser_lock:
        if _releaser is not None:
            return True
        if not reuse_large_blocks():
            return False
        _releaser = threading.Thread(
            target=_release_every, args=(interval,), name="seglens-memory", daemon=True
        )
        _releaser.start()
        return True
