"""The window's verdict line quotes the finished run's paired-bootstrap interval, through the Evaluate
action, and drops it (never shows it stale) once an edit changes the numbers it was computed from."""

from __future__ import annotations

import pytest

pytest_plugins = ("gui_data",)  # the scenes and models fixtures

pytestmark = pytest.mark.gui


@pytest.fixture
def controller(qtbot, monkeypatch, tmp_path):
    monkeypatch.setenv("SEGLENS_CONFIG", str(tmp_path / "config"))
    from app.controllers.main_controller import MainController

    ctrl = MainController()
    qtbot.addWidget(ctrl.window)
    ctrl.window.show()
    yield ctrl
    ctrl.shutdown()


def test_verdict_quotes_the_bootstrap_interval_after_evaluate(qtbot, controller, scenes, models) -> None:
    controller.auto_evaluate = False
    with qtbot.waitSignal(controller.dataset_loaded, timeout=20_000):
        controller.open_dataset(scenes)
    for slot, path in enumerate(models):
        with qtbot.waitSignal(controller.model_loaded, timeout=20_000):
            controller.set_model(slot, path)
    with qtbot.waitSignal(controller.evaluation_finished, timeout=60_000) as finished:
        controller.window.evaluate_action.trigger()
    result = finished.args[0]
    assert result.analysis is not None and result.analysis.bootstrap is not None
    delta = result.analysis.bootstrap.delta_miou
    qtbot.waitUntil(lambda: "95 % CI" in controller.window.compare.verdict.text(), timeout=5_000)
    text = controller.window.compare.verdict.text()
    assert f"95 % CI {delta.low * 100:+.1f} to {delta.high * 100:+.1f}" in text
    assert "scheme trainids, original labels" in text
