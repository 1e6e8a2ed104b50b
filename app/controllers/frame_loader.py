"""Renders compare-view frames on the worker pool, ahead of the user.

The frame the user asks for renders first; the next ones in the displayed order render meanwhile, two at a
time (decoding a 2048x1024 PNG alone takes ~45 ms of one core, so one prefetch cannot keep up with a held
arrow key, two can). A few rendered frames are kept: those ahead, and the one shown last so that stepping
back is instant too. Everything is keyed by what a frame depends on (row, models, scheme, display
settings), so a changed setting simply misses.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.controllers.workers import Job, WorkerPool

PREFETCH_GROUP = "prefetch"
PREFETCH_AHEAD = 2
"""Frames rendered ahead of the shown one (and at most this many render at once)."""


class FrameLoader(QObject):
    """Owns the rendered frames in flight and at hand; emits `ready` with the one the user asked for."""

    ready = Signal(object)

    def __init__(self, pool: WorkerPool, render: Callable[..., Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = pool
        self.render = render
        pool.set_group_limit(PREFETCH_GROUP, PREFETCH_AHEAD)
        self._running: dict[Hashable, tuple[Job, Sequence[object]]] = {}  # the job and its arguments
        self._done: dict[Hashable, Any] = {}
        self._wanted: Hashable | None = None
        self._shown: tuple[Hashable, Any] | None = None
        self._behind: Hashable | None = None  # the frame shown before the current one (kept in _done)

    def request(self, key: Hashable, args: Sequence[object]) -> None:
        """Show the frame `key` (rendered with `args`): at once when at hand, else as soon as it renders."""
        done = self._done.pop(key, None)
        if done is not None:
            self._show(key, done)
            return
        self._wanted = key
        if key in self._running:
            return  # already rendering (a prefetch): shown the moment it arrives, no duplicate work
        self._submit(key, args, prefetch=False)

    def prefetch(
        self, items: Sequence[tuple[Hashable, Sequence[object]]], *, cached_only: bool = False
    ) -> None:
        """Render `items` (the frames likely next, nearest first) in the background; frames and renders
        no longer among them are dropped, except the one the user waits for and the one shown last.
        `cached_only`: render only frames whose predictions are already made (while an evaluation runs,
        predicting ahead would run the models twice; render returns None for the others)."""
        keep = {key for key, _ in items}
        if self._wanted is not None:
            keep.add(self._wanted)
        for key in [k for k in self._running if k not in keep]:
            self.pool.cancel(self._running.pop(key)[0])  # popped first: cancel() reports finished at once
        for key in [k for k in self._done if k not in keep and k != self._behind]:
            del self._done[key]
        shown = self._shown[0] if self._shown is not None else None
        for key, args in items:
            if key not in self._done and key not in self._running and key != shown:
                self._submit(key, args, prefetch=True, cached_only=cached_only)

    def clear(self) -> None:
        """Forget every rendered frame and cancel the prefetches (results or models changed). The frame the
        user waits for still arrives: what it depends on is in its key, so a newer request replaces it."""
        for key, (job, _) in list(self._running.items()):
            if key != self._wanted:
                del self._running[key]
                self.pool.cancel(job)
        self._done.clear()
        self._shown = None
        self._behind = None

    @property
    def at_hand(self) -> int:
        """How many rendered frames are kept besides the shown one."""
        return len(self._done)

    def _submit(
        self, key: Hashable, args: Sequence[object], *, prefetch: bool, cached_only: bool = False
    ) -> None:
        job = self.pool.submit(
            self.render,
            *args,
            group=PREFETCH_GROUP if prefetch else None,
            priority=0 if prefetch else 1,
            name="prefetch frame" if prefetch else "render frame",
            cached_only=cached_only,
        )
        self._running[key] = (job, args)
        job.signals.result.connect(lambda rendered, k=key, j=job: self._on_rendered(k, j, rendered))
        job.signals.finished.connect(lambda k=key, j=job: self._forget(k, j))

    def _forget(self, key: Hashable, job: Job) -> None:
        running = self._running.get(key)
        if running is not None and running[0] is job:
            del self._running[key]

    def _on_rendered(self, key: Hashable, job: Job, rendered: Any) -> None:
        running = self._running.get(key)
        if running is None or running[0] is not job:
            return  # cancelled or superseded while it rendered
        del self._running[key]
        if rendered is None:  # a cached-only prefetch whose predictions are not made yet
            if key == self._wanted:
                self._submit(key, running[1], prefetch=False)  # the user is here now: predict it
            return
        if key == self._wanted:
            self._show(key, rendered)
        else:
            self._done[key] = rendered

    def _show(self, key: Hashable, rendered: Any) -> None:
        self._wanted = None
        if self._shown is not None and self._shown[0] != key:
            self._behind, previous = self._shown
            self._done[self._behind] = previous  # stepping back is instant
        self._shown = (key, rendered)
        self.ready.emit(rendered)
