"""The window's setting "Run evaluations on a Ray cluster (address)": set in its real dialog, then an
evaluation runs on Ray with the same progress and the same numbers as in this process."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from app.core.storage.settings import load_settings
from app.views.ray_dialog import RayClusterDialog

pytestmark = [pytest.mark.gui, pytest.mark.ray]
pytest_plugins = ("gui_data",)  # the scenes and models fixtures


@pytest.fixture
def controller(qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("SEGLENS_CONFIG", str(tmp_path / "config"))
    from app.controllers.main_controller import MainController

    ctrl = MainController()
    qtbot.addWidget(ctrl.window)
    ctrl.window.show()
    yield ctrl
    ctrl.shutdown()


def _set_address(qtbot, controller, text: str) -> None:
    """Type `text` into the real dialog the Tools menu action opens, and press OK."""

    def answer() -> None:
        dialog = QApplication.activeModalWidget()
        assert isinstance(dialog, RayClusterDialog)
        dialog.address.setText(text)
        dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Ok).click()

    QTimer.singleShot(0, answer)
    controller.window.ray_action.trigger()
    assert load_settings().ray_address == text


def _evaluate(qtbot, controller):
    progress: list[int] = []
    window = controller.window
    original = window.set_busy

    def busy(on: bool, done: int = 0, total: int = 0) -> None:
        progress.append(done)
        original(on, done, total)

    window.set_busy = busy  # type: ignore[method-assign]  # watch the progress bar's values
    with qtbot.waitSignal(controller.evaluation_finished, timeout=120_000) as finished:
        window.evaluate_action.trigger()
    window.set_busy = original  # type: ignore[method-assign]
    return finished.args[0], progress


def test_window_evaluates_on_ray_with_the_same_numbers(qtbot, controller, scenes, models, ray_local) -> None:
    controller.auto_evaluate = False
    with qtbot.waitSignal(controller.dataset_loaded, timeout=20_000):
        controller.open_dataset(scenes)
    for slot, path in enumerate(models):
        with qtbot.waitSignal(controller.model_loaded, timeout=20_000):
            controller.set_model(slot, path)
    local, _ = _evaluate(qtbot, controller)
    _set_address(qtbot, controller, "local")  # the Ray this test run started (else a local one)
    on_ray, progress = _evaluate(qtbot, controller)
    assert local.engine == "local" and on_ray.engine == "ray"
    assert on_ray.images_done == 6 and not on_ray.cancelled
    assert max(progress) == 6 and len(set(progress)) > 2  # the progress bar moved image by image
    for a, b in zip(on_ray.models, local.models, strict=True):
        np.testing.assert_array_equal(a.matrix, b.matrix)
    # Live accumulators (what the window shows) hold the same numbers.
    for live, b in zip(controller.live, local.models, strict=True):
        assert live is not None
        np.testing.assert_array_equal(live.matrix, b.matrix)
    _set_address(qtbot, controller, "")  # back to this process
    again, _ = _evaluate(qtbot, controller)
    assert again.engine == "local"
