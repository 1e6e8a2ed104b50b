"""The project store: round trip, migrations, refusals that leave the file untouched, edits beside the
original GT, exports, the autosaver."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.core.domain.errors import InputError
from app.core.domain.label_edit import LabelEditor
from app.core.domain.labels import LABELIDS
from app.core.domain.review import ImageReview, RegionBox
from app.core.io.datasets import open_dataset
from app.core.io.imageio import read_label
from app.core.scenes.generator import generate
from app.core.storage.project import (
    SCHEMA_VERSION,
    Autosaver,
    ModelEntry,
    Project,
    default_project_path,
    gt_path_for,
)


@pytest.fixture(scope="module")
def source_dataset(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("data") / "cityscapes", 3, (64, 128))


@pytest.fixture
def dataset(source_dataset, tmp_path):
    # A private copy: tests write projects and edits beside it.
    root = shutil.copytree(source_dataset, tmp_path / "cityscapes")
    return open_dataset(root)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): digest(p) for p in sorted(root.rglob("*")) if p.is_file()}


def load_gt(path: Path) -> np.ndarray:
    labels, _ = read_label(path, LABELIDS, detect_trainids=False)
    return labels


def test_round_trip(dataset) -> None:
    path = default_project_path(dataset.root)
    assert path == dataset.root / "seglens-project.sqlite"
    review = ImageReview(dataset.refs[0].key).with_flag("to-correct").with_box(RegionBox(1, 2, 3, 4, "x"))
    with Project.create(path, dataset.root) as project:
        project.set_models([ModelEntry("/models/a.onnx", "A"), ModelEntry("https://host/v2/models/b", "B")])
        project.set_settings({"opacity": 0.4, "split": "val"})
        project.add_flag("occlusion")
        project.set_review(review.with_flag("occlusion"))
        project.set_review(ImageReview(dataset.refs[1].key))  # empty: nothing stored
        with pytest.raises(ValueError, match="unknown flags"):
            project.set_review(review.with_flag("never-added"))
        with pytest.raises(ValueError, match="credentials"):
            project.set_models([ModelEntry("https://user:secret@host/m")])
        with pytest.raises(ValueError, match="JSON"):
            project.set_settings({"bad": object()})
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Project.open(path) as project:
        assert project.schema_version == SCHEMA_VERSION
        assert project.dataset_path == dataset.root.absolute()
        assert project.scheme_key == "labelids"
        assert [m.name for m in project.models()] == ["A", "B"]
        assert project.settings == {"opacity": 0.4, "split": "val"}
        assert project.reviews() == [review.with_flag("occlusion")]
        assert project.keys_with_flag("occlusion") == [dataset.refs[0].key]
        assert project.review("unknown/key").is_empty
        assert "occlusion" in project.flag_vocabulary()
    with pytest.raises(InputError, match="already exists"):
        Project.create(path, dataset.root)


def test_dataset_is_found_again_when_moved_with_the_project(dataset, tmp_path) -> None:
    Project.create(default_project_path(dataset.root), dataset.root).close()
    moved = dataset.root.rename(tmp_path / "moved")
    with Project.open(default_project_path(moved)) as project:
        assert project.dataset_path == moved.resolve()


def test_edits_are_kept_beside_the_untouched_original(dataset) -> None:
    ref = dataset.refs[0]
    originals = tree_digests(dataset.root / "gtFine")
    with Project.create(default_project_path(dataset.root), dataset.root) as project:
        assert project.edited_gt(ref) is None and project.gt_path(ref) == ref.gt_path
        labels = load_gt(ref.gt_path).copy()
        editor = LabelEditor(labels)
        editor.dab((20, 20), 6, 26)
        record = project.save_edit(ref, editor.labels)
        assert (
            record.path == project.directory / "edits" / "val" / ref.city / f"{ref.frame}_gtFine_labelIds.png"
        )
        assert project.edited_gt(ref) == record.path and project.original_gt(ref) == ref.gt_path
        assert np.array_equal(project.load_gt(ref, LABELIDS), labels)
        assert np.array_equal(project.load_gt(ref, LABELIDS, use_edited=False), load_gt(ref.gt_path))
        assert np.array_equal(load_gt(record.path), labels)
        assert gt_path_for(project, ref, use_edited=True) == record.path
        assert gt_path_for(project, ref, use_edited=False) == ref.gt_path
        assert gt_path_for(None, ref) == ref.gt_path
        project.save_edit(ref, editor.labels)
        assert project.edit_record(ref.key).saves == 2
        project.discard_edit(ref)
        assert project.edited_gt(ref) is None and not record.path.exists()
        assert [a for _, a, _ in project.edit_log(ref.key)] == ["save", "save", "discard"]
    assert tree_digests(dataset.root / "gtFine") == originals


def test_a_project_inside_the_gt_folder_cannot_overwrite_it(dataset) -> None:
    ref = dataset.refs[0]
    gt_root = dataset.root / "gtFine"
    with Project.create(dataset.root / "inside.sqlite", dataset.root) as project:
        project.edits_dir = gt_root  # the worst placement a user could reach
        before = digest(ref.gt_path)
        with pytest.raises(ValueError, match="overwrite"):
            project.save_edit(ref, load_gt(ref.gt_path))
        assert digest(ref.gt_path) == before


def write_v0(path: Path) -> None:
    """The prototype's schema, written by hand: no version table, flags and notes in their own tables."""
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE project (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE flags (image_key TEXT NOT NULL, flag TEXT NOT NULL);
            CREATE TABLE notes (image_key TEXT PRIMARY KEY, note TEXT NOT NULL);
            INSERT INTO project VALUES ('dataset', '/data/cityscapes'), ('scheme', 'trainids');
            INSERT INTO flags VALUES ('val/a/a_1', 'to-correct'), ('val/a/a_1', 'Sky-Bleed'),
                                     ('val/b/b_2', 'resolved');
            INSERT INTO notes VALUES ('val/a/a_1', 'sky leaks into trees'), ('val/c/c_3', 'fine');
            """
        )
    conn.close()


def test_migration_from_v0_keeps_the_data_and_a_backup(tmp_path) -> None:
    path = tmp_path / "old.sqlite"
    write_v0(path)
    with sqlite3.connect(path) as conn:
        original = {t: conn.execute(f"SELECT * FROM {t}").fetchall() for t in ("project", "flags", "notes")}
    conn.close()
    with Project.open(path) as project:
        assert project.schema_version == 1
        assert project.dataset_path == Path("/data/cityscapes") and project.scheme_key == "trainids"
        reviews = {r.key: r for r in project.reviews()}
        assert reviews["val/a/a_1"].flags == ("to-correct", "sky-bleed")
        assert reviews["val/a/a_1"].note == "sky leaks into trees"
        assert reviews["val/b/b_2"].flags == ("resolved",) and reviews["val/c/c_3"].note == "fine"
        assert "sky-bleed" in project.flag_vocabulary()
    backup = sqlite3.connect(tmp_path / "old.sqlite.v0-backup")
    for table in ("project", "flags", "notes"):
        assert backup.execute(f"SELECT * FROM {table}").fetchall() == original[table]
    backup.close()
    with Project.open(path) as project:  # a second open does not migrate again
        assert len(project.reviews()) == 3


def make_newer(path: Path) -> None:
    Project.create(path, path.parent).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    conn.close()


def make_corrupt(path: Path) -> None:
    Project.create(path, path.parent).close()
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xa5" * (4096 - 100)  # the schema page: header kept, content garbage
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "make, problem",
    [
        (make_newer, "newer SegLens"),
        (make_corrupt, "damaged"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(500)), "not an SQLite database"),
        (lambda p: p.write_text('{"project": 1}'), "not an SQLite database"),
        (lambda p: sqlite3.connect(p).execute("CREATE TABLE other (x)").connection.commit(), "not a SegLens"),
    ],
)
def test_refused_files_are_named_and_left_untouched(tmp_path, make, problem) -> None:
    path = tmp_path / "project.sqlite"
    make(path)
    before = tree_digests(tmp_path)
    with pytest.raises(InputError, match=problem) as info:
        Project.open(path)
    assert info.value.path == path
    with pytest.raises(InputError):
        Project.open_or_create(path, tmp_path)
    assert tree_digests(tmp_path) == before  # same bytes, no new files (no -wal, no backup)


def test_an_empty_file_is_not_opened_but_may_become_a_project(tmp_path) -> None:
    path = tmp_path / "project.sqlite"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        Project.open(path)
    with Project.open_or_create(path, tmp_path) as project:
        assert project.schema_version == SCHEMA_VERSION


def test_exports(dataset, tmp_path) -> None:
    edited_ref, plain_ref = dataset.refs[0], dataset.refs[1]
    with Project.create(default_project_path(dataset.root), dataset.root) as project:
        labels = load_gt(edited_ref.gt_path).copy()
        LabelEditor(labels).fill_polygon([(0, 0), (40, 0), (40, 30)], 26)
        project.save_edit(edited_ref, labels)
        project.set_review(ImageReview(plain_ref.key).with_flag("to-review").with_note('a, b; "c"'))
        summary = project.export_gtfine(tmp_path / "out", dataset.refs)
        project.export_reviews_csv(tmp_path / "reviews.csv")
        project.export_reviews_json(tmp_path / "reviews.json")
        with pytest.raises(InputError, match="overwrite"):
            project.export_gtfine(dataset.root, dataset.refs)
    assert summary.images == 3 and summary.edited == 1 and summary.without_gt == ()
    out = tmp_path / "out" / "gtFine" / "val"
    exported = (
        open_dataset(tmp_path / "out", split="val") if (tmp_path / "out" / "leftImg8bit").exists() else None
    )
    assert exported is None  # only gtFine is exported; images stay where they are
    edited_dir, plain_dir = out / edited_ref.city, out / plain_ref.city
    assert np.array_equal(load_gt(edited_dir / f"{edited_ref.frame}_gtFine_labelIds.png"), labels)
    color = np.asarray(Image.open(edited_dir / f"{edited_ref.frame}_gtFine_color.png"))
    assert np.array_equal(color, LABELIDS.palette()[labels])  # regenerated from the edit
    for name in ("labelIds", "instanceIds", "color"):
        copied = plain_dir / f"{plain_ref.frame}_gtFine_{name}.png"
        assert digest(copied) == digest(plain_ref.gt_path.with_name(f"{plain_ref.frame}_gtFine_{name}.png"))
    assert digest(edited_dir / f"{edited_ref.frame}_gtFine_instanceIds.png") == digest(
        edited_ref.instance_path
    )
    rows = list(csv.DictReader((tmp_path / "reviews.csv").open(encoding="utf-8")))
    assert rows == [
        {"key": plain_ref.key, "flags": "to-review", "tags": "", "note": 'a, b; "c"', "boxes": ""}
    ]
    data = json.loads((tmp_path / "reviews.json").read_text(encoding="utf-8"))
    assert data["images"][0]["key"] == plain_ref.key and "to-correct" in data["flags"]


def test_reopening_after_a_crash_cleans_temp_files_and_adopts_unrecorded_pngs(dataset) -> None:
    ref = dataset.refs[2]
    path = default_project_path(dataset.root)
    Project.create(path, dataset.root).close()
    with Project.open(path) as project:
        target = project.edited_path(ref)
    target.parent.mkdir(parents=True)
    torn = target.with_name(f".{target.name}.abc123.tmp")
    torn.write_bytes(b"\x89PNG half")
    Image.fromarray(load_gt(ref.gt_path)).save(target)  # written, but the kill came before the commit
    with Project.open(path) as project:
        assert not torn.exists()
        assert project.edited_gt(ref) == target
        assert project.edit_log(ref.key)[0][1] == "adopted"


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_autosaver_deadline_skip_and_flush(dataset) -> None:
    ref = dataset.refs[0]
    clock = FakeClock()
    saved_batches = []
    with Project.create(default_project_path(dataset.root), dataset.root) as project:
        saver = Autosaver(project, 2.0, clock=clock, on_saved=saved_batches.append)
        editor = LabelEditor(load_gt(ref.gt_path).copy())
        assert saver.seconds_until_due() is None and saver.flush_if_due() == []
        editor.dab((5, 5), 3, 24)
        saver.mark_dirty(ref, editor)
        clock.now += 1.0
        editor.dab((50, 30), 3, 24)
        saver.mark_dirty(ref, editor)  # the deadline runs from the first unsaved change
        assert saver.seconds_until_due() == pytest.approx(1.0)
        assert saver.flush_if_due() == []
        clock.now += 1.0
        [saved] = saver.flush_if_due()
        assert saved.revision == editor.revision == 2 and not editor.dirty
        assert np.array_equal(load_gt(saved.path), editor.labels)
        saver.mark_dirty(ref, editor)  # marked again without a change: nothing to write
        assert saver.flush() == [] and len(saved_batches) == 1
        # The image reopened in a new editor (revision counting restarts): its first change is written.
        reopened = LabelEditor(project.load_gt(ref, LABELIDS))
        reopened.dab((90, 40), 2, 33)
        saver.mark_dirty(ref, reopened)
        assert [s.revision for s in saver.flush()] == [1]
        assert np.array_equal(project.load_gt(ref, LABELIDS), reopened.labels)


def test_autosaver_keeps_pending_edits_when_a_save_fails(dataset, monkeypatch) -> None:
    ref = dataset.refs[0]
    with Project.create(default_project_path(dataset.root), dataset.root) as project:
        saver = Autosaver(project, 0.5)
        editor = LabelEditor(load_gt(ref.gt_path).copy())
        editor.dab((5, 5), 3, 24)
        saver.mark_dirty(ref, editor)

        def disk_full(*args, **kwargs):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(project, "save_edit", disk_full)
        with pytest.raises(OSError, match="space"):
            saver.flush()
        assert saver.pending and editor.dirty
        monkeypatch.undo()
        assert [s.key for s in saver.flush()] == [ref.key] and not saver.pending


def test_autosaver_thread_saves_within_the_interval(dataset) -> None:
    ref = dataset.refs[0]
    done = threading.Event()
    with Project.create(default_project_path(dataset.root), dataset.root) as project:
        saver = Autosaver(project, 0.2, on_saved=lambda saved: done.set())
        editor = LabelEditor(load_gt(ref.gt_path).copy())
        saver.start()
        try:
            editor.dab((5, 5), 3, 24)
            saver.mark_dirty(ref, editor)
            assert done.wait(10.0)  # generous: only liveness is checked here, the bound in the crash test
        finally:
            saver.stop()
        assert not editor.dirty and project.edited_gt(ref) is not None
