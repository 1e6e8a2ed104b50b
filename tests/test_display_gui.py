"""Per-panel mask styles, content modes, shortcuts and themes, driven through the real main window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPalette
from PySide6.QtWidgets import QApplication, QLabel

from app.core.display.overlay import contours
from app.core.display.render import error_map
from app.core.domain.labels import IGNORE, TRAINIDS

pytestmark = pytest.mark.gui
pytest_plugins = ("gui_data",)  # the scenes and models fixtures


def _open(qtbot, scenes: Path, models: tuple[Path, Path]):
    from app.controllers.main_controller import MainController

    ctrl = MainController()
    qtbot.addWidget(ctrl.window)
    ctrl.window.show()
    ctrl.auto_evaluate = False
    with qtbot.waitSignal(ctrl.dataset_loaded, timeout=20_000):
        ctrl.open_dataset(scenes)
    for slot, path in enumerate(models):
        with qtbot.waitSignal(ctrl.model_loaded, timeout=20_000):
            ctrl.set_model(slot, path)
    qtbot.waitUntil(lambda: ctrl.frame is not None and len(ctrl.frame.pred_class) == 2, timeout=20_000)
    ctrl.pool.wait_idle(20_000)
    return ctrl


@pytest.fixture
def controller(qtbot, scenes, models):
    ctrl = _open(qtbot, scenes, models)
    yield ctrl
    ctrl.shutdown()


def _rgba(image: QImage) -> np.ndarray:
    """A QImage as HxWx4 uint8 RGBA (straight alpha)."""
    image = image.convertToFormat(QImage.Format.Format_RGBA8888)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : image.width() * 4].reshape(image.height(), image.width(), 4).copy()


def _mask(panel) -> np.ndarray:
    return _rgba(panel.view.mask_item.pixmap().toImage())


def _rendered(panel) -> np.ndarray:
    """What the panel's scene shows at 1:1 over black: the image (if visible) and the mask at its opacity."""
    rect = panel.view.image_item.pixmap().rect()
    out = QImage(rect.width(), rect.height(), QImage.Format.Format_RGB32)
    out.fill(QColor(0, 0, 0))
    painter = QPainter(out)
    panel.view.scene().render(painter, QRectF(rect), QRectF(rect))
    painter.end()
    return _rgba(out)[..., :3].astype(int)


def _set_style(qtbot, controller, panel, style: str, rerender: bool) -> None:
    index = panel.style_box.findData(style)
    assert index >= 0
    if rerender:
        with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
            panel.style_box.setCurrentIndex(index)
    else:
        panel.style_box.setCurrentIndex(index)


def test_style_of_one_panel_changes_that_panel_only(qtbot, controller) -> None:
    compare = controller.window.compare
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        compare.show_gt.setChecked(True)
    before = [_mask(p) for p in compare.panels]
    _set_style(qtbot, controller, compare.b_panel, "contours", rerender=True)
    after = [_mask(p) for p in compare.panels]
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    # B keeps exactly its class outlines (ignored pixels stay clear), in the class colours of the fill.
    pred_b = controller.frame.pred_class[1]
    outline = contours(pred_b) & (pred_b != IGNORE)
    assert outline.any() and not outline.all()
    np.testing.assert_array_equal(after[2][..., 3] > 0, outline)
    np.testing.assert_array_equal(after[2][outline], before[2][outline])
    assert all(p.view.image_item.isVisible() for p in compare.panels)
    # The E key's content still applies to every panel, each in its own style: A filled errors, B outlined.
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        compare.mode.setCurrentIndex(compare.mode.findData("errors"))
    # The error key is plain text with swatches, not greyed-out (disabled) checkboxes.
    labels = compare.legend.findChildren(QLabel)
    assert compare.legend.entries == [] and {"correct", "wrong"} <= {label.text() for label in labels}
    assert all(label.isEnabled() for label in labels)
    frame = controller.frame
    codes = [error_map(frame.gt_class, pred) for pred in frame.pred_class]
    np.testing.assert_array_equal(_mask(compare.a_panel)[..., 3] > 0, codes[0] != 0)
    np.testing.assert_array_equal(_mask(compare.b_panel)[..., 3] > 0, contours(codes[1]) & (codes[1] != 0))


