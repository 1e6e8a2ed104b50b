"""The worker pool: delivery thread, progress, error routing, cancellation, group limits, restart by key."""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter

import pytest
from qt_fixtures import dangling_workers  # noqa: F401 - autouse guard until conftest imports it

from app.controllers.workers import (
    Cancelled,
    ErrorReport,
    JobContext,
    JobState,
    WorkerPool,
    live_pools,
)
from app.core.domain.errors import InputError

WAIT = 5_000  # ms; generous, only an upper bound on waits
BLOCK = 5.0  # s; a blocked worker gives up after this, so a failing test cannot hang


@pytest.fixture
def pool(qtbot):
    wp = WorkerPool(max_threads=4)
    yield wp
    assert wp.shutdown(WAIT), "pool did not stop"
    assert wp.running_threads() == 0


def test_result_is_delivered_on_gui_thread(qtbot, pool):
    gui = threading.get_ident()
    seen: list[tuple[int, int]] = []
    job = pool.submit(threading.get_ident)
    job.signals.result.connect(lambda worker: seen.append((worker, threading.get_ident())))
    with qtbot.waitSignal(job.signals.finished, timeout=WAIT):
        pass
    assert len(seen) == 1
    worker, receiver = seen[0]
    assert worker != gui
    assert receiver == gui
    assert job.state is JobState.DONE
    assert pool.active_count() == 0


def test_args_kwargs_and_context_only_on_request(qtbot, pool):
    def plain(a, b, *, c):
        return (a, b, c)

    def with_ctx(ctx, a, *, c):
        return (isinstance(ctx, JobContext), a, c)

    j1 = pool.submit(plain, 1, 2, c=3)
    j2 = pool.submit(with_ctx, "x", c="y", with_context=True)
    results: dict[int, object] = {}
    j1.signals.result.connect(lambda v: results.__setitem__(1, v))
    j2.signals.result.connect(lambda v: results.__setitem__(2, v))
    assert pool.wait_idle(WAIT)
    assert results == {1: (1, 2, 3), 2: (True, "x", "y")}


def test_signal_order_and_progress(qtbot, pool):
    events: list[object] = []

    def work(ctx):
        for i in range(1, 6):
            ctx.progress(i, 5, f"step {i}")
            time.sleep(0.002)
        return "done"

    job = pool.submit(work, with_context=True)
    job.signals.started.connect(lambda: events.append("started"))
    job.signals.progress.connect(lambda d, t, m: events.append((d, t, m)))
    job.signals.result.connect(lambda v: events.append(("result", v)))
    job.signals.finished.connect(lambda: events.append("finished"))
    with qtbot.waitSignal(job.signals.finished, timeout=WAIT):
        pass
    assert events[0] == "started"
    assert events[-2:] == [("result", "done"), "finished"]
    progress = events[1:-2]
    assert progress, "no progress delivered"
    # Coalesced: maybe not every step, but in order and ending at the last one.
    assert [p[0] for p in progress] == sorted(p[0] for p in progress)
    assert progress[-1] == (5, 5, "step 5")


def test_progress_accepts_values_beyond_32_bits(qtbot, pool):
    big = 5 * 2**32

    def work(ctx):
        ctx.progress(big, 2 * big, "bytes")

    job = pool.submit(work, with_context=True)
    with qtbot.waitSignal(job.signals.progress, timeout=WAIT) as blocker:
        pass
    assert blocker.args == [big, 2 * big, "bytes"]
    assert pool.wait_idle(WAIT)


def _raise(exc: BaseException) -> None:
    raise exc


def test_seglens_error_gets_clean_message_on_both_signals(qtbot, pool):
    job = pool.submit(_raise, InputError("broken.png", "not an image"), name="load image")
    own: list[ErrorReport] = []
    results: list[object] = []
    job.signals.error.connect(own.append)
    job.signals.result.connect(results.append)
    with qtbot.waitSignal(pool.error, timeout=WAIT) as blocker:
        pass
    report = blocker.args[0]
    assert isinstance(report, ErrorReport)
    assert own == [report]
    assert report.expected
    assert report.title == "load image failed"
    assert report.message == "broken.png: not an image"
    assert "Traceback" not in report.message
    assert "InputError" in report.traceback and "_raise" in report.traceback
    assert isinstance(report.exception, InputError)
    assert pool.wait_idle(WAIT)
    assert job.state is JobState.FAILED and job.error_report is report
    assert results == []


def test_unexpected_error_is_reported_with_traceback(qtbot, pool):
    job = pool.submit(_raise, ValueError("bad shape"))
    own: list[ErrorReport] = []
    job.signals.error.connect(own.append)
    with qtbot.waitSignal(pool.error, timeout=WAIT) as blocker:
        pass
    report = blocker.args[0]
    assert own == [report]
    assert not report.expected
    assert report.message == "unexpected error: ValueError: bad shape"
    assert report.title == "_raise failed"
    assert "ValueError: bad shape" in report.traceback
    assert "Traceback" in report.traceback
    assert pool.wait_idle(WAIT)


