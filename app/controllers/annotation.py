"""Annotation in the window: edit the GT of the shown image, autosave it, review flags/tags/notes/regions.

The project (one SQLite file, `<dataset>/seglens-project.sqlite`, or in the user data folder when the
dataset is read-only) holds reviews and which images carry edits; edited labels are PNGs beside it, the
source GT is never overwritten.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QMessageBox

from app.core.display.render import rgba_palette
from app.core.domain.errors import SegLensError
from app.core.domain.label_edit import LabelEditor, Rect
from app.core.domain.review import RegionBox, normalize_flag, normalize_tag
from app.core.io.datasets import Dataset, SampleRef
from app.core.storage.edited import EditedDataset, open_project
from app.core.storage.project import Autosaver, Project
from app.evaluation.frames import layer_patch, palette_colors
from app.evaluation.results import GroundTruth
from app.views.image_panel import rgba_to_qimage

if TYPE_CHECKING:
    from app.controllers.workbench import Workbench

_log = logging.getLogger(__name__)


class AnnotationController(QObject):
    """Owns the project of the open dataset, the label editor of the shown image and the review panel."""

    saved = Signal(object)  # list of saved edits, delivered on the GUI thread

    def __init__(self, main: Workbench) -> None:
        super().__init__(main)  # type: ignore[arg-type]
        self.main = main
        self.project: Project | None = None
        self.autosaver: Autosaver | None = None
        self.editor: LabelEditor | None = None
        self.ref: SampleRef | None = None
        self._last: tuple[float, float] | None = None
        self._polygon: list[tuple[float, float]] = []
        self._box_start: tuple[float, float] | None = None
        self._drawing_box = False
        self._stroking = False  # a brush drag is under way: re-score when it ends, not on every move
        w = main.window
        bar = w.compare.edit_bar
        self.view = w.compare.gt_panel.view
        self._timer = QTimer(self)
        self._timer.setInterval(250)
        self._connect(w, bar)

    def _connect(self, w: Any, bar: Any) -> None:
        w.edit_action.toggled.connect(lambda on: self.main.state.update(editing=bool(on)))
        self.main.state.changed.connect(
            lambda names: self.set_editing(self.main.state.view.editing) if "editing" in names else None
        )
        w.undo_action.triggered.connect(lambda: self._apply(self.editor.undo() if self.editor else None))
        w.redo_action.triggered.connect(lambda: self._apply(self.editor.redo() if self.editor else None))
        bar.undo.clicked.connect(w.undo_action.trigger)
        bar.redo.clicked.connect(w.redo_action.trigger)
        w.brush_bigger_action.triggered.connect(lambda: bar.step_size(2))
        w.brush_smaller_action.triggered.connect(lambda: bar.step_size(-2))
        bar.radius_changed.connect(lambda r: self.view.set_brush_radius(float(r)))
        w.edited_gt_action.toggled.connect(lambda on: self.main.state.update(edited_gt=bool(on)))
        w.export_labels_action.triggered.connect(lambda _checked=False: self.export_labels())
        w.export_review_action.triggered.connect(lambda _checked=False: self.export_review())
        self.view.pointer_pressed.connect(self._on_press)
        self.view.pointer_moved.connect(self._on_move)
        self.view.pointer_released.connect(self._on_release)
        self.main.dataset_loaded.connect(self._on_dataset)
        self.main.frame_shown.connect(self._on_frame)
        self._timer.timeout.connect(self._autosave)
        self.saved.connect(self._on_saved)
        review = w.review
        review.flag_toggled.connect(self._on_flag)
        review.flag_added.connect(self._on_new_flag)
        review.tags_edited.connect(self._on_tags)
        review.note.textChanged.connect(lambda: self._on_note(review.note.toPlainText()))
        review.box_requested.connect(self._start_box)
        review.box_removed.connect(self._remove_box)
        w.image_list.review_filter.currentIndexChanged.connect(lambda _i: self._apply_review_filter())

    # ------------------------------------------------------------------ project
    def _on_dataset(self, dataset: Dataset) -> None:
        self.close_project()
        try:
            self.project = open_project(dataset)
        except SegLensError as exc:
            self.main.window.append_log(f"no project: {exc}")
            box = QMessageBox(
                QMessageBox.Icon.Warning, "Project not opened", str(exc), parent=self.main.window
            )
            box.setInformativeText("The project file was left untouched; edits and reviews are off.")
            box.open()  # window-modal, not blocking: the dataset stays browsable
            return
        self.autosaver = Autosaver(self.project, 2.0, on_saved=self.saved.emit)
        self._timer.start()
        self.main.dataset_view = self.dataset_for_evaluation
        self.main.window.review.set_vocabulary(self.project.flag_vocabulary().names)
        self.main.window.image_list.set_review_filters(self.project.flag_vocabulary().names)
        bar = self.main.window.compare.edit_bar
        bar.set_classes(dataset.gt_scheme.names, dataset.gt_scheme.colors)
        evaluated = self.main.state.view.scheme.evaluated_ids()
        if evaluated.size and self.main.state.view.scheme.id_space is dataset.gt_scheme:
            bar.set_class_value(int(evaluated[0]))  # a real class (road), not "0 unlabeled"
        self.main.window.image_list.model.set_marks(self._marks())
        self.main.window.append_log(f"project {self.project.path}")

    def dataset_for_evaluation(self, dataset: Dataset) -> Dataset:
        """Edited labels replace the originals when 'Evaluate on edited GT' is on."""
        if self.project is not None and self.main.state.view.edited_gt and self.project.edits():
            return EditedDataset(dataset, self.project)
        return dataset

    def _apply_review_filter(self) -> None:
        images = self.main.window.image_list
        choice = str(images.review_filter.currentData() or "")
        if self.project is None or not choice:
            images.proxy.set_keys(None)
        elif choice == "@edited":
            images.proxy.set_keys(frozenset(record.key for record in self.project.edits()))
        elif choice == "@flagged":
            images.proxy.set_keys(frozenset(r.key for r in self.project.reviews() if r.flags))
        else:
            images.proxy.set_keys(frozenset(self.project.keys_with_flag(choice)))

    def _marks(self) -> dict[str, str]:
        """Per image key: a short mark for the table ('✎' edited, flag initials)."""
        if self.project is None:
            return {}
        marks: dict[str, str] = {record.key: "✎" for record in self.project.edits()}
        for review in self.project.reviews():
            initials = "".join(flag[0].upper() for flag in review.flags)
            marks[review.key] = (marks.get(review.key, "") + " " + initials).strip()
        return marks

    def close_project(self) -> None:
        """Save what is pending and close (dataset switch, window closing)."""
        self._timer.stop()
        if self.autosaver is not None:
            try:
                self.autosaver.flush()
            except Exception as exc:  # a failing disk must not lose the message
                self.main.window.append_log(f"could not save edits: {exc}")
        if self.project is not None:
            self.project.close()
        self.project, self.autosaver, self.editor, self.ref = None, None, None, None

    def _autosave(self) -> None:
        # While the window closes, the pool refuses jobs: close_project() writes what is pending.
        if self.autosaver is not None and self.autosaver.pending and not self.main.pool.closed:
            # Writing a 2 MB PNG takes tens of ms: off the GUI thread, one save at a time.
            self.main.pool.submit(self.autosaver.flush_if_due, group="autosave")

    def _on_saved(self, saved: Any) -> None:
        self.main.window.image_list.model.set_marks(self._marks())
        self.main.window.review.status.setText(f"saved {len(saved)} edited label map(s)")

    # ------------------------------------------------------------------ editing
    def set_editing(self, on: bool) -> None:
        compare = self.main.window.compare
        compare.edit_bar.setVisible(on)
        compare.set_editing(on)
        self.view.set_editing(on)
        self.view.set_brush_radius(float(compare.edit_bar.radius.value()))

    def _on_frame(self, frame: Any) -> None:
        if self.project is None or self.main.dataset is None:
            return
        if self.autosaver is not None and self.ref is not None and self.ref.key != frame.ref.key:
            self.main.pool.submit(self.autosaver.flush, group="autosave")
        self._show_review(frame.ref)
        if self.ref is not None and self.ref.key == frame.ref.key and self.editor is not None:
            self._repaint(Rect(0, 0, self.editor.shape[1], self.editor.shape[0]))
            return
        labels = self.project.load_gt(frame.ref, self.main.dataset.gt_scheme, use_edited=True)
        self.ref = frame.ref
        self.editor = LabelEditor(labels) if labels is not None else None
        if self.editor is not None and self.project.edit_record(frame.ref.key) is not None:
            self._repaint(Rect(0, 0, self.editor.shape[1], self.editor.shape[0]))

    def _value(self) -> int:
        bar = self.main.window.compare.edit_bar
        return 0 if bar.tool() == "eraser" else bar.class_value()

    def _preserve(self, value: int) -> set[int] | None:
        if not self.main.window.compare.edit_bar.preserve.isChecked() or self.main.dataset is None:
            return None
        return set(range(self.main.dataset.gt_scheme.num_classes)) - {0, value}

    def _source(self, slot: int) -> np.ndarray | None:
        """Model A's or B's prediction of the shown image in the GT's id space (held by the frame)."""
        frame = self.main.frame
        if frame is None or self.ref is None or frame.ref.key != self.ref.key or slot not in frame.slots:
            return None
        index = frame.slots.index(slot)
        return frame.pred_ids[index] if index < len(frame.pred_ids) else None

    def _on_press(self, x: float, y: float, button: object) -> None:
        if self._drawing_box:
            self._box_start = (x, y)
            return
        editor = self.editor
        if editor is None:
            self.main.window.show_message("This image has no ground truth to edit.", 5000)
            return
        tool = self.main.window.compare.edit_bar.tool()
        radius = float(self.main.window.compare.edit_bar.radius.value())
        value = self._value()
        if tool == "picker":
            self.main.window.compare.edit_bar.set_class_value(editor.pick((x, y)))
        elif tool == "fill":
            self._apply(editor.fill((x, y), value, preserve=self._preserve(value)))
        elif tool == "polygon":
            self._polygon_click(x, y, button, value)
        elif tool in ("copy_a", "copy_b"):
            source = self._source(0 if tool == "copy_a" else 1)
            if source is not None:
                editor.begin_stroke()
                self._stroking = True
                self._last = (x, y)
                self._apply(editor.copy_brush(source, [(x, y)], radius, preserve=self._preserve(-1)))
        else:
            editor.begin_stroke()
            self._stroking = True
            self._last = (x, y)
            self._apply(editor.stroke([(x, y)], radius, value, preserve=self._preserve(value)))

    def _polygon_click(self, x: float, y: float, button: object, value: int) -> None:
        assert self.editor is not None
        if button == Qt.MouseButton.RightButton and len(self._polygon) >= 3:
            source = str(self.main.window.compare.edit_bar.polygon_source.currentData())
            model = self._source(0 if source == "a" else 1) if source in ("a", "b") else None
            if model is not None:  # accept the model's pixels inside the polygon
                self._apply(self.editor.copy_from(model, self._polygon, preserve=self._preserve(-1)))
            else:
                self._apply(self.editor.fill_polygon(self._polygon, value, preserve=self._preserve(value)))
            self._polygon = []
        else:
            self._polygon.append((x, y))
            self.main.window.show_message(f"polygon: {len(self._polygon)} points (right-click closes)", 3000)

    def _on_move(self, x: float, y: float) -> None:
        editor, last = self.editor, self._last
        if editor is None or last is None:
            return
        bar = self.main.window.compare.edit_bar
        radius = float(bar.radius.value())
        if bar.tool() in ("copy_a", "copy_b"):
            source = self._source(0 if bar.tool() == "copy_a" else 1)
            if source is not None:
                self._apply(editor.copy_brush(source, [last, (x, y)], radius, preserve=self._preserve(-1)))
        else:
            value = self._value()
            self._apply(editor.stroke([last, (x, y)], radius, value, preserve=self._preserve(value)))
        self._last = (x, y)

    def _on_release(self, x: float, y: float) -> None:
        if self._drawing_box and self._box_start is not None:
            self._finish_box(x, y)
            return
        if self.editor is not None and self._last is not None:
            self.editor.end_stroke()
        self._last = None
        if self._stroking:
            self._stroking = False
            self._edited()

    def _apply(self, rect: Rect | None) -> None:
        """Repaint what an edit changed and schedule its autosave."""
        if rect is None or rect.is_empty or self.editor is None or self.ref is None:
            return
        self._repaint(rect)
        if self.autosaver is not None:
            self.autosaver.mark_dirty(self.ref, self.editor)
        if not self._stroking:  # a fill, a polygon, undo or redo: one edit, done
            self._edited()

    def _edited(self) -> None:
        """An edit is complete: the window's numbers and readout follow it at once (only this image)."""
        if self.editor is None or self.ref is None or self.project is None:
            return
        edited = {record.key for record in self.project.edits()} | {self.ref.key}
        truth = GroundTruth("edited", self.project.path, len(edited))
        self.main.labels_changed(self.ref, self.editor.labels.copy(), truth)

    def _repaint(self, rect: Rect) -> None:
        """Recolour only `rect` of the GT layer from the editor's labels (evaluated-class colours, outlined
        when the GT panel shows contours)."""
        editor = self.editor
        assert editor is not None
        view = self.main.state.view
        to_class = view.scheme.id_to_class()
        x, y, patch = layer_patch(
            lambda rows, cols: to_class[editor.labels[rows, cols]],
            editor.shape,
            (rect.x, rect.y, rect.w, rect.h),
            rgba_palette(palette_colors(view.scheme, view.palette), hidden=view.hidden),
            view.panel_styles[0] == "contours",
        )
        self.view.paint_mask(x, y, rgba_to_qimage(patch))

    # ------------------------------------------------------------------ review
    def _show_review(self, ref: SampleRef) -> None:
        assert self.project is not None
        review = self.project.review(ref.key)
        boxes = [f"{b.x},{b.y} {b.w}×{b.h}: {b.text}" for b in review.boxes]
        regions = [(b.x, b.y, b.w, b.h, b.text) for b in review.boxes]
        for panel in self.main.window.compare.panels:  # drawn where the user looks, in every panel
            panel.view.set_regions(regions)
        edited = " (labels edited)" if self.project.edit_record(ref.key) else ""
        self.main.window.review.show_review(ref.key + edited, review.flags, review.tags, review.note, boxes)

    def _update_review(self, change: Any) -> None:
        if self.project is None or self.ref is None:
            return
        try:
            self.project.set_review(change(self.project.review(self.ref.key)))
        except (ValueError, SegLensError) as exc:
            self.main.window.show_message(str(exc), 8000)
            return
        self.main.window.image_list.model.set_marks(self._marks())

    def _on_flag(self, name: str, on: bool) -> None:
        self._update_review(lambda r: r.with_flag(name) if on else r.without_flag(name))

    def _on_new_flag(self, text: str) -> None:
        if self.project is None:
            return
        try:
            vocabulary = self.project.add_flag(normalize_flag(text))
        except ValueError as exc:
            self.main.window.show_message(str(exc), 8000)
            return
        self.main.window.review.set_vocabulary(vocabulary.names)
        self.main.window.image_list.set_review_filters(vocabulary.names)
        if self.ref is not None:
            self._show_review(self.ref)

    def _on_tags(self, text: str) -> None:
        tags = tuple(dict.fromkeys(normalize_tag(t) for t in text.split(",") if t.strip()))
        self._update_review(lambda r: dataclasses.replace(r, tags=tags))

    def _on_note(self, text: str) -> None:
        self._update_review(lambda r: r.with_note(text))

    def _start_box(self) -> None:
        self._drawing_box = True
        self.view.set_editing(True)
        self.main.window.compare.show_gt.setChecked(True)
        self.main.window.show_message("Drag a rectangle on the ground-truth panel", 5000)

    def _finish_box(self, x: float, y: float) -> None:
        assert self._box_start is not None
        x0, y0 = self._box_start
        self._drawing_box, self._box_start = False, None
        self.view.set_editing(self.main.state.view.editing)
        left, top = int(max(min(x0, x), 0)), int(max(min(y0, y), 0))
        width, height = int(abs(x - x0)), int(abs(y - y0))
        if width < 2 or height < 2:
            return
        text = self.main.window.dialogs.text("Region", "Comment for this region:")
        if text is not None:
            self.add_box(RegionBox(left, top, width, height, text))

    def add_box(self, box: RegionBox) -> None:
        """Attach a commented region to the shown image."""
        self._update_review(lambda r: r.with_box(box))
        if self.ref is not None:
            self._show_review(self.ref)

    def _remove_box(self, index: int) -> None:
        if index >= 0:
            self._update_review(lambda r: r.without_box(index))
            if self.ref is not None:
                self._show_review(self.ref)

    def review_dict(self) -> dict[str, dict[str, Any]]:
        """Per-image review data for reports."""
        if self.project is None:
            return {}
        return {r.key: {"flagged": bool(r.flags), **r.to_dict()} for r in self.project.reviews()}

    # ------------------------------------------------------------------ exports
    def export_labels(self, out: str | None = None) -> None:
        if self.project is None or self.main.dataset is None:
            return
        if self.autosaver is not None:
            self.autosaver.flush()
        folder = out or self.main.window.dialogs.existing_directory("Export labels (gtFine tree) to")
        if folder:
            summary = self.project.export_gtfine(Path(folder), self.main.dataset.refs)
            self.main.window.append_log(f"exported labels to {folder}: {summary}")

    def export_review(self, out: str | None = None) -> None:
        if self.project is None:
            return
        path = out or self.main.window.dialogs.save_file("Export review", "review.csv", "CSV (*.csv)")
        if path:
            self.project.export_reviews_csv(Path(path).with_suffix(".csv"))
            self.project.export_reviews_json(Path(path).with_suffix(".json"))
            self.main.window.append_log(f"exported review data to {Path(path).with_suffix('.csv')} and .json")
