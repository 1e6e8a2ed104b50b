"""The one worker idiom of SegLens: jobs on a QThreadPool with progress, result, error and cancellation.

Usage from a controller (GUI thread)::

    job = pool.submit(segmenter.predict, image, key="preview", group=model.digest)
    job.signals.result.connect(self._show_prediction)

    job = pool.submit(evaluate, dataset, with_context=True)   # evaluate(ctx, dataset)
    job.signals.progress.connect(progress_bar.update)

Contract:

* A callable gets a :class:`JobContext` as its first argument only when submitted with
  ``with_context=True``, so plain functions such as ``Segmenter.predict`` need no wrapper. Long loops ask
  for the context and call ``ctx.check()`` between steps (cooperative cancellation) and
  ``ctx.progress(done, total, message)``.
* Every public signal (``JobSignals`` and ``WorkerPool``) is emitted in the GUI thread. The worker thread
  only posts queued notifications to the pool, which decides on the GUI thread what to deliver. That is
  what makes cancellation airtight: after ``cancel(job)`` returns, the job emits nothing but ``finished``
  (a result that was already computed but not yet delivered is dropped), so a stale result never reaches a
  result slot.
* Order per job: ``started`` → ``progress``* → ``result`` | ``error`` → ``finished`` (always exactly once,
  also for jobs cancelled before they ran; ``job.state`` then says ``CANCELLED``). Progress is coalesced:
  a slow GUI sees the latest value, not a backlog.
* Every failure is also emitted by ``WorkerPool.error`` so the main window connects one place to the
  status bar and the log panel. :class:`~app.core.domain.errors.SegLensError` gives a clean message; anything
  else is reported as "unexpected error: ..." with its traceback. :class:`Cancelled` is not an error.
* The pool must be used from the thread that created it (the GUI thread); call :meth:`WorkerPool.shutdown`
  before dropping it (``closeEvent``).
"""

from __future__ import annotations

import enum
import functools
import itertools
import logging
import os
import threading
import time
import traceback
import weakref
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThread, QThreadPool, Signal

from app.core.domain.errors import SegLensError

__all__ = [
    "Cancelled",
    "ErrorReport",
    "Job",
    "JobContext",
    "JobSignals",
    "JobState",
    "WorkerPool",
    "live_pools",
]

_log = logging.getLogger(__name__)


class Cancelled(Exception):  # noqa: N818 - reads as "raise Cancelled", it is a control-flow signal
    """Raised by :meth:`JobContext.check` inside a job that was cancelled; never reported as an error."""


@dataclass(frozen=True)
class ErrorReport:
    """A failure ready for the status bar and the log panel.

    ``message`` is meant for the user (no traceback); ``traceback`` is kept for the log and bug reports.
    ``expected`` is True for :class:`SegLensError` (bad input, a model that fails) and False for bugs.
    """

    title: str
    message: str
    exception: BaseException
    traceback: str
    expected: bool

    @classmethod
    def from_exception(cls, exc: BaseException, title: str) -> ErrorReport:
        """Build a report for ``exc`` with a clean message for SegLensError and a prefixed one otherwise."""
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        if isinstance(exc, SegLensError):
            message = str(exc) or type(exc).__name__
            expected = True
        else:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            message = f"unexpected error: {detail}"
            expected = False
        # The report outlives the job; clearing frame locals lets images held by the failed call be freed.
        if exc.__traceback__ is not None:
            traceback.clear_frames(exc.__traceback__)
        return cls(title=title, message=message, exception=exc, traceback=text, expected=expected)


