"""Atomic file writes: a crash leaves either the old file or the new one, never a torn one."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from app.core.domain.errors import InputError


def _read_umask() -> int:
    # os.umask can only be read by setting it; done once at import, before worker threads exist.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, durable: bool = True) -> Iterator[IO[bytes]]:
    """Open a temporary file beside `path`; on success fsync it and rename it over `path`. `durable=False`
    skips the fsyncs: the rename still never shows a half-written file to a reader, but a power cut may
    lose it (fine for caches, which check what they read)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The temporary name adds 14 characters: cut long names so that a 250-byte target still has one.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name[:100]}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    # mkstemp creates 0600; give the file the mode a plain open() would (0666 minus the umask).
    with contextlib.suppress(OSError, AttributeError):
        os.fchmod(fd, 0o666 & ~_UMASK)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        tmp.replace(target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if durable:
        _fsync_dir(target.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform (Windows), hence best effort.
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> None:
    """Write `data` to `path` atomically (see atomic_open for `durable`)."""
    with atomic_open(path, "wb", durable=durable) as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # file names from a non-UTF-8 listing: written as %XX, never a crash
        data = printable(text).encode("utf-8", "replace")
    atomic_write_bytes(path, data)


# --- output targets, checked before any work ----------------------------------------------------------


def _nearest_existing(path: Path) -> Path:
    current = path
    while not current.exists() and current.parent != current:
        current = current.parent
    return current


def _probe_writable(directory: Path, what: str, target: Path) -> None:
    """Create and remove a temporary file in `directory`: os.access says yes to root on a read-only
    mount and no to nothing useful, so only trying tells the truth."""
    try:
        fd, name = tempfile.mkstemp(prefix=".seglens-probe.", suffix=".tmp", dir=directory)
    except OSError as exc:
        problem = f"cannot write the {what} here: {directory} is not writable ({exc.strerror})"
        raise InputError(target, problem) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        Path(name).unlink()


def check_output_file(path: str | Path, what: str = "output file") -> Path:
    """Refuse at once (InputError naming `path`) an output file that could not be written later: a folder,
    a non-regular file (FIFO, device), a parent that is a file, a read-only place. A missing parent folder
    is fine when it can be created (atomic_open creates it). Returns the path."""
    target = Path(path)
    if target.is_dir():
        raise InputError(target, f"is a folder; the {what} must be a file path")
    if target.exists() and not target.is_file():
        raise InputError(target, f"is not a regular file (a FIFO, socket or device); cannot write the {what}")
    existing = _nearest_existing(target.parent)
    if not existing.is_dir():
        raise InputError(target, f"cannot write the {what}: {existing} is a file, not a folder")
    _probe_writable(existing, what, target)
    return target


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Refuse at once (InputError naming `path`) an output folder that is a file or cannot be created or
    written. Returns the path."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise InputError(target, f"is a file; the {what} must be a folder")
    existing = _nearest_existing(target)
    if not existing.is_dir():
        raise InputError(target, f"cannot create the {what}: {existing} is a file, not a folder")
    _probe_writable(existing, what, target)
    return target


# --- safe file names -----------------------------------------------------------------------------------

_MAX_NAME_BYTES = 200  # below every common file system's 255-byte limit, leaving room for suffixes
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f/\\:*?"<>|]')


def safe_file_name(name: str, suffix: str = "", *, max_bytes: int = _MAX_NAME_BYTES) -> str:
    """`name + suffix` as one file name every file system takes: path separators and control characters
    replaced, undecodable bytes (surrogate escapes from a non-UTF-8 listing) written as %XX, and a name too
    long for the file system shortened with a hash of the whole, so distinct names stay distinct."""
    raw = name.encode("utf-8", "surrogatepass")  # any str, for the hash only
    text = _UNSAFE_CHARS.sub("_", printable(name))
    budget = max_bytes - len(suffix.encode("utf-8"))
    if len(text.encode("utf-8")) <= budget:
        return text + suffix
    digest = hashlib.sha256(raw).hexdigest()[:12]
    head = text.encode("utf-8")[: max(1, budget - len(digest) - 1)].decode("utf-8", "ignore")
    return f"{head}-{digest}{suffix}"


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _percent(raw: bytes) -> str:
    """Decode UTF-8 where it is valid; write every undecodable byte as %XX."""
    out: list[str] = []
    for part in raw.decode("utf-8", "surrogateescape"):
        out.append(f"%{ord(part) - 0xDC00:02X}" if "\udc80" <= part <= "\udcff" else part)
    return "".join(out)


def printable(text: str) -> str:
    """Text that can be encoded as UTF-8 (JSON, HTML, a terminal): surrogate escapes become %XX."""
    if not _has_surrogates(text):
        return text
    try:
        return _percent(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return text.encode("utf-8", "replace").decode("utf-8")


# --- stale temporary files -------------------------------------------------------------------------------

# atomic_open's temporary names: "." + target name + "." + mkstemp's 8 random characters + ".tmp".
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{6,}\.tmp$")
STALE_TEMP_AGE_S = 60.0


def clean_stale_temps(
    directory: str | Path, *, recursive: bool = False, min_age_s: float = STALE_TEMP_AGE_S
) -> int:
    """Remove atomic_open temporaries left by a killed process (kill -9 runs no cleanup) in `directory`:
    only names of atomic_open's pattern, only regular files older than `min_age_s` (a live writer's file
    is younger). Returns how many were removed; unreadable folders are left alone."""
    now = time.time()
    removed = 0
    folders = [Path(directory)]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if recursive and entry.is_dir(follow_symlinks=False):
                        folders.append(Path(entry.path))
                    elif _TEMP_NAME.match(entry.name) and entry.is_file(follow_symlinks=False):
                        with contextlib.suppress(OSError):
                            if now - entry.stat(follow_symlinks=False).st_mtime >= min_age_s:
                                Path(entry.path).unlink()
                                removed += 1
        except OSError:
            continue
    return removed
