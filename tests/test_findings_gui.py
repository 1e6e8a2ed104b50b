"""The Findings dock through the real window: two models that agree against a planted wrong label list it
first; a click opens its image with the region outlined; Export writes the lists; the image table's
"Likely label errors" preset keeps only that image. Model B is blind to cars: the cars A finds are listed
as missed by B."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from modelzoo import centroids_from_colors, make_onnx_segmenter
from PIL import Image
from PySide6.QtCore import Qt

from app.analysis.instances import missed_objects_csv
from app.analysis.label_errors import label_errors_csv
from app.core.domain.labels import LABELS, TRAINIDS
from app.core.scenes.generator import generate
from app.evaluation.frames import Highlight
from app.views.dialogs import Dialogs

pytestmark = pytest.mark.gui

PLANTED = (40, 10, 100, 40)  # x0, y0, x1, y1 (exclusive) of the wrong label, in the second image
ROAD, CAR = TRAINIDS.names.index("road"), TRAINIDS.names.index("car")


class _Answers(Dialogs):
    """Answers the window's file questions from a list, in order, and records the titles asked."""

    def __init__(self, parent: Any, answers: list[Any]) -> None:
        super().__init__(parent)
        self.answers, self.asked = list(answers), []

    def _next(self, title: str) -> str:
        self.asked.append(title)
        assert self.answers, f"unexpected dialog {title!r}"
        return str(self.answers.pop(0))

    def existing_directory(self, title: str, start: str = "") -> str:
        return self._next(title)

    def open_file(self, title: str, start: str = "", filters: str = "") -> str:
        return self._next(title)

    def save_file(self, title: str, start: str = "", filters: str = "") -> str:
        return self._next(title)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Four scenes whose photos are their labels' class colours (so a nearest-colour model is right on
    every pixel), and in the second one a box labelled car over pixels painted road: a wrong label."""
    root = generate(tmp_path_factory.mktemp("findings-data"), 4, size=(96, 192), seed=5)
    lut = np.zeros((256, 3), dtype=np.uint8)
    for label in LABELS:
        if 0 <= label.train_id < 255:
            lut[label.id] = label.color
    gts = sorted((root / "gtFine").rglob("*_gtFine_labelIds.png"))
    for index, gt_path in enumerate(gts):
        labels = np.asarray(Image.open(gt_path))
        image = lut[labels]
        if index == 1:
            x0, y0, x1, y1 = PLANTED
            image[y0:y1, x0:x1] = TRAINIDS.colors[ROAD]
            labels = labels.copy()
            labels[y0:y1, x0:x1] = next(lb.id for lb in LABELS if lb.name == "car")
            Image.fromarray(labels).save(gt_path)
        city, stem = gt_path.parent.name, gt_path.name.replace("_gtFine_labelIds.png", "")
        Image.fromarray(image).save(root / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png")
    key_stem = gts[1].name.replace("_gtFine_labelIds.png", "")
    return root, key_stem


@pytest.fixture(scope="module")
def colour_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A: the nearest class colour (right everywhere). B: the same, but blind to cars (its car colour
    is far from any pixel), so it misses every car A finds."""
    root = tmp_path_factory.mktemp("findings-models")
    names = TRAINIDS.names
    good = centroids_from_colors(TRAINIDS.colors)
    blind = good.copy()
    blind[CAR] = 50.0  # no pixel's normalized colour is near it
    a = make_onnx_segmenter(
        root / "colours.onnx", names, input_size=None, weights="centroid", centroids=good, downsample=1
    )
    b = make_onnx_segmenter(
        root / "no-cars.onnx", names, input_size=None, weights="centroid", centroids=blind,
        downsample=1, output="labels",
    )  # fmt: skip
    return a, b