def test_base_exception_does_not_escape_the_worker(qtbot, pool):
    job = pool.submit(_raise, SystemExit(3))
    with qtbot.waitSignal(pool.error, timeout=WAIT) as blocker:
        pass
    assert blocker.args[0].message.startswith("unexpected error: SystemExit")
    assert pool.wait_idle(WAIT)
    assert job.state is JobState.FAILED
    # The pool still works afterwards.
    with qtbot.waitSignal(pool.submit(int, "7").signals.result, timeout=WAIT) as blocker:
        pass
    assert blocker.args == [7]


def test_cancelled_raised_by_the_job_is_not_an_error(qtbot, pool):
    errors: list[ErrorReport] = []
    pool.error.connect(errors.append)
    job = pool.submit(_raise, Cancelled())
    with qtbot.waitSignal(job.signals.finished, timeout=WAIT):
        pass
    assert job.state is JobState.CANCELLED
    assert errors == []


def test_cancel_queued_job_never_runs(qtbot):
    wp = WorkerPool(max_threads=1)
    release = threading.Event()
    ran: list[str] = []
    blocker_job = wp.submit(release.wait, BLOCK)
    queued = wp.submit(ran.append, "queued")
    finished: list[JobState] = []
    queued.signals.finished.connect(lambda: finished.append(queued.state))
    queued.signals.started.connect(lambda: ran.append("started signal"))
    assert wp.cancel(queued)
    # Dropped at once, with no need for a free thread.
    assert finished == [JobState.CANCELLED]
    assert not wp.cancel(queued), "a finished job cannot be cancelled again"
    release.set()
    assert wp.wait_idle(WAIT)
    assert ran == []
    assert blocker_job.state is JobState.DONE
    assert wp.shutdown(WAIT)


def test_cancel_running_job_cooperatively(qtbot, pool):
    def spin(ctx):
        deadline = time.monotonic() + BLOCK
        while time.monotonic() < deadline:
            ctx.check()
            time.sleep(0.002)
        return "ran to the end"

    job = pool.submit(spin, with_context=True)
    results: list[object] = []
    job.signals.result.connect(results.append)
    with qtbot.waitSignal(job.signals.started, timeout=WAIT):
        pass
    assert job.state is JobState.RUNNING
    with qtbot.waitSignal(job.signals.finished, timeout=WAIT):
        assert pool.cancel(job)
    assert job.state is JobState.CANCELLED
    assert results == []


def test_context_wait_is_interrupted_by_cancel(qtbot, pool):
    job = pool.submit(lambda ctx: ctx.wait(BLOCK), with_context=True)
    with qtbot.waitSignal(job.signals.started, timeout=WAIT):
        pass
    start = time.monotonic()
    with qtbot.waitSignal(job.signals.finished, timeout=WAIT):
        pool.cancel(job)
    # Not a timing assertion on speed, only that the job did not sleep its whole BLOCK.
    assert time.monotonic() - start < BLOCK
    assert job.state is JobState.CANCELLED


def test_standalone_context():
    ctx = JobContext()
    ctx.progress(1, 2, "no pool attached: a no-op")
    ctx.check()
    ctx.cancel()
    assert ctx.cancelled
    with pytest.raises(Cancelled):
        ctx.check()
    with pytest.raises(Cancelled):
        ctx.wait(BLOCK)


def test_stale_result_is_dropped_even_if_already_computed(qtbot, pool):
    computed = threading.Event()

    def work():
        computed.set()
        return "stale"

    job = pool.submit(work)
    results: list[object] = []
    job.signals.result.connect(results.append)
    # Block the GUI thread until the worker is done, so its result is (about to be) in the event queue.
    assert computed.wait(BLOCK)
    assert pool.cancel(job)
    with qtbot.waitSignal(job.signals.finished, timeout=WAIT):
        pass
    assert results == []
    assert job.state is JobState.CANCELLED


def test_restart_by_key_delivers_only_the_newest_result(qtbot, pool):
    release = threading.Event()

    def slow(value):
        # Ignores cancellation on purpose: its result must still never be delivered.
        release.wait(BLOCK)
        return value

    results: list[object] = []
    jobs = []
    for i in range(6):
        job = pool.submit(slow, i, key="preview")
        job.signals.result.connect(results.append)
        jobs.append(job)
    other = pool.submit(slow, "other", key="thumbnail")
    other.signals.result.connect(results.append)
    assert [j.cancelled for j in jobs] == [True] * 5 + [False]
    release.set()
    assert pool.wait_idle(WAIT)
    assert sorted(results, key=str) == [5, "other"]
    assert [j.state for j in jobs] == [JobState.CANCELLED] * 5 + [JobState.DONE]


