"""Background saving of edited labels: `Autosaver` writes each dirty `LabelEditor` through a `Project`,
so a crash (even SIGKILL) loses at most one interval (2 s by default) of edits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from app.core.domain.label_edit import LabelEditor
from app.core.io.datasets import SampleRef


class StoredEdit(Protocol):
    """Where and when an edit was written (`app.core.storage.project.EditRecord` is one)."""

    @property
    def path(self) -> Path: ...

    @property
    def saved_at(self) -> float: ...


class EditStore(Protocol):
    """What the autosaver writes through (`app.core.storage.project.Project` is one): this module needs only
    `save_edit`, so it does not import the project module, which re-exports `Autosaver`."""

    def save_edit(self, ref: SampleRef, labels: np.ndarray) -> StoredEdit: ...


@dataclass(frozen=True)
class SavedEdit:
    """One image written by an autosave flush: which editor revision is now on disk, and when."""

    key: str
    revision: int
    path: Path
    saved_at: float


class Autosaver:
    """Writes edited labels in the background of editing, so a crash loses at most `interval_s` of work.

    The GUI calls `mark_dirty(ref, editor)` after every change (cheap: a dict entry under a lock) and
    either `flush_if_due()` from a short QTimer, or `start()` for a thread that flushes on its own; and
    `flush()` when switching image or closing. Deadline-based: the first unsaved change starts the clock,
    and the flush starts early by the last flush's duration so that it *ends* within `interval_s`.
    `flush` snapshots each editor under its lock (a consistent map even mid-stroke), skips editors whose
    revision is already saved (`editor.saved_revision`) and marks the others saved. An editor made for
    an image counts as saved at revision 0, so build it from `Project.load_gt` (the edited labels when
    there are some). Thread-safe; flushes never overlap.
    """

    def __init__(
        self,
        project: EditStore,
        interval_s: float = 2.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_saved: Callable[[list[SavedEdit]], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.project = project
        self.interval_s = interval_s
        self._clock = clock
        self._on_saved = on_saved
        self._on_error = on_error
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pending: dict[str, tuple[SampleRef, LabelEditor]] = {}
        self._since: float | None = None
        self._flush_cost = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def mark_dirty(self, ref: SampleRef, editor: LabelEditor) -> None:
        """Note that `editor` (the labels of `ref`) changed and must be saved."""
        with self._lock:
            self._pending[ref.key] = (ref, editor)
            if self._since is None:
                self._since = self._clock()

    @property
    def pending(self) -> bool:
        with self._lock:
            return bool(self._pending)

    def seconds_until_due(self) -> float | None:
        """When the next flush should start (0 when due now); None when nothing waits."""
        with self._lock:
            if self._since is None:
                return None
            budget = self.interval_s - min(self._flush_cost, self.interval_s / 2)
            return max(0.0, self._since + budget - self._clock())

    def flush_if_due(self) -> list[SavedEdit]:
        wait = self.seconds_until_due()
        return self.flush() if wait is not None and wait <= 0 else []

    def flush(self) -> list[SavedEdit]:
        """Write every pending editor whose revision is not on disk yet; returns what was written.
        On an error the unsaved images stay pending and the error is raised."""
        with self._flush_lock:
            started = self._clock()
            with self._lock:
                pending, self._pending, self._since = self._pending, {}, None
            saved: list[SavedEdit] = []
            for position, (key, (ref, editor)) in enumerate(pending.items()):
                revision, labels = editor.snapshot()
                if revision == editor.saved_revision:  # already on disk (or never changed)
                    continue
                try:
                    record = self.project.save_edit(ref, labels)
                except BaseException:
                    self._requeue(list(pending.items())[position:], started)
                    raise
                editor.mark_saved(revision)
                saved.append(SavedEdit(key, revision, record.path, record.saved_at))
            self._flush_cost = self._clock() - started
        if saved and self._on_saved is not None:
            self._on_saved(saved)
        return saved

    def _requeue(self, items: list[tuple[str, tuple[SampleRef, LabelEditor]]], since: float) -> None:
        with self._lock:
            for key, entry in items:
                self._pending.setdefault(key, entry)
            self._since = since if self._since is None else min(self._since, since)

    def start(self) -> None:
        """Flush from a daemon thread whenever due (for headless use or instead of a QTimer)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="seglens-autosave", daemon=True)
        self._thread.start()

    def stop(self, *, flush: bool = True) -> None:
        """Stop the thread (if started) and, by default, write what is still pending."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if flush:
            self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.seconds_until_due()
            # Poll at least 10 times per interval so a change marked just after a check is not late.
            self._stop.wait(min(self.interval_s / 10, wait if wait is not None else self.interval_s))
            try:
                self.flush_if_due()
            except Exception as exc:  # reported, retried at the next deadline; the thread must live on
                if self._on_error is not None:
                    self._on_error(exc)
