"""Start the GUI: QApplication, main window, and what to open first (by default the demo)."""

from __future__ import annotations

import os
import signal
import sys

from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from app import __version__
from app.controllers.main_controller import MainController
from app.controllers.preferences import window_settings
from app.core.domain.labels import LABELIDS, ClassScheme
from app.core.runtime.memory import manage_memory
from app.core.scenes.demo import demo_models, ensure_demo_dataset


def launch(
    dataset: str | None = None,
    model_a: str | None = None,
    model_b: str | None = None,
    split: str | None = None,
    scheme: str | None = None,
    evaluate: bool = True,
    gt_scheme: ClassScheme = LABELIDS,
) -> int:
    """Open the main window and run the event loop."""
    manage_memory()  # arrays reused without page faults, free pages given back every few seconds
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("SegLens")
    app.setOrganizationName("SegLens")
    app.setApplicationVersion(__version__)
    controller = MainController()
    controller.auto_evaluate = evaluate
    window = controller.window
    settings = window_settings()
    restored = settings.value("window/version") == 1
    if restored:
        window.restoreGeometry(settings.value("window/geometry"))
        window.restoreState(settings.value("window/state"))
    else:
        window.fit_to_screen()
    window.show()
    if not restored:
        window.fit_docks()
    controller.preferences.restore_view()
    if dataset is None:
        demo = demo_models()
        model_a = model_a or demo.get("a")
        model_b = model_b or demo.get("b")
        scheme = scheme or demo.get("scheme")
        for extra in filter(None, demo.get("leaderboard", "").split("|")):
            controller.leaderboard.add(extra)
        job = controller.pool.submit(ensure_demo_dataset, key="demo")
        job.signals.result.connect(controller.open_dataset)
        window.show_message("Preparing the demo dataset…")
        if not (model_a or model_b):
            window.append_log(
                "No demo models are shipped yet. Add models with Model A… / Model B… (ONNX files or "
                "manifests), drop .onnx files on the window, or start with: "
                "seglens DATASET -a A.onnx -b B.onnx"
            )
    else:
        controller.open_dataset(dataset, split, gt_scheme)
    if scheme:
        controller.set_scheme(scheme)
    if model_a:
        controller.set_model(0, model_a)
    if model_b:
        controller.set_model(1, model_b)
    smoke = os.environ.get("SEGLENS_SMOKE_TEST")
    if smoke:
        _arm_smoke_test(app, controller, bool(model_a or model_b), float(smoke))
    close_on_terminate(app, window)
    return int(app.exec())


def close_on_terminate(app: QCoreApplication, window: QWidget) -> None:
    """SIGTERM (logout, `kill`) and Ctrl-C in the terminal close the window as its close button does, so
    the settings, the window layout and the label edits are written before the process ends."""

    def request_close(_signum: int, _frame: object) -> None:
        QTimer.singleShot(0, window.close)

    for name in ("SIGTERM", "SIGINT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), request_close)
    # Python runs its signal handlers only when it gets control: a light tick gives it that while Qt waits.
    ticker = QTimer(app)
    ticker.timeout.connect(lambda: None)
    ticker.start(200)


def _arm_smoke_test(
    app: QCoreApplication, controller: MainController, evaluates: bool, seconds: float
) -> None:
    """SEGLENS_SMOKE_TEST=SECONDS (packaging/build.sh): close the window once it is shown and the first
    evaluation finished (with no model: once the dataset opened). Exit code 0 then, 3 if an error was
    reported first, 4 if nothing finished within SECONDS; what happened is printed to stderr."""
    finished: list[int] = []

    def finish(code: int, note: str) -> None:
        if finished:  # the first outcome decides; the deadline timer may still fire while closing
            return
        finished.append(code)
        print(f"seglens smoke test: {note}", file=sys.stderr)
        controller.window.close()  # runs controller.shutdown(): workers stopped, models closed
        app.exit(code)

    controller.pool.error.connect(lambda r: finish(3, f"{r.title}: {r.message}\n{r.traceback}"))
    done = controller.evaluation_finished if evaluates else controller.dataset_loaded
    title = controller.window.windowTitle
    done.connect(lambda _r: QTimer.singleShot(200, lambda: finish(0, f"done: {title()}")))
    QTimer.singleShot(int(seconds * 1000), lambda: finish(4, f"nothing finished within {seconds:g} s"))