class JobState(enum.Enum):
    """Life cycle of a job, as seen from the GUI thread."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobContext:
    """The token a job's callable receives: cancellation flag, ``check()``, ``progress()``.

    Thread-safe. It can also be created on its own (``JobContext()``) to call a job function headless,
    e.g. from the CLI or a test.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancel_event = threading.Event()
        self._claimed = False
        self._latest: tuple[int, int, str] = (0, 0, "")
        self._progress_pending = False
        # Set by the pool: posts a queued "progress changed" notification to the GUI thread.
        self._notify: Callable[[], None] | None = None

    @property
    def cancelled(self) -> bool:
        """True once the job has been cancelled."""
        return self._cancel_event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if the job has been cancelled; call it between steps of long work."""
        if self._cancel_event.is_set():
            raise Cancelled

    def wait(self, seconds: float) -> None:
        """Sleep up to ``seconds`` (e.g. a retry backoff); raise :class:`Cancelled` as soon as cancelled."""
        if self._cancel_event.wait(max(0.0, seconds)):
            raise Cancelled

    def progress(self, done: int, total: int, message: str = "") -> None:
        """Report progress. Cheap to call often: at most one notification is in flight per job."""
        with self._lock:
            self._latest = (int(done), int(total), message)
            if self._progress_pending or self._notify is None:
                return
            self._progress_pending = True
        self._notify()

    def cancel(self) -> None:
        """Set the cancellation flag (the pool does this; useful on a standalone context)."""
        self._cancel_event.set()

    # -- pool side ------------------------------------------------------------------------------------

    def _claim(self) -> bool:
        """Worker side: mark the job as started unless it was cancelled first (atomic with _cancel)."""
        with self._lock:
            if self._cancel_event.is_set():
                return False
            self._claimed = True
            return True

    def _cancel(self) -> bool:
        """GUI side: set the flag; return whether the callable had already started."""
        with self._lock:
            self._cancel_event.set()
            return self._claimed

    def _take_progress(self) -> tuple[int, int, str]:
        with self._lock:
            self._progress_pending = False
            return self._latest


class JobSignals(QObject):
    """Signals of one job. Emitted in the GUI thread only (see the module docstring)."""

    started = Signal()
    # done, total, message. Python ints, not C++ int: byte counts of big downloads exceed 2**31.
    progress = Signal(object, object, str)
    result = Signal(object)
    error = Signal(object)  # ErrorReport
    finished = Signal()


class Job:
    """A callable submitted to a :class:`WorkerPool`; connect to ``job.signals``.

    Attributes are read and written in the GUI thread only; the worker thread sees just the context.
    """

    def __init__(
        self,
        job_id: int,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        name: str,
        key: Hashable | None,
        group: Hashable | None,
        with_context: bool,
        priority: int,
    ) -> None:
        self.id = job_id
        self.name = name
        self.key = key
        self.group = group
        self.priority = priority
        self.signals = JobSignals()
        self.state = JobState.QUEUED
        self.error_report: ErrorReport | None = None
        self.context = JobContext()
        self._call = (fn, args, kwargs, with_context)
        self._dispatched = False  # handed to the QThreadPool (holds a group slot)

    @property
    def cancelled(self) -> bool:
        """True once the job was cancelled (its result, if any, is not delivered)."""
        return self.context.cancelled

    @property
    def is_finished(self) -> bool:
        """True once ``finished`` has been emitted."""
        return self.state in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.name!r} {self.state.value} key={self.key!r} group={self.group!r}>"


@dataclass(frozen=True)
class _Outcome:
    """What the worker thread hands back: 'ok' + value, 'error' + ErrorReport, or 'cancelled'."""

    kind: str
    value: Any = None


class _Relay(QObject):
    """Carries notifications from worker threads to the pool in the GUI thread (queued connections)."""

    started = Signal(object)  # job id
    progress = Signal(object)  # job id
    done = Signal(object, object)  # job id, _Outcome


def _execute(job_id: int, ctx: JobContext, call: tuple[Any, ...], name: str, relay: _Relay) -> None:
    """Body of one QRunnable. Nothing may escape it: an exception here would take the app down."""
    fn, args, kwargs, with_context = call
    try:
        if not ctx._claim():
            return  # cancelled while queued: the pool has already finished the job
        relay.started.emit(job_id)
        try:
            value = fn(ctx, *args, **kwargs) if with_context else fn(*args, **kwargs)
            outcome = _Outcome("ok", value)
        except Cancelled:
            outcome = _Outcome("cancelled")
        except BaseException as exc:  # a worker must survive anything, even SystemExit
            outcome = _Outcome("error", ErrorReport.from_exception(exc, f"{name} failed"))
        relay.done.emit(job_id, outcome)
    except BaseException:
        # Only reachable if the pool was deleted under a running job (shutdown() not called).
        _log.exception("worker for job %s could not report back", name)


def _callable_name(fn: Callable[..., Any]) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return str(getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn))


_POOLS: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


def live_pools() -> list[WorkerPool]:
    """Every WorkerPool still alive; the test guard uses it to find jobs a test left running."""
    return list(_POOLS)


class WorkerPool(QObject):
    """Runs jobs on its own QThreadPool with per-group limits, cancellation and restart-by-key."""

    error = Signal(object)  # ErrorReport of any job that failed
    busy_changed = Signal(bool)  # True when the first job is submitted, False when the last one finishes

    def __init__(self, max_threads: int | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # Not a Qt child: its destructor blocks on running jobs, which must not happen mid-destruction.
        self._qpool = QThreadPool()
        self._qpool.setMaxThreadCount(max_threads or max(2, os.cpu_count() or 2))
        self._relay = _Relay()
        queued = Qt.ConnectionType.QueuedConnection
        self._relay.started.connect(self._on_started, queued)
        self._relay.progress.connect(self._on_progress, queued)
        self._relay.done.connect(self._on_done, queued)
        self._ids = itertools.count(1)
        self._jobs: dict[int, Job] = {}
        self._by_key: dict[Hashable, Job] = {}
        self._limits: dict[Hashable, int] = {}
        self._waiting: dict[Hashable, deque[Job]] = {}
        self._running: Counter[Hashable] = Counter()
        self._busy = False
        self._closed = False
        _POOLS.add(self)

    # -- public API -------------------------------------------------------------------------------------

    @property
    def max_threads(self) -> int:
        """The number of jobs that may run at once over all groups."""
        return self._qpool.maxThreadCount()

    def submit(
        self,
        fn: Callable[..., Any],
        *args: Any,
        key: Hashable | None = None,
        group: Hashable | None = None,
        name: str | None = None,
        with_context: bool = False,
        priority: int = 0,
        **kwargs: Any,
    ) -> Job:
        """Queue ``fn(*args, **kwargs)``, or ``fn(ctx, *args, **kwargs)`` with ``with_context``.

        ``key``: a live job with the same key is cancelled first (abort-and-restart; only the newest result
        for a key is delivered). ``group``: jobs of a group obey :meth:`set_group_limit` and start in FIFO
        order. ``name`` titles error reports (default: the callable's name). ``priority`` is passed to
        QThreadPool (higher starts first). Keyword arguments of ``fn`` with one of these names must be bound
        with functools.partial. Connect to ``job.signals`` right after this returns: nothing is delivered
        before control goes back to the event loop.
        """
        self._require_owner_thread()
        if self._closed:
            raise RuntimeError("WorkerPool.submit() after shutdown()")
        if key is not None and (old := self._by_key.get(key)) is not None:
            self.cancel(old)
        job = Job(
            next(self._ids),
            fn,
            args,
            kwargs,
            name=name or _callable_name(fn),
            key=key,
            group=group,
            with_context=with_context,
            priority=priority,
        )
        self._jobs[job.id] = job
        if key is not None:
            self._by_key[key] = job
        if group is not None and not self._group_has_room(group):
            self._waiting.setdefault(group, deque()).append(job)
        else:
            self._dispatch(job)
        self._update_busy()
        return job

    def set_group_limit(self, group: Hashable, limit: int | None) -> None:
        """Let at most ``limit`` jobs of ``group`` run at once (None: no limit but the pool's own)."""
        self._require_owner_thread()
        if limit is None:
            self._limits.pop(group, None)
        elif limit < 1:
            raise ValueError(f"group limit must be >= 1 or None, got {limit}")
        else:
            self._limits[group] = limit
        self._dispatch_waiting(group)

    def group_limit(self, group: Hashable) -> int | None:
        """The limit set for ``group``, or None."""
        return self._limits.get(group)

    def cancel(self, job: Job) -> bool:
        """Cancel ``job``: dropped if it has not started, its token set if running. False if already over.

        After this returns the job emits nothing but ``finished`` (at once if it never ran, otherwise when
        its callable returns).
        """
        return self._cancel_many([job]) == 1

    def cancel_group(self, group: Hashable) -> int:
        """Cancel every live job of ``group``; return how many."""
        return self._cancel_many([j for j in self._jobs.values() if j.group == group])

    def cancel_all(self) -> int:
        """Cancel every live job; return how many."""
        return self._cancel_many(list(self._jobs.values()))

    def active_count(self) -> int:
        """Jobs submitted and not yet finished (queued or running)."""
        return len(self._jobs)

    def running_threads(self) -> int:
        """Pool threads currently executing something (including a dropped job's no-op)."""
        return self._qpool.activeThreadCount()

    def is_idle(self) -> bool:
        """True when no job is live and no pool thread is busy."""
        return not self._jobs and self._qpool.activeThreadCount() == 0

    def wait_idle(self, timeout_ms: int = 30_000) -> bool:
        """Process events until the pool is idle; return False on timeout. Blocks: tests and shutdown only.

        Re-entrant event processing runs slots of other objects meanwhile, as with QDialog.exec().
        """
        self._require_owner_thread()
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            QCoreApplication.processEvents()
            if self.is_idle():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.002)  # queued notifications arrive from other threads; do not spin a core

    @property
    def closed(self) -> bool:
        """True once shutdown() started: submit() refuses new jobs."""
        return self._closed

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Refuse new jobs, cancel all and wait for running ones (for closeEvent). True if all stopped.

        A callable that never checks its context keeps its thread until it returns; on False the caller may
        warn that the app closes while a job is still running.
        """
        self._closed = True
        self.cancel_all()
        start = time.monotonic()
        idle = self.wait_idle(timeout_ms)
        if idle:
            left = max(0, timeout_ms - int((time.monotonic() - start) * 1000))
            self._qpool.waitForDone(left)  # also joins the idle threads (Qt 6)
        return idle

    # -- scheduling (GUI thread) ------------------------------------------------------------------------

    def _require_owner_thread(self) -> None:
        if QThread.currentThread() is not self.thread():
            raise RuntimeError("WorkerPool must be used from the thread that created it")

    def _group_has_room(self, group: Hashable) -> bool:
        limit = self._limits.get(group)
        return limit is None or self._running[group] < limit

    def _dispatch(self, job: Job) -> None:
        job._dispatched = True
        if job.group is not None:
            self._running[job.group] += 1
        ctx, relay, job_id = job.context, self._relay, job.id
        ctx._notify = functools.partial(relay.progress.emit, job_id)
        # The closure holds the context and the call, never the Job: its JobSignals QObject must be
        # released in the GUI thread, not in a worker that drops the closure.
        run = functools.partial(_execute, job_id, ctx, job._call, job.name, relay)
        self._qpool.start(run, job.priority)

    def _dispatch_waiting(self, group: Hashable) -> None:
        waiting = self._waiting.get(group)
        while waiting and self._group_has_room(group):
            self._dispatch(waiting.popleft())
        if not waiting:
            self._waiting.pop(group, None)

    def _cancel_many(self, jobs: Iterable[Job]) -> int:
        self._require_owner_thread()
        live = [job for job in jobs if self._jobs.get(job.id) is job]
        # All tokens first, jobs not yet started before running ones: a running job that stops frees its
        # thread, which would otherwise start a queued job this call is about to cancel. (_claimed only
        # ever turns True, so reading it unlocked can only put a job late, never wrongly early.)
        live.sort(key=lambda job: job.context._claimed)
        never_started = [job for job in live if not job.context._cancel()]
        # Then drop those: group-waiting ones first, so that finishing a dispatched one (which frees a
        # group slot) does not dispatch a waiting one just to drop it.
        never_started.sort(key=lambda job: job._dispatched)
        for job in never_started:
            if self._jobs.get(job.id) is not job:
                continue  # a finished slot run by an earlier iteration already cancelled it
            waiting = self._waiting.get(job.group)
            if waiting is not None and job in waiting:
                waiting.remove(job)
            self._finish(job, JobState.CANCELLED)
        # Jobs already running are finished as CANCELLED by _on_done, whatever their callable returns.
        return len(live)

    def _finish(self, job: Job, state: JobState) -> None:
        """Bookkeeping, then ``finished``; the pool drops the job only after emitting it."""
        job.state = state
        if job._dispatched and job.group is not None:
            self._running[job.group] -= 1
            if self._running[job.group] <= 0:
                del self._running[job.group]
            self._dispatch_waiting(job.group)
        if job.key is not None and self._by_key.get(job.key) is job:
            del self._by_key[job.key]
        try:
            job.signals.finished.emit()
        finally:
            self._jobs.pop(job.id, None)
            self._update_busy()

    def _update_busy(self) -> None:
        busy = bool(self._jobs)
        if busy != self._busy:
            self._busy = busy
            self.busy_changed.emit(busy)

    # -- notifications from workers, delivered in the GUI thread ---------------------------------------

    def _live(self, job_id: object) -> Job | None:
        job = self._jobs.get(job_id) if isinstance(job_id, int) else None
        return None if job is None or job.cancelled else job

    def _on_started(self, job_id: object) -> None:
        job = self._live(job_id)
        if job is not None and job.state is JobState.QUEUED:
            job.state = JobState.RUNNING
            job.signals.started.emit()

    def _on_progress(self, job_id: object) -> None:
        job = self._live(job_id)
        if job is not None:
            job.signals.progress.emit(*job.context._take_progress())

    def _on_done(self, job_id: object, outcome: object) -> None:
        job = self._jobs.get(job_id) if isinstance(job_id, int) else None
        if job is None or not isinstance(outcome, _Outcome):
            return
        if job.cancelled or outcome.kind == "cancelled":
            if outcome.kind == "error":
                _log.debug("cancelled job %s ended with %s", job.name, outcome.value.message)
            self._finish(job, JobState.CANCELLED)
            return
        if outcome.kind == "error":
            report: ErrorReport = outcome.value
            job.error_report = report
            _log.log(
                logging.WARNING if report.expected else logging.ERROR,
                "%s: %s\n%s",
                report.title,
                report.message,
                report.traceback,
            )
            try:
                job.signals.error.emit(report)
                self.error.emit(report)
            finally:
                self._finish(job, JobState.FAILED)
            return
        try:
            job.signals.result.emit(outcome.value)
        finally:
            self._finish(job, JobState.DONE)
