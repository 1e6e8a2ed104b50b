"""The project store: one SQLite file (WAL mode) holding a review session, plus the edited label PNGs.

A project remembers the dataset path, the models (paths or URLs only: API keys never go in here), the
class scheme, free settings (JSON), the review data of each image (`app.core.domain.review`) and which images
have edited labels. It lives by default beside the dataset as `<dataset>/seglens-project.sqlite`.

Edited labels never replace the dataset's ground truth: they are written atomically (temporary file,
fsync, rename) as Cityscapes labelIds PNGs under `<project dir>/edits/<key>_gtFine_labelIds.png` (for
Cityscapes `edits/<split>/<city>/<frame>_gtFine_labelIds.png`), and the original stays where it was.
`gt_path(ref, use_edited=...)` says which file metrics should read.

Safety rules, each tested (tests/test_project.py, tests/test_project_crash.py):

* A file from a newer SegLens, a damaged database or a non-SQLite file is refused with an InputError
  naming it, and is neither migrated nor modified.
* An older schema is migrated inside one transaction after a backup copy `<file>.v<N>-backup` is made.
* Killed at any moment (SIGKILL), the project reopens, every edited PNG is complete, and an `Autosaver`
  loses at most its interval (2 s by default) of edits.

One process writes a project at a time; within it every method is thread-safe (one lock, one connection).
`Autosaver` is in `app.core.storage.autosave` and the gtFine export in `app.core.storage.project_export`; both
are re-exported here.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from app.core.domain.errors import InputError
from app.core.domain.labels import ClassScheme, scheme_by_key
from app.core.domain.review import FlagVocabulary, ImageReview, reviews_to_csv, reviews_to_json
from app.core.io.datasets import SampleRef
from app.core.io.fileutil import atomic_write_bytes, atomic_write_text, clean_stale_temps
from app.core.io.imageio import encode_label_png, read_label
from app.core.io.paths import PROJECT_FILE_NAME as PROJECT_FILE_NAME
from app.core.io.paths import default_project_path as default_project_path

# Autosaver, SavedEdit and ExportSummary live in their own modules (which do not import this one) and
# are re-exported here, their historical home.
# Autosaver, SavedEdit and ExportSummary live in their own modules (which import this one only for
# annotations, so there is no import cycle) and are re-exported here, their historical home.
from app.core.storage.autosave import Autosaver as Autosaver
from app.core.storage.autosave import SavedEdit as SavedEdit
from app.core.storage.project_export import ExportSummary as ExportSummary
from app.core.storage.project_export import export_gtfine
from app.core.storage.project_lock import ProjectInUseError as ProjectInUseError
from app.core.storage.project_lock import ProjectLock

SCHEMA_VERSION = 1
EDITS_DIR_NAME = "edits"
EDIT_SUFFIX = "_gtFine_labelIds.png"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_V0_TABLES = frozenset({"project", "flags", "notes"})

_V1_SCHEMA = """
CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE models (location TEXT PRIMARY KEY, name TEXT NOT NULL, position INTEGER NOT NULL);
CREATE TABLE reviews (image_key TEXT PRIMARY KEY, data TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE edits (
    image_key TEXT PRIMARY KEY, edited_path TEXT NOT NULL, original_path TEXT,
    first_saved_at REAL NOT NULL, saved_at REAL NOT NULL, saves INTEGER NOT NULL
);
CREATE TABLE edit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT, image_key TEXT NOT NULL, action TEXT NOT NULL, at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class ModelEntry:
    """A model of the project: where it is (file path or URL) and the name shown."""

    location: str
    name: str = ""


@dataclass(frozen=True)
class EditRecord:
    """An image whose labels were edited: the edited PNG, its original, and when it was saved."""

    key: str
    path: Path
    original: Path | None
    first_saved_at: float
    saved_at: float
    saves: int


# -------------------------------------------------------------------------------------- schema versions


def _migrate_v0_to_v1(conn: sqlite3.Connection) -> None:
    """v0 (the prototype): `project(key, value)` with 'dataset' and 'scheme', `flags(image_key, flag)`,
    `notes(image_key, note)`. v1 keeps the same facts in `meta` and `reviews`."""
    _run_script(conn, _V1_SCHEMA)
    for key, value in conn.execute("SELECT key, value FROM project").fetchall():
        name = {"dataset": "dataset_path", "scheme": "scheme"}.get(key)
        if name is not None and value is not None:
            conn.execute("INSERT INTO meta VALUES (?, ?)", (name, str(value)))
    found: dict[str, ImageReview] = {}
    for image_key, flag in conn.execute("SELECT image_key, flag FROM flags ORDER BY rowid").fetchall():
        found[image_key] = found.get(image_key, ImageReview(image_key)).with_flag(flag)
    for image_key, note in conn.execute("SELECT image_key, note FROM notes").fetchall():
        found[image_key] = found.get(image_key, ImageReview(image_key)).with_note(note or "")
    vocabulary = FlagVocabulary()
    for review in found.values():
        for flag in vocabulary.unknown(review):
            vocabulary = vocabulary.with_flag(flag)
        conn.execute(
            "INSERT INTO reviews VALUES (?, ?, ?)", (review.key, json.dumps(review.to_dict()), time.time())
        )
    conn.execute("INSERT INTO meta VALUES ('flags', ?)", (json.dumps(list(vocabulary.names)),))
    _run_script(conn, "DROP TABLE project; DROP TABLE flags; DROP TABLE notes")


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # Not executescript: it commits first, which would break the migration's single transaction.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


# MIGRATIONS[n] turns schema n into n + 1, inside the caller's transaction. Add v2 as {1: _migrate_v1_to_v2}.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {0: _migrate_v0_to_v1}


def _probe(path: Path) -> int | None:
    """The schema version of an existing file (None: empty, a new project). Read-only: refuses what is
    not a SegLens project, damaged or newer, without touching it."""
    with path.open("rb") as handle:
        head = handle.read(len(_SQLITE_MAGIC))
    if not head:
        return None
    if head != _SQLITE_MAGIC:
        raise InputError(path, "not a SegLens project: the file is not an SQLite database (left untouched)")
    # immutable: no -wal/-shm files appear beside a file we then refuse. Only when a -wal file exists
    # (a crash left one) must its content be read, and then those files exist already.
    wal = path.with_name(path.name + "-wal")
    flags = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?{flags}", uri=True)
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check: {check[0] if check else 'no answer'}")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "schema_version" in tables:
                version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
            else:
                version = 0 if tables >= _V0_TABLES else (None if not tables else -1)
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise InputError(path, f"damaged project database ({exc}); not opened, left untouched") from exc
    if version == -1 or (version is not None and not isinstance(version, int)):
        raise InputError(path, "an SQLite database, but not a SegLens project (left untouched)")
    if version is not None and version > SCHEMA_VERSION:
        raise InputError(
            path,
            f"written by a newer SegLens (project schema v{version}; this version reads up to "
            f"v{SCHEMA_VERSION}). Update SegLens to open it; the file was not modified.",
        )
    return version


# ------------------------------------------------------------------------------------------ the project


class Project:
    """An open project. Use `Project.open`, `Project.create` or `Project.open_or_create`; close it (or use
    it as a context manager) when done."""

    def __init__(self, path: Path, conn: sqlite3.Connection, file_lock: ProjectLock | None = None) -> None:
        self.path = path
        self.directory = path.parent
        self.edits_dir = self.directory / EDITS_DIR_NAME
        self._conn = conn
        self._lock = threading.RLock()
        self._file_lock = file_lock

    # ----------------------------------------------------------------------------------- opening

    @classmethod
    def open(cls, path: str | Path) -> Project:
        """Open an existing project (migrating an older schema). Raises InputError naming the file."""
        target = Path(path)
        if not target.is_file():
            raise InputError(target, "no such project file")
        version = _probe(target)
        if version is None:
            raise InputError(target, "empty file: not a SegLens project (create one instead)")
        return cls._connect(target, version)

    @classmethod
    def create(cls, path: str | Path, dataset_root: str | Path, *, scheme: str = "labelids") -> Project:
        """A new project for `dataset_root`; refuses to replace an existing non-empty file."""
        target = Path(path)
        if target.exists() and target.stat().st_size > 0:
            raise InputError(target, "already exists: open it instead of creating a new project")
        target.parent.mkdir(parents=True, exist_ok=True)
        meta = {"scheme": scheme_by_key(scheme).key, **_dataset_meta(dataset_root, target.parent)}
        return cls._connect(target, None, meta)

    @classmethod
    def open_or_create(cls, path: str | Path, dataset_root: str | Path) -> Project:
        """Open `path` when it exists, else create it for `dataset_root`."""
        target = Path(path)
        if target.exists() and target.stat().st_size > 0:
            return cls.open(target)
        return cls.create(target, dataset_root)

    @classmethod
    def _connect(cls, path: Path, version: int | None, meta: dict[str, str] | None = None) -> Project:
        file_lock = ProjectLock.acquire(path)  # ProjectInUseError when another process has it open
        try:
            project = cls._connect_locked(path, version, meta, file_lock)
        except BaseException:
            file_lock.release()
            raise
        # Temporary files of atomic writes killed with kill -9: beside the project only when they are
        # old (other programs may write there), in edits/ at once (only the lock holder writes there).
        clean_stale_temps(path.parent)
        project._recover_edits_dir()
        return project

    @classmethod
    def _connect_locked(
        cls, path: Path, version: int | None, meta: dict[str, str] | None, file_lock: ProjectLock
    ) -> Project:
        if version is not None and version < SCHEMA_VERSION:
            # Before anything writes to it (even switching to WAL): the file as the older version left it.
            backup = path.with_name(f"{path.name}.v{version}-backup")
            with (
                contextlib.closing(sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)) as src,
                contextlib.closing(sqlite3.connect(backup)) as dest,
            ):
                src.backup(dest)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        try:
            if version is not None:
                # Re-read after recovery of a -wal file the read-only probe may not have replayed.
                now = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0] if version else 0
                if now is not None and now > SCHEMA_VERSION:
                    raise InputError(path, f"written by a newer SegLens (project schema v{now})")
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit survives power loss too; commits are rare (one per autosave), so it is cheap.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            project = cls(path, conn, file_lock)
            if version is None:
                with project._tx() as tx:  # one transaction: a crash leaves no half-created project
                    _run_script(tx, _V1_SCHEMA)
                    tx.execute("INSERT INTO schema_version VALUES (?, ?)", (SCHEMA_VERSION, time.time()))
                    tx.executemany("INSERT INTO meta VALUES (?, ?)", sorted((meta or {}).items()))
            elif version < SCHEMA_VERSION:
                project._migrate(version)
        except BaseException:
            conn.close()
            raise
        return project

    def _migrate(self, version: int) -> None:
        with self._tx() as conn:
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](conn)
                conn.execute("INSERT OR REPLACE INTO schema_version VALUES (?, ?)", (step + 1, time.time()))

    def _recover_edits_dir(self) -> None:
        """After a crash: drop temporary files of interrupted writes; adopt complete PNGs whose database
        row was not committed yet (the PNG is written first), so no saved edit is orphaned."""
        if not self.edits_dir.is_dir():
            return
        known = {record.path for record in self.edits()}
        clean_stale_temps(self.edits_dir, recursive=True, min_age_s=0.0)  # the lock: no live writer
        for root, _dirs, files in os.walk(self.edits_dir):
            for name in files:
                file = Path(root) / name
                if name.endswith(EDIT_SUFFIX) and file not in known:
                    key = file.relative_to(self.edits_dir).as_posix()[: -len(EDIT_SUFFIX)]
                    self._record_edit(key, file, None, "adopted")

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close."""
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.close()
            if self._file_lock is not None:
                self._file_lock.release()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # --------------------------------------------------------------------------------------- meta

    @property
    def schema_version(self) -> int:
        return int(self._query("SELECT MAX(version) FROM schema_version")[0][0])

    def _meta(self, key: str) -> str | None:
        rows = self._query("SELECT value FROM meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    def _set_meta(self, key: str, value: str) -> None:
        with self._tx() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    @property
    def dataset_path(self) -> Path | None:
        """The dataset folder; found again relative to the project when both were moved together."""
        absolute, relative = self._meta("dataset_path"), self._meta("dataset_relpath")
        if absolute is None:
            return None
        if not Path(absolute).exists() and relative is not None and (self.directory / relative).exists():
            return (self.directory / relative).resolve()
        return Path(absolute)

    def set_dataset_path(self, path: str | Path) -> None:
        for key, value in _dataset_meta(path, self.directory).items():
            self._set_meta(key, value)

    @property
    def scheme_key(self) -> str:
        """The class scheme of the ground truth ('labelids', 'trainids', 'categories')."""
        return self._meta("scheme") or "labelids"

    def set_scheme(self, key: str) -> None:
        self._set_meta("scheme", scheme_by_key(key).key)

    @property
    def settings(self) -> dict[str, Any]:
        """Free per-project settings (a JSON object), e.g. opacity, the models compared, the split."""
        text = self._meta("settings")
        value = json.loads(text) if text else {}
        return value if isinstance(value, dict) else {}

    def set_settings(self, settings: dict[str, Any]) -> None:
        try:
            text = json.dumps(settings, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"project settings must be plain JSON: {exc}") from exc
        self._set_meta("settings", text)

    # ------------------------------------------------------------------------------------- models

    def models(self) -> list[ModelEntry]:
        rows = self._query("SELECT location, name FROM models ORDER BY position")
        return [ModelEntry(location, name) for location, name in rows]

    def set_models(self, models: Iterable[ModelEntry]) -> None:
        """Replace the model list (order kept). URLs with credentials in them are refused."""
        entries = list(models)
        for entry in entries:
            _check_location(entry.location)
        with self._tx() as conn:
            conn.execute("DELETE FROM models")
            conn.executemany(
                "INSERT INTO models VALUES (?, ?, ?)",
                [(e.location, e.name, i) for i, e in enumerate(entries)],
            )

    # ------------------------------------------------------------------------------------ reviews

    def flag_vocabulary(self) -> FlagVocabulary:
        text = self._meta("flags")
        return FlagVocabulary(tuple(json.loads(text))) if text else FlagVocabulary()

    def add_flag(self, name: str) -> FlagVocabulary:
        """Offer a user-defined flag from now on."""
        vocabulary = self.flag_vocabulary().with_flag(name)
        self._set_meta("flags", json.dumps(list(vocabulary.names)))
        return vocabulary

    def review(self, key: str) -> ImageReview:
        """The review of image `key` (an empty one when nothing was noted)."""
        rows = self._query("SELECT data FROM reviews WHERE image_key = ?", (key,))
        return ImageReview.from_dict(json.loads(rows[0][0])) if rows else ImageReview(key)

    def set_review(self, review: ImageReview) -> None:
        """Save (an empty review deletes the row). Flags must be in the vocabulary: see `add_flag`."""
        unknown = self.flag_vocabulary().unknown(review)
        if unknown:
            raise ValueError(f"unknown flags {', '.join(unknown)}: add them to the project first")
        with self._tx() as conn:
            if review.is_empty:
                conn.execute("DELETE FROM reviews WHERE image_key = ?", (review.key,))
            else:
                conn.execute(
                    "INSERT OR REPLACE INTO reviews VALUES (?, ?, ?)",
                    (review.key, json.dumps(review.to_dict()), time.time()),
                )

    def reviews(self) -> list[ImageReview]:
        rows = self._query("SELECT data FROM reviews ORDER BY image_key")
        return [ImageReview.from_dict(json.loads(data)) for (data,) in rows]

    def keys_with_flag(self, flag: str) -> list[str]:
        return [r.key for r in self.reviews() if r.has_flag(flag)]

    def export_reviews_json(self, path: str | Path) -> None:
        atomic_write_text(path, reviews_to_json(self.reviews(), self.flag_vocabulary()))

    def export_reviews_csv(self, path: str | Path) -> None:
        atomic_write_text(path, reviews_to_csv(self.reviews()))

    # -------------------------------------------------------------------------------------- edits

    def edited_path(self, ref: SampleRef) -> Path:
        """Where the edited labels of `ref` are (or would be) kept: under edits/, never the dataset's GT."""
        parts = PurePosixPath(ref.key).parts
        if not parts or PurePosixPath(ref.key).is_absolute() or any(p in ("..", ".") for p in parts):
            raise ValueError(f"image key {ref.key!r} cannot name a file under the project")
        path = self.edits_dir.joinpath(*parts[:-1], parts[-1] + EDIT_SUFFIX)
        if ref.gt_path is not None and path.resolve() == Path(ref.gt_path).resolve():
            raise ValueError(f"{path}: would overwrite the dataset's ground truth; move the project")
        return path

    def save_edit(self, ref: SampleRef, labels: np.ndarray) -> EditRecord:
        """Write the edited labels (labelIds PNG, atomically: temp, fsync, rename) and record them."""
        path = self.edited_path(ref)
        atomic_write_bytes(path, encode_label_png(labels))
        return self._record_edit(ref.key, path, ref.gt_path, "save")

    def _record_edit(self, key: str, path: Path, original: Path | None, action: str) -> EditRecord:
        now = time.time()
        relative = path.relative_to(self.directory).as_posix()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO edits VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT(image_key) DO UPDATE SET "
                "edited_path = excluded.edited_path, original_path = COALESCE(excluded.original_path, "
                "original_path), saved_at = excluded.saved_at, saves = saves + 1",
                (key, relative, None if original is None else str(original), now, now),
            )
            conn.execute("INSERT INTO edit_log (image_key, action, at) VALUES (?, ?, ?)", (key, action, now))
            row = conn.execute("SELECT * FROM edits WHERE image_key = ?", (key,)).fetchone()
        return self._to_record(row)

    def discard_edit(self, ref: SampleRef) -> None:
        """Go back to the original labels: delete the edited PNG and its record (logged)."""
        record = self.edit_record(ref.key)
        if record is None:
            return
        with self._tx() as conn:
            conn.execute("DELETE FROM edits WHERE image_key = ?", (ref.key,))
            conn.execute(
                "INSERT INTO edit_log (image_key, action, at) VALUES (?, 'discard', ?)",
                (ref.key, time.time()),
            )
        record.path.unlink(missing_ok=True)

    def edit_record(self, key: str) -> EditRecord | None:
        rows = self._query("SELECT * FROM edits WHERE image_key = ?", (key,))
        return self._to_record(rows[0]) if rows else None

    def edits(self) -> list[EditRecord]:
        """Every image with edited labels, by key."""
        return [self._to_record(row) for row in self._query("SELECT * FROM edits ORDER BY image_key")]

    def edit_log(self, key: str | None = None) -> list[tuple[str, str, float]]:
        """(image key, action, time) of every save / discard / adoption, oldest first."""
        where, args = ("WHERE image_key = ?", (key,)) if key is not None else ("", ())
        rows = self._query(f"SELECT image_key, action, at FROM edit_log {where} ORDER BY id", args)
        return [(str(k), str(action), float(at)) for k, action, at in rows]

    def _to_record(self, row: tuple[Any, ...]) -> EditRecord:
        key, edited, original, first, saved, saves = row
        return EditRecord(
            key, self.directory / edited, Path(original) if original else None, first, saved, saves
        )

    def original_gt(self, ref: SampleRef) -> Path | None:
        """The dataset's own label file (never written by SegLens)."""
        return ref.gt_path

    def edited_gt(self, ref: SampleRef) -> Path | None:
        """The edited label file, when this image was edited and saved."""
        record = self.edit_record(ref.key)
        return record.path if record is not None and record.path.is_file() else None

    def gt_path(self, ref: SampleRef, *, use_edited: bool = True) -> Path | None:
        """The labels metrics should read: the edited file when `use_edited` and one exists."""
        return gt_path_for(self, ref, use_edited=use_edited)

    def load_gt(self, ref: SampleRef, scheme: ClassScheme, *, use_edited: bool = True) -> np.ndarray | None:
        """The labels to show or edit (a writable copy), or None when the image has no GT. Edited maps
        skip the trainIds heuristic: a map erased to mostly void is a legitimate edit."""
        path = self.gt_path(ref, use_edited=use_edited)
        if path is None:
            return None
        labels, _ = read_label(path, scheme, detect_trainids=path == ref.gt_path)
        return labels.copy()

    def export_gtfine(self, out_dir: str | Path, refs: Iterable[SampleRef]) -> ExportSummary:
        """Write `out_dir/gtFine/<split>/<city>/` for every ref: labelIds (edited or original), instanceIds
        copied unchanged (they may disagree with edited labels), colour copied, or regenerated when the
        labels were edited. Refuses to write over a source file."""
        palette = scheme_by_key(self.scheme_key).palette()
        return export_gtfine(Path(out_dir), list(refs), palette=palette, gt_path=self.gt_path)


def gt_path_for(project: Project | None, ref: SampleRef, *, use_edited: bool = True) -> Path | None:
    """The GT file to evaluate `ref` against: the project's edit when asked for and present, else the
    dataset's original (also when there is no project)."""
    if use_edited and project is not None:
        edited = project.edited_gt(ref)
        if edited is not None:
            return edited
    return ref.gt_path


def _dataset_meta(dataset_root: str | Path, project_dir: Path) -> dict[str, str]:
    """The dataset path, absolute and (when possible) relative to the project, for moving both."""
    absolute = Path(dataset_root).absolute()
    meta = {"dataset_path": str(absolute)}
    with contextlib.suppress(ValueError):  # another drive (Windows): no relative form
        meta["dataset_relpath"] = os.path.relpath(absolute, project_dir.absolute())
    return meta


def _check_location(location: str) -> None:
    if not location or not isinstance(location, str):
        raise ValueError("a model needs a path or URL")
    if "://" in location:
        parts = urlsplit(location)
        if parts.username or parts.password:
            raise ValueError(f"refusing to store credentials in the project: {parts.hostname}")