@pytest.fixture
def controller(qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("SEGLENS_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("SEGLENS_CACHE", str(tmp_path / "cache"))
    from app.controllers.main_controller import MainController

    ctrl = MainController()
    qtbot.addWidget(ctrl.window)
    ctrl.window.show()
    yield ctrl
    ctrl.shutdown()


def _open(qtbot, ctrl, data: Path, models: tuple[Path, Path]) -> None:
    w = ctrl.window
    w.dialogs = _Answers(w, [data, models[0], models[1]])
    with qtbot.waitSignal(ctrl.dataset_loaded, timeout=20_000):
        w.open_dataset_action.trigger()
    for action in (w.model_a_action, w.model_b_action):
        with qtbot.waitSignal(ctrl.model_loaded, timeout=20_000):
            action.trigger()
    qtbot.waitUntil(lambda: ctrl.result is not None and w.findings.errors.rowCount() > 0, timeout=60_000)


def _click(qtbot, table, row: int) -> None:
    item = table.item(row, 0)
    table.scrollToItem(item)
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=table.visualItemRect(item).center())


def _row_of(ctrl, stem: str) -> int:
    return next(i for i, ref in enumerate(ctrl.dataset.refs) if stem in ref.key)


def test_planted_label_error_listed_first_opened_exported_and_filtered(
    qtbot, controller, planted, colour_models, tmp_path
) -> None:
    data, stem = planted
    _open(qtbot, controller, data, colour_models)
    w = controller.window
    w.findings_dock.show()
    w.findings_dock.raise_()
    panel = w.findings
    # The planted region first: its image, what the label says, what both models say, its size.
    first = [panel.errors.item(0, c).text() for c in range(panel.errors.columnCount())]
    x0, y0, x1, y1 = PLANTED
    assert first[0] == "1" and first[1:3] == ["car", "road"] and first[4] == stem
    assert int(first[3].replace(",", "")) == (x1 - x0) * (y1 - y0)
    assert "scheme trainids · original labels · 4 of 4 images analyzed" in panel.basis.text()
    # A click: its image selected in the table, its pixels outlined in panel A, zoomed to.
    target = _row_of(controller, stem)
    w.image_list.select_row(0 if target else 1)
    qtbot.waitUntil(lambda: controller.frame is not None and controller.current_row != target)
    with qtbot.waitSignal(controller.frame_shown, timeout=20_000):
        _click(qtbot, panel.errors, 0)
    assert w.image_list.current_row() == target
    assert controller.state.view.highlight == Highlight(0, CAR, ROAD, box=PLANTED, agree=True)
    qtbot.waitUntil(lambda: "in the finding's box" in w.compare.stats.text(), timeout=20_000)
    assert w.compare.stats.text().startswith(
        f"{(x1 - x0) * (y1 - y0)} pixels of car predicted as road by both models"
    )
    assert not w.compare.a_panel.view._fit  # zoomed onto the region, not the whole image
    # Export: the lists as CSV, the same rows as the evaluation's (the path answered through the seam).
    out = tmp_path / "findings.csv"
    w.dialogs = answers = _Answers(w, [out])
    qtbot.mouseClick(panel.export_button, Qt.MouseButton.LeftButton)
    assert answers.asked == ["Export findings"]
    analysis = controller.result.analysis
    assert out.read_text() == label_errors_csv(analysis.label_errors)
    rows = list(csv.DictReader(out.open()))
    assert (
        stem in rows[0]["key"] and rows[0]["ground_truth"] == "car" and len(rows) == panel.errors.rowCount()
    )
    missed_csv = tmp_path / "findings_missed_objects.csv"
    assert missed_csv.read_text() == missed_objects_csv(analysis.missed)
    # The image table's preset: only the images with likely label errors, largest area first, said so.
    box = w.image_list.preset
    box.setCurrentIndex(box.findData("label_errors"))
    box.activated.emit(box.currentIndex())
    assert w.image_list.visible_rows() == [target]
    assert w.image_list.sort_reason.text().startswith("Likely label errors: 1 images, sorted by pixels")
    box.setCurrentIndex(box.findData("regressions"))
    box.activated.emit(box.currentIndex())
    assert len(w.image_list.visible_rows()) == 4  # another preset: every image again


def test_missed_objects_listed_by_the_model_that_misses_them(
    qtbot, controller, planted, colour_models
) -> None:
    _open(qtbot, controller, planted[0], colour_models)
    panel = controller.window.findings
    controller.window.findings_dock.raise_()
    missed = controller.result.analysis.missed
    assert missed is not None and missed.a_finds_b_misses and not missed.b_finds_a_misses
    assert panel.missed.rowCount() == len(missed.a_finds_b_misses)
    instance = missed.a_finds_b_misses[0]
    cells = [panel.missed.item(0, c).text() for c in range(panel.missed.columnCount())]
    assert cells[:5] == ["B", "car", instance.size, "100%", "0%"] and instance.key.endswith(cells[5])
    _click(qtbot, panel.missed, 0)
    assert controller.state.view.highlight == Highlight(1, CAR, -1, box=instance.bbox)
    assert controller.dataset.refs[controller.current_row].key == instance.key
    qtbot.waitUntil(lambda: "car predicted as another class" in controller.window.compare.stats.text())


def test_statistics_toggle_off_skips_the_findings_and_is_remembered(
    qtbot, controller, planted, colour_models
) -> None:
    from app.controllers.findings import OFF_TEXT
    from app.controllers.preferences import window_settings

    _open(qtbot, controller, planted[0], colour_models)
    w = controller.window
    action = w.statistics_action
    assert action.isChecked()  # on by default for a small set
    action.trigger()  # View -> Statistics per image: off
    assert controller.state.view.statistics is False and not action.isChecked()
    assert w.findings.errors.rowCount() == 0 and w.findings.basis.text() == OFF_TEXT
    assert str(window_settings().value("view/statistics")).lower() == "false"
    with qtbot.waitSignal(controller.evaluation_finished, timeout=60_000):
        w.evaluate_action.trigger()
    analysis = controller.result.analysis
    # Without the statistics: no label errors, no instances, but the paired bootstrap of the verdict stays.
    assert analysis is not None and analysis.label_errors == () and analysis.missed is None
    assert analysis.bootstrap is not None and w.findings.errors.rowCount() == 0
    with qtbot.waitSignal(controller.evaluation_finished, timeout=60_000):
        action.trigger()  # on again: the evaluation runs again to list the findings
    assert controller.state.view.statistics is True and w.findings.errors.rowCount() > 0
