"""One process at a time per project: a lock file beside it, held with an OS lock while it is open.

`<project>.lock` holds the pid and start time of the process that has the project open. The OS lock
(flock on POSIX, msvcrt.locking on Windows) is what excludes: the kernel drops it when the process dies,
even by kill -9, so a lock file left by a dead process is simply taken over; the pid in it is only there
to tell a second process who holds the project ("in use by process 1234 (started 10:02:11)").

SQLite's own locking cannot say who holds a database, and WAL mode lets two writers interleave their
transactions, which is how two windows on one project lost flags and tags.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import socket
import time
from pathlib import Path

from app.core.domain.errors import InputError

_log = logging.getLogger(__name__)
_ATTEMPTS = 5


class ProjectInUseError(InputError):
    """The project is open in another process (or another window of this one)."""


def lock_path(project: Path) -> Path:
    """The lock file of a project file."""
    return project.with_name(project.name + ".lock")


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(path: Path) -> str:
    """'process 1234 on host (started 2026-12-02 10:02:11)' from the lock file, as far as it says."""
    try:
        pid, started, host = [*path.read_text(encoding="utf-8").split("\n"), "", "", ""][:3]
    except OSError:
        return "another process"
    try:
        when = datetime.datetime.fromtimestamp(float(started)).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        when = "at an unknown time"
    where = f" on {host}" if host and host != socket.gethostname() else ""
    return f"process {pid or '?'}{where} (started {when})"


class ProjectLock:
    """The held lock of one open project. `release` (idempotent) unlocks and removes the lock file."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, project: Path) -> ProjectLock:
        """Lock `project` for this process, or raise ProjectInUseError naming the holder."""
        path = lock_path(project)
        for _ in range(_ATTEMPTS):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                os.close(fd)
                raise ProjectInUseError(
                    project,
                    f"in use by {_holder(path)}; close it there first (two processes editing one project "
                    "would lose each other's flags, tags and edits)",
                )
            # The previous holder may have removed the file between our open and our lock: then we hold
            # a lock on a file nobody else can see. Lock the file at the path instead.
            try:
                same = os.fstat(fd).st_ino == path.stat().st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            previous = _holder(path)
            if os.fstat(fd).st_size:
                _log.info("%s: took over the lock left by %s (no longer running)", project, previous)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n{time.time():.3f}\n{socket.gethostname()}".encode())
            return cls(path, fd)
        raise ProjectInUseError(project, "the lock file keeps changing: another process is opening it")

    def release(self) -> None:
        """Remove the lock file (while still holding the lock, so a waiting process sees it go) and
        unlock. Idempotent."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None
