"""The process's malloc policy (app/core/runtime/memory.py): large arrays reused, free pages given back.

Each test runs in a fresh interpreter: malloc settings are process-wide and cannot be read back."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings")


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


RSS = """
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
"""


def test_freed_arrays_stay_for_reuse_until_released():
    out = run_python(
        RSS
        + textwrap.dedent(
            """
        import numpy as np
        from app.core.runtime.memory import release_free_memory, reuse_large_blocks
        assert reuse_large_blocks()
        base = rss_mb()
        arrays = [np.ones(1 << 20, dtype=np.uint8) for _ in range(200)]  # 200 x 1 MB, touched
        keep = arrays[-1]  # holds the heap top: the free space below it cannot be trimmed from the top
        del arrays
        held = rss_mb() - base
        again = [np.ones(1 << 20, dtype=np.uint8) for _ in range(100)]  # reuses the freed blocks
        reused = rss_mb() - base
        del again
        assert release_free_memory()
        print(held, reused, rss_mb() - base)
        """
        )
    )
    held, reused, released = map(float, out.split())
    assert held > 150  # freed but kept by the arenas, ready for reuse
    assert reused < held + 20  # the second batch came from them, not from new pages
    assert released < 50  # malloc_trim gave the free pages back


def test_manage_memory_starts_one_releasing_thread():
    out = run_python(
        """
        import threading
        from app.core.runtime import memory
        calls = []
        real = memory.release_free_memory
        memory.release_free_memory = lambda: calls.append(1) or real()
        assert memory.manage_memory(interval=0.01)
        assert memory.manage_memory(interval=0.01)  # a second call changes nothing
        names = [t.name for t in threading.enumerate()]
        threading.Event().wait(0.3)
        print(names.count("seglens-memory"), len(calls) > 3)
        """
    )
    assert out.split() == ["1", "True"]