def test_mask_alone_on_b_keeps_a_blended(qtbot, controller) -> None:
    compare = controller.window.compare
    compare.opacity.setValue(30)
    _set_style(qtbot, controller, compare.b_panel, "mask", rerender=False)  # same layer: no new render
    assert not compare.b_panel.view.image_item.isVisible()
    assert compare.a_panel.view.image_item.isVisible() and compare.gt_panel.view.image_item.isVisible()
    frame = controller.frame
    colors = np.array([*TRAINIDS.colors, *[(0, 0, 0)] * (256 - len(TRAINIDS.colors))])
    image = frame.image.astype(int)
    shown_a, shown_b = _rendered(compare.a_panel), _rendered(compare.b_panel)
    pred_a, pred_b = frame.pred_class
    # B: the mask alone, opaque; no trace of the photo.
    valid_b = pred_b != IGNORE
    np.testing.assert_array_equal(shown_b[valid_b], colors[pred_b[valid_b]])
    # A: the photo with its mask blended at the slider's 30 %.
    valid_a = pred_a != IGNORE
    expected_a = image * 0.7 + colors[pred_a] * 0.3
    assert np.abs(shown_a[valid_a] - expected_a[valid_a]).max() <= 3
    # The slider moves A and leaves B opaque.
    compare.opacity.setValue(80)
    assert compare.a_panel.view.mask_item.opacity() == pytest.approx(0.8)
    assert compare.b_panel.view.mask_item.opacity() == 1.0
    np.testing.assert_array_equal(_rendered(compare.b_panel), shown_b)
    # Space hides the masks: the mask-alone panel shows its image then rather than nothing.
    controller.window.toggle_masks_action.trigger()
    assert compare.b_panel.view.image_item.isVisible() and not compare.b_panel.view.mask_item.isVisible()
    controller.window.toggle_masks_action.trigger()
    assert not compare.b_panel.view.image_item.isVisible() and compare.b_panel.view.mask_item.isVisible()
    # Back to filled: B blends again at the slider's opacity.
    _set_style(qtbot, controller, compare.b_panel, "filled", rerender=False)
    assert compare.b_panel.view.image_item.isVisible()
    assert compare.b_panel.view.mask_item.opacity() == pytest.approx(0.8)


def test_s_cycles_all_panels_and_hover_hidden_and_highlight_keep_working(qtbot, controller) -> None:
    window, compare = controller.window, controller.window.compare
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        window.cycle_style_action.trigger()
    assert compare.styles() == ("contours",) * 3
    window.cycle_style_action.trigger()  # contours -> mask alone: a new render of filled layers
    qtbot.waitUntil(lambda: controller.pool.is_idle(), timeout=20_000)
    assert compare.styles() == ("mask",) * 3
    assert not any(p.view.image_item.isVisible() for p in compare.panels)
    pred_a = controller.frame.pred_class[0]
    np.testing.assert_array_equal(_mask(compare.a_panel)[..., 3] > 0, pred_a != IGNORE)
    # Hiding a class from the legend still clears it, in mask-alone and in contours.
    road = 0
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        compare.legend.entries[road].setChecked(False)
    np.testing.assert_array_equal(_mask(compare.a_panel)[..., 3] > 0, (pred_a != IGNORE) & (pred_a != road))
    _set_style(qtbot, controller, compare.a_panel, "contours", rerender=True)
    outline = contours(pred_a) & (pred_a != IGNORE) & (pred_a != road)
    np.testing.assert_array_equal(_mask(compare.a_panel)[..., 3] > 0, outline)
    # Hover names the classes whatever the styles.
    compare.hovered.emit(5, 40)
    assert compare.readout.text().startswith("(5, 40)   GT: ") and compare.readout.text().count(": ") == 3
    # A confusion highlight in an outlined panel: magenta outline pixels, the full count in the caption.
    frame = controller.frame
    gt, pred = frame.gt_class, frame.pred_class[0]
    wrong = (gt != pred) & (gt != IGNORE) & (pred != IGNORE)
    g, p = int(gt[wrong][0]), int(pred[wrong][0])
    from app.evaluation.frames import Highlight

    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        controller.state.update(highlight=Highlight(0, g, p))
    selected = (gt == g) & (pred == p)
    magenta = np.all(_mask(compare.a_panel) == [255, 0, 255, 255], axis=2)
    assert magenta.any() and not (magenta & ~selected).any()
    assert f"{int(selected.sum())} pixels of" in compare.stats.text()