def test_group_limit_is_honoured_and_other_groups_run_in_parallel(qtbot, pool):
    lock = threading.Lock()
    running: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    order: list[int] = []
    b_started = threading.Event()

    def work(group, index):
        with lock:
            running[group] += 1
            peak[group] = max(peak[group], running[group])
            if group == "a":
                order.append(index)
        try:
            if group == "a" and index == 0:
                # Only passes if group "b" can start while "a" is busy.
                return b_started.wait(BLOCK)
            if group == "b":
                b_started.set()
            time.sleep(0.01)
            return True
        finally:
            with lock:
                running[group] -= 1

    pool.set_group_limit("a", 1)
    assert pool.group_limit("a") == 1
    results: list[object] = []
    for i in range(5):
        pool.submit(work, "a", i, group="a").signals.result.connect(results.append)
    for i in range(3):
        pool.submit(work, "b", i, group="b").signals.result.connect(results.append)
    assert pool.wait_idle(WAIT)
    assert results == [True] * 8
    assert peak["a"] == 1
    assert order == [0, 1, 2, 3, 4], "a group must start its jobs in FIFO order"


def test_raising_a_group_limit_starts_waiting_jobs(qtbot, pool):
    release = threading.Event()
    pool.set_group_limit("m", 1)
    jobs = [pool.submit(release.wait, BLOCK, group="m") for _ in range(3)]
    with qtbot.waitSignal(jobs[0].signals.started, timeout=WAIT):
        pass
    with qtbot.waitSignals([jobs[1].signals.started, jobs[2].signals.started], timeout=WAIT):
        pool.set_group_limit("m", None)
    release.set()
    assert pool.wait_idle(WAIT)
    with pytest.raises(ValueError, match="limit"):
        pool.set_group_limit("m", 0)


def test_cancel_group_drops_waiting_and_stops_running(qtbot, pool):
    pool.set_group_limit("model", 1)
    ran: list[int] = []

    def work(ctx, i):
        ran.append(i)
        ctx.wait(BLOCK)

    jobs = [pool.submit(work, i, group="model", with_context=True) for i in range(4)]
    other = pool.submit(lambda: "other", group="else")
    with qtbot.waitSignal(jobs[0].signals.started, timeout=WAIT):
        pass
    assert pool.cancel_group("model") == 4
    assert [j.state for j in jobs[1:]] == [JobState.CANCELLED] * 3
    assert pool.wait_idle(WAIT)
    assert ran == [0]
    assert jobs[0].state is JobState.CANCELLED
    assert other.state is JobState.DONE


def test_busy_changed_and_active_count(qtbot, pool):
    busy: list[bool] = []
    pool.busy_changed.connect(busy.append)
    release = threading.Event()
    pool.submit(release.wait, BLOCK)
    pool.submit(release.wait, BLOCK)
    assert pool.active_count() == 2
    assert busy == [True]
    release.set()
    with qtbot.waitSignal(pool.busy_changed, timeout=WAIT, check_params_cb=lambda b: not b):
        pass
    assert busy == [True, False]
    assert pool.active_count() == 0


def test_shutdown_with_running_jobs_stops_every_thread(qtbot):
    wp = WorkerPool(max_threads=3)
    assert wp in live_pools()
    started = threading.Barrier(4, timeout=BLOCK)
    ran: list[str] = []

    def cooperative(ctx):
        started.wait()
        while True:
            ctx.check()
            time.sleep(0.002)

    def slow_to_stop(ctx):
        # Holds its thread until cancelled (so the queued jobs cannot start), then finishes its work
        # anyway and returns a result that must be dropped.
        started.wait()
        ctx._cancel_event.wait(BLOCK)
        time.sleep(0.05)
        return "late"

    results: list[object] = []
    for _ in range(2):
        wp.submit(cooperative, with_context=True)
    wp.submit(slow_to_stop, with_context=True).signals.result.connect(results.append)
    queued = [wp.submit(ran.append, i) for i in range(3)]
    started.wait()  # all three threads are inside a job
    assert wp.shutdown(WAIT)
    assert wp.active_count() == 0
    assert wp.running_threads() == 0
    assert results == []
    assert ran == []
    assert all(j.state is JobState.CANCELLED for j in queued)
    with pytest.raises(RuntimeError, match="shutdown"):
        wp.submit(int)


def test_many_tiny_jobs_all_complete(qtbot, pool):
    pool.set_group_limit(1, 1)
    pool.set_group_limit(2, 2)
    results: list[int] = []
    finished = Counter[str]()
    for i in range(200):
        job = pool.submit(functools.partial(pow, i, 2), group=(i % 3) or None)
        job.signals.result.connect(results.append)
        job.signals.finished.connect(lambda: finished.update(["x"]))
    assert pool.wait_idle(WAIT * 2)
    assert sorted(results) == [i * i for i in range(200)]
    assert finished["x"] == 200
    assert pool.active_count() == 0


def test_pool_refuses_use_from_a_worker_thread(qtbot, pool):
    job = pool.submit(lambda: pool.submit(int))
    with qtbot.waitSignal(pool.error, timeout=WAIT) as blocker:
        pass
    assert "thread that created it" in blocker.args[0].message
    assert pool.wait_idle(WAIT)
    assert job.state is JobState.FAILED
