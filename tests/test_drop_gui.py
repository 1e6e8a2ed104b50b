"""Dropping files on the real main window: what the model registry opens (.onnx, .keras, .h5, manifests,
Hugging Face checkpoint folders) becomes model A then B; any other folder opens as a dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import require
from modelzoo import make_onnx_segmenter
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from app.core.domain.labels import TRAINIDS
from app.core.scenes.generator import generate

pytestmark = pytest.mark.gui
SIZE = (32, 64)


@pytest.fixture
def controller(qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("SEGLENS_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("SEGLENS_CACHE", str(tmp_path / "cache"))
    from app.controllers.main_controller import MainController

    ctrl = MainController()
    ctrl.auto_evaluate = False
    qtbot.addWidget(ctrl.window)
    ctrl.window.show()
    yield ctrl
    ctrl.shutdown()


def drop(window, *paths: Path) -> QDropEvent:
    """Drop `paths` (file URLs, as a file manager sends them) in the middle of the window, over the image
    view, the way the platform delivers it: drag-enter then drop on the native window, which routes both
    to the widget under the cursor that accepts drops."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPoint(window.width() // 2, window.height() // 2)
    action, button, modifier = (
        Qt.DropAction.CopyAction,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    enter = QDragEnterEvent(pos, action, mime, button, modifier)
    QApplication.sendEvent(window.windowHandle(), enter)
    assert enter.isAccepted()
    event = QDropEvent(QPointF(pos), action, mime, button, modifier)
    QApplication.sendEvent(window.windowHandle(), event)
    assert event.isAccepted()
    return event


def _dropped_models(qtbot, controller, *paths: Path) -> list[str]:
    """Drop `paths` and wait until each is loaded; the backends of models A and B."""
    with qtbot.waitSignals([controller.model_loaded] * len(paths), timeout=120_000):
        drop(controller.window, *paths)
    return [p.info.backend for p in controller.predictors if p is not None]


def test_onnx_file_and_dataset_folder(qtbot, controller, tmp_path) -> None:
    data = generate(tmp_path / "data", 2, size=SIZE, seed=1)
    onnx = make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names, input_size=None, seed=2)
    with qtbot.waitSignal(controller.dataset_loaded, timeout=20_000):
        drop(controller.window, data)
    assert controller.dataset is not None and len(controller.dataset) == 2
    assert _dropped_models(qtbot, controller, onnx) == ["onnx"]


def test_keras_and_h5_files_open_as_models_a_and_b(qtbot, controller, tmp_path) -> None:
    keras = require("keras")
    require("tensorflow")
    from keras_models import build_vgg16_unet

    keras.utils.set_random_seed(0)
    model = build_vgg16_unet((*SIZE, 3), 8, width=0.125)
    model.save(tmp_path / "unet.keras")
    model.save(tmp_path / "unet.h5")
    assert _dropped_models(qtbot, controller, tmp_path / "unet.keras", tmp_path / "unet.h5") == [
        "keras",
        "keras",
    ]
    sources = sorted(Path(p.info.source).name for p in controller.predictors if p is not None)
    assert sources == ["unet.h5", "unet.keras"]


def test_hugging_face_folder_is_a_model_not_a_dataset(qtbot, controller, tmp_path) -> None:
    require("torch")
    require("transformers")
    import hf_models

    data = generate(tmp_path / "data", 2, size=SIZE, seed=1)
    with qtbot.waitSignal(controller.dataset_loaded, timeout=20_000):
        controller.open_dataset(data)
    opened = controller.dataset
    checkpoint = hf_models.save_segformer(tmp_path / "segformer", size=SIZE)
    assert _dropped_models(qtbot, controller, checkpoint) == ["hf"]
    assert controller.dataset is opened  # the folder did not replace the dataset
    assert Path(controller.predictors[0].info.source).resolve() == checkpoint.resolve()


def test_unknown_file_is_reported_in_the_log(qtbot, controller, tmp_path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    drop(controller.window, notes)
    log = controller.window.log.toPlainText()
    assert "notes.txt" in log and ".keras" in log and ".onnx" in log
    assert all(p is None for p in controller.predictors)