def test_styles_content_and_theme_persist(qtbot, monkeypatch, tmp_path, scenes, models) -> None:
    from app.core.storage.settings import load_settings

    monkeypatch.setenv("SEGLENS_CONFIG", str(tmp_path / "cfg"))
    first = _open(qtbot, scenes, models)
    compare = first.window.compare
    compare.set_styles(("mask", "filled", "contours"))
    compare.show_gt.setChecked(True)
    compare.mode.setCurrentIndex(compare.mode.findData("disagreement"))
    first.window.theme_actions["dark"].trigger()
    first.shutdown()
    saved = load_settings()
    assert (saved.panel_styles, saved.display_mode, saved.theme, saved.show_gt) == (
        ["mask", "filled", "contours"],
        "disagreement",
        "dark",
        True,
    )
    second = _open(qtbot, scenes, models)
    try:
        assert second.window.theme_actions["dark"].isChecked()
        assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() < 100
        second.preferences.restore_view()  # as the launcher does once the window is shown
        compare = second.window.compare
        assert compare.styles() == ("mask", "filled", "contours")
        view = second.state.view
        assert view.display_mode == "disagreement" and view.panel_styles == ("mask", "filled", "contours")
        assert compare.show_gt.isChecked() and compare.gt_panel.isVisibleTo(second.window)
        assert not compare.gt_panel.view.image_item.isVisible()
        assert compare.a_panel.view.image_item.isVisible()
    finally:
        second.window.theme_actions["system"].trigger()
        second.shutdown()
    assert QApplication.palette().color(QPalette.ColorRole.Window).lightness() > 150


def test_view_choices_are_saved_a_second_after_a_change_without_closing(
    qtbot, monkeypatch, tmp_path, scenes, models
) -> None:
    from app.core.storage.settings import load_settings

    monkeypatch.setenv("SEGLENS_CONFIG", str(tmp_path / "cfg"))
    ctrl = _open(qtbot, scenes, models)
    compare = ctrl.window.compare
    compare.opacity.setValue(23)
    compare.set_styles(("filled", "contours", "mask"))
    compare.mode.setCurrentIndex(compare.mode.findData("errors"))
    assert load_settings().opacity != 0.23  # nothing written while the user is still changing things
    qtbot.waitUntil(lambda: load_settings().opacity == 0.23, timeout=5_000)
    saved = load_settings()
    assert (saved.panel_styles, saved.display_mode) == (["filled", "contours", "mask"], "errors")


def test_window_layout_is_saved_a_second_after_it_changes(
    qtbot, monkeypatch, tmp_path, scenes, models
) -> None:
    from PySide6.QtCore import Qt

    from app.controllers.preferences import window_settings

    monkeypatch.setenv("SEGLENS_CONFIG", str(tmp_path / "cfg"))
    ctrl = _open(qtbot, scenes, models)
    window = ctrl.window
    qtbot.waitUntil(lambda: window_settings().value("window/state") is not None, timeout=5_000)
    before = window_settings().value("window/state")
    dock = window.metrics_dock
    window.removeDockWidget(dock)
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)  # the user moved the metrics
    dock.show()
    qtbot.waitUntil(lambda: window_settings().value("window/state") != before, timeout=5_000)
    ctrl.shutdown()
    final = window_settings().value("window/state")
    dock.hide()  # after the final save nothing is written any more
    qtbot.wait(1_500)
    assert window_settings().value("window/state") == final


def test_dark_theme_recolours_charts_and_deltas(qtbot, controller) -> None:
    from app.views.theme import delta_colors

    window = controller.window
    light_better, _ = delta_colors()
    try:
        window.theme_actions["dark"].trigger()
        palette = QApplication.palette()
        base, text = palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text)
        assert base.lightness() < 60 and text.lightness() > 200
        heatmap = window.metrics.heatmap
        # Widgets hear of the new application palette through posted events; the heatmap paints its
        # names in the palette's text colour.
        qtbot.waitUntil(lambda: heatmap.palette().color(QPalette.ColorRole.WindowText) == text, timeout=5_000)
        better, worse = delta_colors()
        assert better.lightness() > light_better.lightness() and worse.lightness() > 150
        window.theme_actions["light"].trigger()
        light_text = QApplication.palette().color(QPalette.ColorRole.Text)
        assert light_text.lightness() < 60
        qtbot.waitUntil(
            lambda: heatmap.palette().color(QPalette.ColorRole.WindowText).lightness() < 60, timeout=5_000
        )
    finally:
        window.theme_actions["system"].trigger()


