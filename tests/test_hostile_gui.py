"""The window on a damaged project: refused in a dialog naming the file, never replaced by an empty one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

from app.core.io.paths import cache_dir
from app.core.scenes.generator import generate
from app.core.storage.project import default_project_path


@pytest.fixture
def controller(qtbot):
    from app.controllers.main_controller import MainController

    ctrl = MainController()
    qtbot.addWidget(ctrl.window)
    ctrl.auto_evaluate = False
    ctrl.window.show()
    yield ctrl
    ctrl.shutdown()


def _dialogs() -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]


def test_a_damaged_project_is_refused_in_a_dialog_and_left_untouched(
    qtbot, controller, tmp_path: Path
) -> None:
    scenes = generate(tmp_path / "data", 2, size=(64, 128), seed=4)
    project = default_project_path(scenes)
    project.write_bytes(b"SQLite format 3\x00" + os.urandom(4000))
    before = project.read_bytes()
    with qtbot.waitSignal(controller.dataset_loaded, timeout=20_000):
        controller.open_dataset(scenes)
    qtbot.waitUntil(lambda: bool(_dialogs()), timeout=10_000)
    box = _dialogs()[0]
    assert box.windowTitle() == "Project not opened"
    assert str(project) in box.text() and "damaged project database" in box.text()
    assert "left untouched" in box.informativeText()
    assert controller.annotation.project is None
    assert project.read_bytes() == before
    assert not (cache_dir() / "projects").exists()  # no empty stand-in project anywhere
    box.done(0)
