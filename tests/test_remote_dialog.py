"""The "Add hosted model" dialog, driven through the real main window: choose a preset, try the connection
(health + one prediction on the worker pool), see the answer, then save and use the model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import require
from modelzoo import make_onnx_segmenter
from PySide6.QtCore import Qt

from app.inference.backends.onnx_backend import OnnxSegmenter
from app.inference.backends.rest_presets import APP_CLASSES

pytestmark = pytest.mark.gui


@pytest.fixture
def p9_server(tmp_path):
    require("fastapi")
    require("python_multipart")
    from hosted_standins import HostedStandIns
    from servers import serve_app

    path = make_onnx_segmenter(
        tmp_path / "p9.onnx",
        APP_CLASSES,
        input_size=None,
        seed=7,
        output="labels",
        input_dtype="uint8",
        layout="NHWC",
        hidden=16,
    )
    model = OnnxSegmenter(path)
    standins = HostedStandIns(model)
    with serve_app(standins.p9()) as url:
        yield url, standins
    model.close()


def _open_dialog(qtbot, ctrl):
    ctrl.window.add_remote_action.trigger()
    dialog = ctrl.tools.remote_dialog
    assert dialog is not None and dialog.isVisible()
    return dialog


def test_try_then_save_a_p9_model(qtbot, tmp_path, monkeypatch, p9_server) -> None:
    from app.controllers.main_controller import MainController

    url, standins = p9_server
    monkeypatch.setenv("SEGLENS_CONFIG", str(tmp_path / "config"))
    ctrl = MainController()
    qtbot.addWidget(ctrl.window)
    ctrl.auto_evaluate = False
    try:
        dialog = _open_dialog(qtbot, ctrl)
        assert not dialog.save_button.isEnabled()  # nothing saved untried
        qtbot.keyClicks(dialog.name, "segformer-p9")
        dialog.select_protocol("p9")
        qtbot.keyClicks(dialog.url, url)
        qtbot.keyClicks(dialog.model, "segformer_b0_fp32")
        standins.seen.clear()
        standins.faults.append("slow")  # the server takes a second: the window must not
        qtbot.mouseClick(dialog.try_button, Qt.MouseButton.LeftButton)
        # The click returned at once, with the try still running on the worker pool.
        assert dialog.status.text().startswith("Trying") and not dialog.try_button.isEnabled()
        qtbot.waitUntil(dialog.save_button.isEnabled, timeout=30_000)
        text = dialog.status.text()
        assert "rest-p9" in text and "8 classes" in text and "found:" in text
        assert "the server reports" in text and "round trip" in text
        assert standins.seen and standins.seen[0]["fields"] == ["image"]
        pixmap = dialog.preview.pixmap()
        assert not pixmap.isNull() and pixmap.width() == 384  # the 256x512 synthetic scene, scaled
        # A change asks for a new try before saving.
        qtbot.keyClicks(dialog.model, "x")
        assert not dialog.save_button.isEnabled() and "again" in dialog.status.text()
        qtbot.keyClick(dialog.model, Qt.Key.Key_Backspace)
        qtbot.mouseClick(dialog.try_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(dialog.save_button.isEnabled, timeout=30_000)
        with qtbot.waitSignal(ctrl.model_loaded, timeout=30_000):
            qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
        assert ctrl.predictors[0].info.backend == "rest-p9"
        saved = json.loads((tmp_path / "config" / "remote" / "segformer-p9.json").read_text())
        assert saved == {
            "name": "segformer-p9",
            "kind": "rest",
            "url": url,
            "options": {"api": "p9", "model": "segformer_b0_fp32"},
        }
    finally:
        ctrl.shutdown()


def test_a_failed_try_says_why_and_blocks_saving(qtbot, tmp_path, monkeypatch, p9_server) -> None:
    from app.controllers.main_controller import MainController

    url, _ = p9_server
    monkeypatch.setenv("SEGLENS_CONFIG", str(tmp_path / "config"))
    ctrl = MainController()
    qtbot.addWidget(ctrl.window)
    try:
        dialog = _open_dialog(qtbot, ctrl)
        qtbot.keyClicks(dialog.name, "bad")
        dialog.select_protocol("p9")
        qtbot.keyClicks(dialog.url, url)
        qtbot.keyClicks(dialog.model, "segformer_b7")
        qtbot.mouseClick(dialog.try_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: dialog.status.text().startswith("Not usable"), timeout=30_000)
        assert "no model 'segformer_b7'" in dialog.status.text()
        assert not dialog.save_button.isEnabled() and dialog.try_button.isEnabled()
        # The generic adapter: a description that is not JSON is named before anything is sent.
        dialog.select_protocol("http")
        dialog.api_options.setPlainText("{path: /x")
        qtbot.mouseClick(dialog.try_button, Qt.MouseButton.LeftButton)
        assert "not JSON" in dialog.status.text()
        assert not (tmp_path / "config" / "remote" / "bad.json").exists()
    finally:
        ctrl.shutdown()


def test_try_connection_reports_classes_and_preview(tmp_path, p9_server) -> None:
    from app.inference.backends.remote_check import try_connection

    url, _ = p9_server
    image = np.random.default_rng(3).integers(0, 256, (64, 128, 3), dtype=np.uint8)
    check = try_connection(
        {"name": "p9", "kind": "rest", "url": url, "options": {"api": "p9", "model": "segformer_b0_fp32"}},
        image,
    )
    assert check.preview.shape == (64, 128, 3) and check.image_size == (64, 128)
    assert abs(sum(share for _, share in check.found) - 1.0) < 1e-9
    assert {name for name, _ in check.found} <= set(APP_CLASSES)
    assert check.server_ms is not None and check.round_trip_ms >= check.server_ms