def test_shortcuts_are_unique_and_listed(qtbot, controller, monkeypatch) -> None:
    window = controller.window
    keys = [a.shortcut().toString() for a in window.actions() if not a.shortcut().isEmpty()]
    keys += [b.shortcut().toString() for b in window.compare.edit_bar.buttons.values()]
    assert len(keys) == len(set(keys)), sorted(keys)
    rows: list[dict[str, str]] = []
    monkeypatch.setattr(
        "app.controllers.preferences.ShortcutsDialog.exec",
        lambda self: rows.append(
            {self.table.item(r, 0).text(): self.table.item(r, 1).text() for r in range(self.table.rowCount())}
        ),
    )
    window.shortcuts_action.trigger()
    assert rows[0]["Filled / contours / mask alone"] == "S"
    assert rows[0]["Classes / errors / A vs B"] == "E"


def test_view_choices_match_the_render_keys() -> None:
    from app.core.display.render import CONTENTS, STYLES
    from app.views.compare_view import CompareView
    from app.views.image_panel import STYLES as PANEL_STYLES

    assert tuple(key for key, _ in PANEL_STYLES) == STYLES
    assert tuple(key for key, _ in CompareView.MODES) == CONTENTS


def _legend_texts(legend) -> list[str]:
    grid = legend._grid
    texts = []
    for i in range(grid.count()):
        widget = grid.itemAt(i).widget()
        labels = [widget] if hasattr(widget, "text") else widget.findChildren(QLabel)
        texts += [label.text() for label in labels if label.text()]
    return texts


def test_legend_keys_follow_the_content_and_a_scheme_change(qtbot, controller) -> None:
    window = controller.window
    compare = window.compare
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        compare.mode.setCurrentIndex(compare.mode.findData("disagreement"))
    # A vs B: panel A keeps its right/wrong map, panel B shows the four cases: both keys are listed.
    assert _legend_texts(compare.legend) == [
        "A correct",
        "A wrong",
        "B: both right",
        "B: A right, B wrong",
        "B: B right, A wrong",
        "B: both wrong",
    ]
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        compare.mode.setCurrentIndex(compare.mode.findData("errors"))
    assert _legend_texts(compare.legend) == ["correct", "wrong"]
    # Another scheme re-evaluates, but the masks still show errors: the legend must say so.
    other = next(i for i in range(window.scheme_box.count()) if i != window.scheme_box.currentIndex())
    window.scheme_box.setCurrentIndex(other)
    assert _legend_texts(compare.legend) == ["correct", "wrong"]
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        compare.mode.setCurrentIndex(compare.mode.findData("classes"))
    assert _legend_texts(compare.legend) == list(controller.scheme.names)
    controller.pool.wait_idle(30_000)


def test_long_model_names_are_shown_whole_above_the_table(qtbot) -> None:
    from app.views.metrics_panel import MetricsPanel, ModelSummary

    panel = MetricsPanel()
    qtbot.addWidget(panel)
    panel.resize(300, 600)
    panel.show()
    names = ["vgg16-unet-baseline-256x512-fp32", "segformer-b2-cityscapes-1024x1024-int8"]
    summaries = [ModelSummary(n, 0.5, 0.4, 0.6, 0.9, 300.0, 3, [0.5] * 8, None) for n in names]
    panel.set_models(summaries, [f"c{i}" for i in range(8)])
    # The column titles are the slots; the names are whole in the (wrapping) line above the table.
    assert [panel.summary.horizontalHeaderItem(c).text() for c in (0, 1)] == ["A", "B"]
    assert f"A: {names[0]}" in panel.names.text() and f"B: {names[1]}" in panel.names.text()
    assert panel.names.wordWrap()


