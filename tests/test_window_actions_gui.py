"""Every menu item driven as a user drives it: QAction.trigger() (with the `checked` argument Qt sends),
key events on the window, and the one dialog seam (MainWindow.dialogs) answered as a user would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require
from modelzoo import make_onnx_segmenter
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QDialog

from app.core.domain.labels import CATEGORY_NAMES
from app.views.dialogs import Dialogs

pytestmark = pytest.mark.gui
pytest_plugins = ("gui_data",)  # the scenes and models fixtures


class ScriptedDialogs(Dialogs):
    """Answers the window's questions from a script, in order, and records what was asked."""

    def __init__(self, parent: Any, answers: list[Any]) -> None:
        super().__init__(parent)
        self.answers = list(answers)
        self.asked: list[str] = []
        self.ran: list[QDialog] = []

    def _next(self, title: str) -> Any:
        self.asked.append(title)
        assert self.answers, f"unexpected dialog {title!r}"
        return self.answers.pop(0)

    def existing_directory(self, title: str, start: str = "") -> str:
        return str(self._next(title))

    def open_file(self, title: str, start: str = "", filters: str = "") -> str:
        return str(self._next(title))

    def open_files(self, title: str, start: str = "", filters: str = "") -> list[str]:
        return [str(p) for p in self._next(title)]

    def save_file(self, title: str, start: str = "", filters: str = "") -> str:
        return str(self._next(title))

    def text(self, title: str, label: str) -> str | None:
        return self._next(title)  # type: ignore[no-any-return]

    def run(self, dialog: QDialog) -> bool:
        self.ran.append(dialog)
        return True


