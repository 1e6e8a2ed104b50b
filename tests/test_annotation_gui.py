"""Editing the ground truth in the window: tools, undo/redo, autosave, review data, edited-GT metrics."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from modelzoo import make_onnx_segmenter
from PIL import Image
from PySide6.QtCore import Qt

from app.core.domain.labels import TRAINIDS
from app.core.scenes.generator import generate

pytestmark = pytest.mark.gui
CAR = 26


@pytest.fixture
def scenes(tmp_path) -> Path:
    return generate(tmp_path / "data", 3, size=(96, 192), seed=21)


@pytest.fixture
def controller(qtbot):
    from app.controllers.main_controller import MainController

    ctrl = MainController()
    qtbot.addWidget(ctrl.window)
    ctrl.auto_evaluate = False
    ctrl.window.show()
    yield ctrl
    ctrl.shutdown()


def _open(qtbot, ctrl, scenes) -> None:
    with qtbot.waitSignal(ctrl.dataset_loaded, timeout=20_000):
        ctrl.open_dataset(scenes)
    qtbot.waitUntil(lambda: ctrl.annotation.editor is not None, timeout=20_000)


def _mask_color(ctrl, x: int, y: int) -> tuple[int, int, int]:
    color = ctrl.window.compare.gt_panel.view.mask_item.pixmap().toImage().pixelColor(x, y)
    return (color.red(), color.green(), color.blue())


def test_brush_fill_picker_undo_redo_and_autosave(qtbot, controller, scenes) -> None:
    _open(qtbot, controller, scenes)
    ann, view = controller.annotation, controller.window.compare.gt_panel.view
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):  # the GT panel appears: its layer renders
        controller.window.edit_action.setChecked(True)
    bar = controller.window.compare.edit_bar
    assert bar.isVisibleTo(controller.window) and controller.window.compare.show_gt.isChecked()
    source_file = controller.dataset.refs[0].gt_path
    source_bytes = source_file.read_bytes()
    original = ann.editor.labels.copy()
    bar.set_class_value(CAR)
    bar.radius.setValue(3)
    view.pointer_pressed.emit(10.0, 20.0, Qt.MouseButton.LeftButton)
    view.pointer_moved.emit(40.0, 20.0)
    view.pointer_released.emit(40.0, 20.0)
    labels = ann.editor.labels
    assert (labels[20, 10:41] == CAR).all() and labels[30, 25] == original[30, 25]
    assert _mask_color(controller, 25, 20) == TRAINIDS.colors[TRAINIDS.names.index("car")]
    controller.window.undo_action.trigger()
    np.testing.assert_array_equal(ann.editor.labels, original)
    controller.window.redo_action.trigger()
    assert (ann.editor.labels[20, 10:41] == CAR).all()
    # Picker reads the class under the cursor; fill recolours a connected region.
    bar.buttons["picker"].setChecked(True)
    view.pointer_pressed.emit(5.0, 90.0, Qt.MouseButton.LeftButton)
    assert bar.class_value() == int(ann.editor.labels[90, 5])
    bar.buttons["fill"].setChecked(True)
    bar.set_class_value(23)
    seed_value = int(ann.editor.labels[2, 100])
    view.pointer_pressed.emit(100.0, 2.0, Qt.MouseButton.LeftButton)
    assert ann.editor.labels[2, 100] == 23 or seed_value == 23
    # Autosave writes an edited PNG beside the project; the source GT is untouched.
    saved = ann.autosaver.flush()
    assert saved and source_file.read_bytes() == source_bytes
    record = ann.project.edit_record(controller.dataset.refs[0].key)
    np.testing.assert_array_equal(np.asarray(Image.open(record.path)), ann.editor.labels)


def test_review_marks_filter_export_and_persistence(qtbot, controller, scenes, tmp_path) -> None:
    _open(qtbot, controller, scenes)
    review = controller.window.review
    key = controller.dataset.refs[0].key
    review.flag_boxes["to-review"].setChecked(True)
    review.tags.setText("night, glare")
    review.tags.editingFinished.emit()
    review.note.setPlainText("the pole is labelled as vegetation")
    controller.annotation.add_box(
        __import__("app.core.domain.review", fromlist=["RegionBox"]).RegionBox(5, 6, 20, 10, "pole")
    )
    stored = controller.annotation.project.review(key)
    assert stored.flags == ("to-review",) and stored.tags == ("night", "glare")
    assert stored.note.startswith("the pole") and stored.boxes[0].text == "pole"
    table = controller.window.image_list
    assert table.model.data(table.model.index(0, 0)).endswith("T")
    table.review_filter.setCurrentIndex(table.review_filter.findData("to-review"))
    assert table.visible_rows() == [0]
    out = tmp_path / "review.csv"
    controller.annotation.export_review(str(out))
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["key"] == key and "glare" in rows[0]["tags"]
    controller.shutdown()
    # Reopened later: the review is still there.
    from app.controllers.main_controller import MainController

    again = MainController()
    qtbot.addWidget(again.window)
    again.auto_evaluate = False
    _open(qtbot, again, scenes)
    assert again.annotation.project.review(key).note.startswith("the pole")
    again.shutdown()


def test_metrics_on_edited_or_original_gt(qtbot, controller, scenes, tmp_path) -> None:
    model = make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names, input_size=None, seed=3)
    _open(qtbot, controller, scenes)
    with qtbot.waitSignal(controller.model_loaded, timeout=20_000):
        controller.set_model(0, model)
    ann = controller.annotation
    ann.editor.fill_polygon([(0, 0), (191, 0), (191, 95), (0, 95)], CAR)  # the whole first image is a car
    ann.autosaver.mark_dirty(ann.ref, ann.editor)
    ann.autosaver.flush()
    car = controller.scheme.names.index("car")

    def car_pixels() -> int:
        with qtbot.waitSignal(controller.evaluation_finished, timeout=60_000):
            controller.evaluate()
        return int(controller.live[0].scores().matrix[car].sum())

    edited = car_pixels()
    controller.window.edited_gt_action.setChecked(False)  # re-evaluates on the original labels
    qtbot.waitUntil(lambda: controller.result is None, timeout=5_000)
    original = car_pixels()
    assert edited - original == 96 * 192 - int(
        (np.asarray(Image.open(controller.dataset.refs[0].gt_path)) == CAR).sum()
    )
    exported = tmp_path / "export"
    ann.export_labels(str(exported))
    files = sorted(exported.rglob("*_gtFine_labelIds.png"))
    assert len(files) == 3 and (np.asarray(Image.open(files[0])) == CAR).all()


def test_polygon_copies_model_pixels(qtbot, controller, scenes, tmp_path) -> None:
    model = make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names, input_size=None, seed=4)
    _open(qtbot, controller, scenes)
    with qtbot.waitSignal(controller.model_loaded, timeout=20_000):
        controller.set_model(0, model)
    qtbot.waitUntil(
        lambda: controller.frame is not None and len(controller.frame.pred_class) == 1, timeout=20_000
    )
    ann, view = controller.annotation, controller.window.compare.gt_panel.view
    bar = controller.window.compare.edit_bar
    controller.window.edit_action.setChecked(True)
    bar.buttons["polygon"].setChecked(True)
    bar.polygon_source.setCurrentIndex(bar.polygon_source.findData("a"))
    source = ann._source(0)
    assert source is not None
    for x, y in ((10, 10), (60, 10), (60, 40), (10, 40)):
        view.pointer_pressed.emit(float(x), float(y), Qt.MouseButton.LeftButton)
    view.pointer_pressed.emit(10.0, 40.0, Qt.MouseButton.RightButton)
    np.testing.assert_array_equal(ann.editor.labels[12:38, 12:58], source[12:38, 12:58])