def test_image_column_fills_a_wide_list_and_keeps_its_width_in_a_narrow_one(qtbot) -> None:
    from app.views.image_list import ImageList

    images = ImageList()
    qtbot.addWidget(images)
    images.resize(400, 500)
    images.show()
    rows = [(f"frankfurt_000000_{i:06d}", "frankfurt") for i in range(20)]
    images.set_dataset(rows, ["frankfurt"], ["road", "car"])
    table, header = images.table, images.table.horizontalHeader()

    def visible_width() -> int:
        return sum(header.sectionSize(c) for c in range(header.count()) if not header.isSectionHidden(c))

    fitted = images._name_width
    assert fitted > 0
    images.resize(900, 500)
    qtbot.waitUntil(lambda: visible_width() == table.viewport().width(), timeout=5_000)
    assert header.sectionSize(0) > fitted
    images.focus.setCurrentIndex(1)  # the class columns appear: the image column gives them room
    qtbot.waitUntil(lambda: visible_width() == table.viewport().width(), timeout=5_000)
    images.resize(230, 500)
    # Narrow: the thumbnails go first, then the name gives way (elided on the left) down to a readable
    # minimum; below that the table scrolls sideways.
    qtbot.waitUntil(lambda: header.sectionSize(0) < fitted, timeout=5_000)
    assert not images.model.show_thumbnails and table.iconSize().width() == 0
    assert table.textElideMode() == Qt.TextElideMode.ElideLeft
    assert header.sectionSize(0) >= table.fontMetrics().horizontalAdvance("M") * 9
    images.resize(900, 500)  # wide again: the thumbnails are back
    qtbot.waitUntil(lambda: images.model.show_thumbnails, timeout=5_000)


def test_confusion_matrix_names_hover_void_and_selected_cell(qtbot) -> None:
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtGui import QMouseEvent

    from app.views.heatmap import ConfusionHeatmap

    heatmap = ConfusionHeatmap()
    qtbot.addWidget(heatmap)
    names = ["void", "flat", "construction", "object", "nature", "sky", "human", "vehicle"]
    counts = np.arange(8 * 9, dtype=np.int64).reshape(8, 9)
    values = counts / counts.sum(axis=1, keepdims=True)
    heatmap.resize(400, 400)
    heatmap.show()
    heatmap.set_values((values, (0.0, 1.0)), names, counts, ignored=[0])
    assert heatmap._keep == list(range(1, 8))  # void left out (and said so under the matrix)
    # Every cell maps back to its classes; hover gives the count and its share of the GT row.
    font, label, cell, grid = heatmap._layout()
    centre = QPoint(int(grid.left() + 2.5 * cell), int(grid.top() + 1.5 * cell))  # row "construction"
    assert heatmap._cell_at(centre) == (2, 3)
    text = heatmap.hover_text(2, 3)
    assert "GT construction → predicted object" in text
    assert (
        f"{counts[2, 3]:,} px" in text
        and f"{counts[2, 3] / counts[2].sum() * 100:.1f}% of construction" in text
    )
    assert "other" in heatmap.hover_text(2, 8)
    # A click selects (outlined in magenta) and asks for the drill-down.
    with qtbot.waitSignal(heatmap.cell_clicked) as clicked:
        event = QMouseEvent(
            QMouseEvent.Type.MouseButtonPress,
            QPointF(centre),
            QPointF(heatmap.mapToGlobal(centre)),
            Qt.MouseButton.LeftButton,
            Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(heatmap, event)
    assert clicked.args == [2, 3] and heatmap.selected == (2, 3)
    image = heatmap.grab().toImage()
    edge = image.pixelColor(int(grid.left() + 2 * cell), int(grid.top() + 1.5 * cell))
    assert (edge.red(), edge.green(), edge.blue()) == (255, 0, 255)
    # Small: the names shrink to a smaller font (never below 7 px) but every class keeps its label.
    heatmap.resize(200, 200)
    font, label, cell, grid = heatmap._layout()
    assert font.pixelSize() == -1 or font.pixelSize() >= 7
    assert label > 20


def test_legend_replaces_its_entries_at_once(qtbot) -> None:
    from PySide6.QtWidgets import QWidget

    from app.views.compare_view import Legend

    legend = Legend()
    qtbot.addWidget(legend)
    legend.resize(700, 80)
    legend.show()
    legend.set_classes(TRAINIDS.names[:8], TRAINIDS.colors[:8])
    old = list(legend.entries)
    qtbot.waitUntil(lambda: all(entry.isVisible() for entry in old))
    keys = [("A correct", (0, 160, 0)), ("A wrong", (220, 0, 0)), ("both right", (90, 90, 90))]
    legend.set_classes([k for k, _ in keys], [c for _, c in keys], checkable=False)
    # Before any event-loop pass (deleteLater has not run yet) the old checkboxes must be gone from view:
    # they used to stay drawn under the new keys until the next pass.
    assert not any(entry.isVisible() for entry in old)
    qtbot.waitUntil(lambda: len([w for w in legend.findChildren(QWidget) if w.isVisible()]) >= 3)