@pytest.fixture
def controller(qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("SEGLENS_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("SEGLENS_CACHE", str(tmp_path / "cache"))
    from app.controllers.main_controller import MainController

    ctrl = MainController()
    qtbot.addWidget(ctrl.window)
    ctrl.window.show()
    ctrl.window.activateWindow()
    yield ctrl
    ctrl.shutdown()


def _answer(ctrl: Any, *answers: Any) -> ScriptedDialogs:
    dialogs = ScriptedDialogs(ctrl.window, list(answers))
    ctrl.window.dialogs = dialogs
    return dialogs


def _open_through_menus(qtbot, ctrl, scenes: Path, models: tuple[Path, Path]) -> None:
    """File -> Open dataset, Model A, Model B, through the dialogs; waits for the evaluation."""
    w = ctrl.window
    _answer(ctrl, scenes, models[0], models[1])
    with qtbot.waitSignal(ctrl.dataset_loaded, timeout=20_000):
        w.open_dataset_action.trigger()
    for action in (w.model_a_action, w.model_b_action):
        with qtbot.waitSignal(ctrl.model_loaded, timeout=20_000):
            action.trigger()
    qtbot.waitUntil(lambda: ctrl.result is not None, timeout=60_000)


def _key(qtbot, ctrl, key: Qt.Key, modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    """A key press on the window, as the user types it (shortcuts are window-wide)."""
    qtbot.keyClick(ctrl.window, key, modifier)


def test_file_menu_open_evaluate_verdict_and_export_report_with_ctrl_e(
    qtbot, controller, scenes, models, tmp_path
) -> None:
    require("fpdf")
    _open_through_menus(qtbot, controller, scenes, models)
    w = controller.window
    # The verdict line: who is better, by how much, on which scheme and ground truth.
    verdict = w.compare.verdict.text()
    assert "better by" in verdict or "on par" in verdict
    assert "scheme trainids, original labels, 6 of 6 images" in verdict
    # A review flag set in the Review panel reaches the report.
    w.review.flag_boxes["to-correct"].setChecked(True)  # a review flag, ticked in the Review panel
    out = tmp_path / "report.html"
    dialogs = _answer(controller, out)
    _key(qtbot, controller, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)  # Ctrl+E, not E
    assert dialogs.asked == ["Export report"] and controller.state.view.display_mode == "classes"
    qtbot.waitUntil(lambda: "report written" in w.log.toPlainText(), timeout=60_000)
    html = out.read_text(encoding="utf-8")
    assert "alpha" in html and "beta" in html
    import json

    document = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    flagged = controller.annotation.ref.key
    assert {"key": flagged, "flagged": True, "tags": [], "note": ""} in document["report"]["review"]
    assert out.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    # Cancelling the dialog writes nothing.
    _answer(controller, "")
    w.report_action.trigger()
    assert not (tmp_path / "seglens-report.html").exists()


def test_export_labels_and_review_and_recent_dataset_from_the_file_menu(
    qtbot, controller, scenes, models, tmp_path
) -> None:
    _open_through_menus(qtbot, controller, scenes, models)
    w = controller.window
    w.review.flag_boxes["to-correct"].setChecked(True)  # a review flag, ticked in the Review panel
    labels, review = tmp_path / "labels", tmp_path / "review.csv"
    _answer(controller, labels, review)
    w.export_labels_action.trigger()
    w.export_review_action.trigger()
    assert any(labels.rglob("*_labelIds.png"))
    assert "to-correct" in review.read_text(encoding="utf-8")
    assert review.with_suffix(".json").exists()
    recent = w.recent_datasets_menu.actions()
    assert recent and recent[0].text() == str(scenes)
    with qtbot.waitSignal(controller.dataset_loaded, timeout=20_000):
        recent[0].trigger()

    # Recent models: the last one opened (B's file) goes into A, then the other into B.
    def recent(menu: Any) -> dict[str, Any]:  # the menus are refilled as models open: read them anew
        return {a.text(): a for a in menu.actions()}

    assert set(recent(w.recent_a_menu)) == set(recent(w.recent_b_menu)) == {str(models[0]), str(models[1])}
    with qtbot.waitSignal(controller.model_loaded, timeout=20_000) as loaded:
        recent(w.recent_a_menu)[str(models[1])].trigger()
    assert loaded.args[0] == 0 and controller.predictors[0].info.name == "beta"
    with qtbot.waitSignal(controller.model_loaded, timeout=20_000) as loaded:
        recent(w.recent_b_menu)[str(models[0])].trigger()
    assert loaded.args[0] == 1 and controller.predictors[1].info.name == "alpha"


def test_quit_closes_the_window_and_stops_the_work(qtbot, controller, scenes, models) -> None:
    _open_through_menus(qtbot, controller, scenes, models)
    controller.window.quit_action.trigger()
    assert not controller.window.isVisible()
    assert controller._closed  # models released, settings written


def test_view_keys_typed_on_the_window(qtbot, controller, scenes, models) -> None:
    _open_through_menus(qtbot, controller, scenes, models)
    w, state = controller.window, controller.state
    start = w.image_list.current_row()
    w.compare.setFocus()  # keys go to the window, not to the image table's own arrow keys
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        _key(qtbot, controller, Qt.Key.Key_Right)
    assert w.image_list.current_row() != start
    _key(qtbot, controller, Qt.Key.Key_G)
    assert state.view.show_gt
    _key(qtbot, controller, Qt.Key.Key_Space)
    assert not state.view.masks_visible
    _key(qtbot, controller, Qt.Key.Key_Space)
    _key(qtbot, controller, Qt.Key.Key_E)
    assert state.view.display_mode == "errors"
    _key(qtbot, controller, Qt.Key.Key_S)
    assert state.view.panel_styles == ("contours",) * 3
    _key(qtbot, controller, Qt.Key.Key_W)
    assert state.view.layout == "swipe"
    _key(qtbot, controller, Qt.Key.Key_V)
    assert state.view.layout == "flicker" and state.view.flicker_b
    before = w.compare.opacity.value()
    _key(qtbot, controller, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert w.compare.opacity.value() == before - 10
    _key(qtbot, controller, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert w.log_dock.isVisibleTo(w)


def test_view_menu_actions_step_toggle_and_cycle(qtbot, controller, scenes, models) -> None:
    _open_through_menus(qtbot, controller, scenes, models)
    w, state = controller.window, controller.state
    start = w.image_list.current_row()
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        w.next_action.trigger()
    assert w.image_list.current_row() != start
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        w.prev_action.trigger()
    assert w.image_list.current_row() == start
    w.toggle_gt_action.trigger()
    assert state.view.show_gt and w.compare.gt_panel.isVisibleTo(w)
    w.toggle_masks_action.trigger()
    assert not state.view.masks_visible and not w.compare.a_panel.view.mask_item.isVisible()
    w.toggle_masks_action.trigger()
    w.cycle_mode_action.trigger()
    assert state.view.display_mode == "errors"
    w.cycle_style_action.trigger()
    assert state.view.panel_styles == ("contours",) * 3
    before = w.compare.opacity.value()
    w.opacity_up_action.trigger()
    w.opacity_down_action.trigger()
    w.opacity_down_action.trigger()
    assert w.compare.opacity.value() == before - 10
    w.show_log_action.trigger()
    assert w.log_dock.isVisibleTo(w)
    dialogs = _answer(controller)
    w.shortcuts_action.trigger()
    assert dialogs.ran and dialogs.ran[0].table.rowCount() > 20


def test_swipe_and_flicker_share_zoom_and_pan(qtbot, controller, scenes, models) -> None:
    _open_through_menus(qtbot, controller, scenes, models)
    w, state = controller.window, controller.state
    w.toggle_gt_action.trigger()
    a_view, gt_view = w.compare.a_panel.view, w.compare.gt_panel.view
    w.layout_action.trigger()  # W: side by side -> swipe
    assert state.view.layout == "swipe" and not w.compare.b_panel.isVisibleTo(w)
    assert a_view.swiping and a_view.divider.isVisible() and not a_view.swipe_item.pixmap().isNull()
    assert "|" in w.compare.a_panel.title.text()  # "A: alpha … | B: beta …"
    a_view.set_swipe_fraction(0.25)
    assert a_view._left_clip.rect().width() == pytest.approx(a_view.image_item.pixmap().width() * 0.25)
    # Zoom in panel A: the GT panel follows, whatever A shows.
    centre = a_view.viewport().rect().center()
    wheel = QWheelEvent(
        QPointF(centre),
        QPointF(a_view.viewport().mapToGlobal(centre)),
        QPoint(0, 0),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(a_view.viewport(), wheel)
    assert a_view.transform().m11() == pytest.approx(gt_view.transform().m11())
    zoom = a_view.transform().m11()
    w.flicker_action.trigger()  # V: flicker, showing B
    assert state.view.layout == "flicker" and state.view.flicker_b
    b_mask = w.compare._masks[2]
    assert a_view.mask_item.pixmap().toImage() == b_mask.convertToFormat(
        a_view.mask_item.pixmap().toImage().format()
    )
    assert w.compare.a_panel.title.text().startswith("B:")
    w.flicker_action.trigger()  # back to A, same zoom
    assert not state.view.flicker_b and a_view.transform().m11() == pytest.approx(zoom)
    w.layout_action.trigger()  # W: flicker -> side by side
    assert state.view.layout == "side" and w.compare.b_panel.isVisibleTo(w) and not a_view.swiping


def test_palette_choice_recolours_masks_and_legend(qtbot, controller, scenes, models) -> None:
    from app.evaluation.frames import palette_colors

    _open_through_menus(qtbot, controller, scenes, models)
    w = controller.window
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        w.palette_actions["contrast"].trigger()
    assert controller.state.view.palette == "contrast"
    frame = controller.frame
    pred = frame.pred_class[0]
    ys, xs = np.nonzero(pred < 255)
    color = w.compare.a_panel.view.mask_item.pixmap().toImage().pixelColor(int(xs[0]), int(ys[0]))
    expected = palette_colors(controller.scheme, "contrast")[int(pred[ys[0], xs[0]])]
    assert (color.red(), color.green(), color.blue()) == expected
    icon = w.compare.legend.entries[2].icon().pixmap(12, 12).toImage().pixelColor(6, 6)
    assert (icon.red(), icon.green(), icon.blue()) == expected if int(pred[ys[0], xs[0]]) == 2 else True


def test_error_maps_are_blue_orange_and_every_colour_is_in_the_legend(
    qtbot, controller, scenes, models
) -> None:
    from app.core.display.render import DISAGREEMENT_COLORS, ERROR_COLORS

    _open_through_menus(qtbot, controller, scenes, models)
    w = controller.window
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        w.cycle_mode_action.trigger()  # E: errors
    assert ERROR_COLORS[1:] == ((0, 114, 178), (230, 159, 0))  # blue right, orange wrong
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        w.cycle_mode_action.trigger()  # E: A vs B
    legend = [item.findChildren(type(w.compare.readout))[-1].text() for item in w.compare.legend._items]
    assert legend == [
        "A correct",
        "A wrong",
        "B: both right",
        "B: A right, B wrong",
        "B: B right, A wrong",
        "B: both wrong",
    ]
    # Blue and orange mean the same in both panels (right / wrong for the panel's model); the two other
    # cases have colours of their own.
    assert DISAGREEMENT_COLORS[2] == ERROR_COLORS[2] and DISAGREEMENT_COLORS[3] == ERROR_COLORS[1]
    assert len(set(ERROR_COLORS[1:] + DISAGREEMENT_COLORS[1:])) == 4


def test_filename_search_city_names_and_visible_sort_reason(qtbot, controller, scenes, models) -> None:
    _open_through_menus(qtbot, controller, scenes, models)
    images = controller.window.image_list
    names = [images.model.data(images.model.index(r, 0)) for r in range(images.model.rowCount())]
    cities = {ref.city for ref in controller.dataset.refs}
    assert all(any(city and name.startswith(city) for city in cities) for name in names)
    target = controller.dataset.refs[3].frame
    qtbot.keyClicks(images.search, target)
    assert images.visible_rows() == [3]
    images.search.clear()
    assert len(images.visible_rows()) == 6
    images.preset.setCurrentIndex(images.preset.findData("b_fails"))
    images.preset.activated.emit(images.preset.currentIndex())
    assert "Sorted by" in images.sort_reason.text() and "lowest first" in images.sort_reason.text()
    assert not images.table.isColumnHidden(6)  # the column sorted by is shown
    header = images.model.headerData(6, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole)
    assert images.table.columnWidth(6) >= images.table.fontMetrics().horizontalAdvance(header)


def test_image_table_is_a_view_of_the_live_scores(qtbot, controller, scenes, models) -> None:
    _open_through_menus(qtbot, controller, scenes, models)
    model = controller.window.image_list.model
    key = controller.dataset.refs[2].key
    held = controller.live[1].images[key]
    assert model.score(2, 1) is held  # the same object: one copy of the per-image scores
    assert model.value(2, 3) == held.miou


def test_leaderboard_scores_every_model_on_one_scheme_and_picks_a_and_b(
    qtbot, controller, scenes, models, tmp_path
) -> None:
    from modelzoo import make_onnx_segmenter as make

    from app.core.domain.labels import TRAINIDS

    _open_through_menus(qtbot, controller, scenes, models)
    third = make(tmp_path / "gamma.onnx", TRAINIDS.names, input_size=(64, 128), seed=8)
    _answer(controller, [third])
    board = controller.window.leaderboard
    controller.window.leaderboard_action.trigger()
    qtbot.waitUntil(
        lambda: board.table.rowCount() == 3 and board.table.item(2, 2).text() != "–", timeout=60_000
    )
    names = {board.table.item(r, 0).text() for r in range(3)}
    assert names == {"alpha", "beta", "gamma"}
    assert "scheme trainids" in board.basis.text()
    columns = [board.table.horizontalHeaderItem(c).text() for c in range(board.table.columnCount())]
    assert columns[:9] == ["Model", "Role", "mIoU", "Precision", "Recall", "F1", "P50 ms", "P95 ms", "MB"]
    assert "IoU road" in columns
    row = next(r for r in range(3) if board.table.item(r, 0).text() == "gamma")
    board.table.selectRow(row)
    with qtbot.waitSignal(controller.model_loaded, timeout=20_000):
        board.use_b.click()
    assert controller.predictors[1].info.name == "gamma"
    qtbot.waitUntil(lambda: board.table.rowCount() == 3, timeout=20_000)
    roles = {board.table.item(r, 0).text(): board.table.item(r, 1).text() for r in range(3)}
    assert roles == {"alpha": "A", "gamma": "B", "beta": ""}  # beta stays in the table


def test_scheme_switch_refuses_the_category_model_and_clears_the_drill_down(
    qtbot, controller, scenes, models, tmp_path
) -> None:
    cat = make_onnx_segmenter(tmp_path / "cats.onnx", CATEGORY_NAMES, input_size=(64, 128), seed=9)
    w = controller.window
    _answer(controller, scenes, cat, models[1])
    with qtbot.waitSignal(controller.dataset_loaded, timeout=20_000):
        w.open_dataset_action.trigger()
    for action in (w.model_a_action, w.model_b_action):
        with qtbot.waitSignal(controller.model_loaded, timeout=20_000):
            action.trigger()
    qtbot.waitUntil(lambda: controller.result is not None, timeout=60_000)
    assert controller.scheme.key == "categories"
    matrix = controller.live[0].scores().matrix
    gt, pred = np.unravel_index(int(np.argmax(matrix[1:, :-1])), matrix[1:, :-1].shape)
    w.metrics.heatmap.cell_clicked.emit(int(gt) + 1, int(pred))  # a drill-down list on the categories
    assert w.metrics.drill.count() > 0
    # The user switches to 19 classes: A cannot be scored there, B can; nothing stale stays.
    with qtbot.waitSignal(controller.evaluation_finished, timeout=60_000):
        w.scheme_box.setCurrentIndex(w.scheme_box.findData("trainids"))
    assert controller.live[0] is None and controller.refused[0]
    assert controller.live[1] is not None and len(controller.live[1].images) == 6
    assert w.metrics.drill.count() == 0 and w.metrics.heatmap.selected is None
    assert w.metrics.summary.item(0, 0).text() == "–" and w.metrics.summary.item(0, 1).text() != "–"
    assert "not scored on trainids" in w.compare.a_panel.title.text()
    verdict = w.compare.verdict.text()
    assert "A not scored" in verdict and "B beta mIoU" in verdict and "scheme trainids" in verdict


def test_a_brush_stroke_rescores_the_edited_image_at_once(qtbot, controller, scenes, models) -> None:
    from app.core.domain.labels import LABELIDS

    _open_through_menus(qtbot, controller, scenes, models)
    w, ann = controller.window, controller.annotation
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        w.edit_action.trigger()  # T: edit mode shows the GT panel
    assert controller.state.view.editing and not w.compare.b_panel.isVisibleTo(w)  # GT and A get the room
    bar = w.compare.edit_bar
    assert bar.class_value() == LABELIDS.names.index("road")  # a real class, not "0 unlabeled"
    key = ann.ref.key
    before = controller.live[0].images[key]
    car = LABELIDS.names.index("car")
    bar.set_class_value(car)
    bar.radius.setValue(30)
    view = w.compare.gt_panel.view
    with qtbot.waitSignal(controller.rescored, timeout=20_000):
        view.pointer_pressed.emit(40.0, 40.0, Qt.MouseButton.LeftButton)
        view.pointer_moved.emit(120.0, 50.0)
        view.pointer_released.emit(120.0, 50.0)
    after = controller.live[0].images[key]
    assert after is not before and after.counts is not None
    # The sums are those of the per-image counts: only this image changed.
    total = np.zeros_like(controller.live[0].matrix)
    for image in controller.live[0].images.values():
        image.counts.add_to(total)
    np.testing.assert_array_equal(total, controller.live[0].matrix)
    assert f"mIoU {after.miou * 100:.1f}" in w.compare.a_panel.title.text()
    assert "edited labels (1 images edited" in w.compare.verdict.text()
    w.compare.hovered.emit(60, 45)
    assert "GT: car" in w.compare.readout.text()
    # Undo is one more edit: re-scored again at once.
    with qtbot.waitSignal(controller.rescored, timeout=20_000):
        w.undo_action.trigger()
    assert controller.live[0].images[key].miou == pytest.approx(before.miou)
    with qtbot.waitSignal(controller.rescored, timeout=20_000):
        w.redo_action.trigger()
    radius = bar.radius.value()
    w.brush_bigger_action.trigger()
    w.brush_smaller_action.trigger()
    w.brush_smaller_action.trigger()
    assert bar.radius.value() == radius - 2
    # Evaluate on edited GT off: evaluated again on the original labels.
    with qtbot.waitSignal(controller.evaluation_finished, timeout=60_000):
        w.edited_gt_action.trigger()
    assert "original labels" in w.compare.verdict.text()
    assert controller.live[0].images[key].miou == pytest.approx(before.miou)


def test_tools_menu_benchmark_export_refusal_and_quantize_cancel(qtbot, controller, scenes, models) -> None:
    _open_through_menus(qtbot, controller, scenes, models)
    w = controller.window
    w.benchmark_action.trigger()
    qtbot.waitUntil(lambda: "Benchmark done" in w.statusBar().currentMessage(), timeout=120_000)
    assert "p50" in w.log.toPlainText().lower()
    w.export_action.trigger()  # model A is ONNX already: said so, nothing asked
    assert "Keras or Hugging Face" in w.statusBar().currentMessage()
    dialogs = _answer(controller, "")
    w.quantize_action.trigger()  # the user cancels the save dialog: nothing runs
    assert dialogs.asked == ["INT8 model"] and controller.pool.is_idle()


def test_cancel_with_escape_and_evaluate_with_f5(qtbot, controller, scenes, models) -> None:
    _open_through_menus(qtbot, controller, scenes, models)
    w = controller.window
    w.evaluate_action.trigger()
    assert w.cancel_action.isEnabled()
    w.cancel_action.trigger()
    assert not w.cancel_action.isEnabled() and "cancelled" in w.statusBar().currentMessage()
    with qtbot.waitSignal(controller.evaluation_finished, timeout=60_000):
        w.evaluate_action.trigger()


def test_theme_menu(qtbot, controller) -> None:
    from PySide6.QtGui import QPalette

    w = controller.window
    try:
        w.theme_actions["dark"].trigger()
        assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() < 100
    finally:
        w.theme_actions["system"].trigger()


def test_marked_regions_are_drawn_on_the_panels_and_marks_explained(qtbot, controller, scenes, models):
    from PySide6.QtWidgets import QGraphicsRectItem

    _open_through_menus(qtbot, controller, scenes, models)
    w = controller.window
    w.toggle_gt_action.trigger()
    view = w.compare.gt_panel.view
    _answer(controller, "pole hidden by a tree")
    w.review.box_requested.emit()  # "Mark region", then a drag on the ground-truth panel
    view.pointer_pressed.emit(10.0, 10.0, Qt.MouseButton.LeftButton)
    view.pointer_released.emit(60.0, 40.0)
    for panel in w.compare.panels:
        frames = [i for i in panel.view.scene().items() if isinstance(i, QGraphicsRectItem) and i.toolTip()]
        assert [f.toolTip() for f in frames] == ["pole hidden by a tree"]
        assert frames[0].rect().getRect() == (10.0, 10.0, 50.0, 30.0)
    w.review.flag_boxes["to-review"].setChecked(True)
    row = w.image_list.current_row()
    model = w.image_list.model
    assert "T" in model.data(model.index(row, 0))
    assert "initials of the review flags" in model.data(model.index(row, 0), Qt.ItemDataRole.ToolTipRole)
