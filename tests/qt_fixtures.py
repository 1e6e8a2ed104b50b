"""Qt test guards shared by all tests; conftest.py imports them (autouse).

Nothing here imports PySide6 itself: a Qt-free test session stays Qt-free, and the guard only looks at the
worker module if some test imported it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def dangling_workers() -> Iterator[None]:
    """Fail a test that leaves worker jobs or pool threads running (after napari's _dangling_qthread_pool).

    The leftovers are shut down before failing, so one bad test does not cascade into the next ones.
    """
    yield
    problems: list[str] = []
    workers = sys.modules.get("app.controllers.workers")
    if workers is not None:
        for pool in workers.live_pools():
            if not pool.is_idle():
                problems.append(
                    f"WorkerPool with {pool.active_count()} live job(s), "
                    f"{pool.running_threads()} busy thread(s)"
                )
                pool.shutdown(10_000)
    qtcore = sys.modules.get("PySide6.QtCore")
    if qtcore is not None:
        global_pool = qtcore.QThreadPool.globalInstance()
        if global_pool.activeThreadCount():
            problems.append(f"global QThreadPool has {global_pool.activeThreadCount()} busy thread(s)")
            global_pool.waitForDone(10_000)
    if problems:
        pytest.fail("test left workers running: " + "; ".join(problems), pytrace=False)
