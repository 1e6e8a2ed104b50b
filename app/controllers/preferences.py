"""Settings and habits: remembered opacity/scheme/mode/panel styles/theme, recent datasets and models,
shortcuts help."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, QSettings, QTimer
from PySide6.QtWidgets import QApplication, QDockWidget, QMenu

from app.core.io.paths import config_dir
from app.core.storage.settings import Settings, load_settings, save_settings
from app.evaluation.frames import PALETTES
from app.views.ray_dialog import RayClusterDialog
from app.views.shortcuts_dialog import ShortcutsDialog
from app.views.theme import apply_theme

if TYPE_CHECKING:
    from app.controllers.workbench import Workbench
    from app.core.domain.labels import EvalScheme
    from app.core.io.datasets import Dataset
    from app.evaluation.engine import Engine
    from app.evaluation.predictors import SamplePredictor


def compare_palettes() -> list[str]:
    return [key for key, _ in PALETTES]


def window_settings() -> QSettings:
    """Window geometry and dock layout, in the same user config folder as settings.json."""
    return QSettings(str(config_dir() / "window.ini"), QSettings.Format.IniFormat)


class PreferencesController(QObject):
    """Loads settings at start and saves them as they change (a kill or a crash loses at most the last
    second of view and layout changes)."""

    def __init__(self, main: Workbench) -> None:
        super().__init__(main)  # type: ignore[arg-type]
        self.main = main
        self.settings: Settings = load_settings()
        self._loaded = False  # nothing to save while the saved settings are being applied
        self._closed = False  # after the final save on close, nothing more is written
        w = main.window
        w.compare.opacity.setValue(round(self.settings.opacity * 100))
        self.set_theme(self.settings.theme)
        self._loaded = True
        # View choices and the window layout are written a second after the last change (the opacity
        # slider and a dragged dock send many).
        self._save_later = QTimer(self)
        self._save_later.setSingleShot(True)
        self._save_later.setInterval(1000)
        self._save_later.timeout.connect(self.save)
        main.state.changed.connect(self._changed)
        for dock in w.findChildren(QDockWidget):
            dock.dockLocationChanged.connect(self._changed)
            dock.topLevelChanged.connect(self._changed)
            dock.visibilityChanged.connect(self._changed)
            dock.installEventFilter(self)  # resized by a dragged separator: no signal for that
        w.installEventFilter(self)
        for key, action in w.theme_actions.items():
            action.triggered.connect(lambda _checked=False, k=key: self.set_theme(k))
        main.dataset_loaded.connect(lambda dataset: self._remember_dataset(dataset.root))
        main.model_loaded.connect(lambda _slot, predictor: self._remember_model(predictor.info.source))
        w.shortcuts_action.triggered.connect(lambda _checked=False: self.show_shortcuts())
        w.ray_action.triggered.connect(lambda _checked=False: self.choose_ray_cluster())
        self._fill_menus()

    def restore_view(self) -> None:
        """Scheme, display mode, panel styles and GT panel of the last session (after the controller is
        wired)."""
        self.main.set_scheme(self.settings.scheme)
        compare = self.main.window.compare
        compare.show_gt.setChecked(self.settings.show_gt)
        index = compare.mode.findData(self.settings.display_mode)
        if index >= 0:
            compare.mode.setCurrentIndex(index)
        compare.set_styles(self.settings.panel_styles)
        # The class colours live beside the window layout (the settings model stays as it was).
        palette = str(window_settings().value("view/palette", "cityscapes"))
        if palette in compare_palettes():
            self.main.state.update(palette=palette)

    def set_theme(self, theme: str) -> None:
        """System, Light or Dark: applied to the whole application at once and remembered."""
        self.settings.theme = theme
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, theme)
        action = self.main.window.theme_actions.get(theme)
        if action is not None:
            action.setChecked(True)
        if self._loaded:
            save_settings(self.settings)

    def _remember_dataset(self, root: Path) -> None:
        self.settings.remember_dataset(root)
        self._fill_menus()
        save_settings(self.settings)  # now, not only on close: a crash or a kill must not forget it

    def _remember_model(self, source: str) -> None:
        if source and not source.startswith(("http://", "https://")):
            self.settings.remember_model(source)
            self._fill_menus()
            save_settings(self.settings)

    def _fill_menus(self) -> None:
        w = self.main.window
        self._fill(w.recent_datasets_menu, self.settings.recent_datasets, self.main.open_dataset)
        self._fill(w.recent_a_menu, self.settings.recent_models, lambda path: self.main.set_model(0, path))
        self._fill(w.recent_b_menu, self.settings.recent_models, lambda path: self.main.set_model(1, path))

    @staticmethod
    def _fill(menu: QMenu, paths: list[str], open_path: object) -> None:
        menu.clear()
        for path in paths:
            action = menu.addAction(path)
            action.triggered.connect(lambda _checked=False, p=path: open_path(p))  # type: ignore[operator]
        menu.setEnabled(bool(paths))

    def choose_ray_cluster(self) -> None:
        """The setting "Run evaluations on a Ray cluster (address)"; used from the next evaluation on."""
        dialog = RayClusterDialog(self.settings.ray_address, self.main.window)
        if dialog.exec() == RayClusterDialog.DialogCode.Accepted:
            self.settings.ray_address = dialog.value()
            save_settings(self.settings)
            where = f"on the Ray cluster {dialog.value()}" if dialog.value() else "in this process"
            self.main.window.show_message(f"Evaluations run {where}", 5000)

    def evaluation_engine(
        self, dataset: Dataset, predictors: Sequence[SamplePredictor], scheme: EvalScheme
    ) -> Engine | None:
        """The Ray engine when the setting names a cluster; None: this process. Raises SegLensError (the
        ray extra missing) before anything runs."""
        if not self.settings.ray_address:
            return None
        from app.evaluation.engine_ray import engine_for_window

        return engine_for_window(self.settings.ray_address, dataset, predictors, scheme)

    def show_shortcuts(self) -> None:
        self.main.window.dialogs.run(ShortcutsDialog(self.main.window.actions(), self.main.window))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() in (QEvent.Type.Resize, QEvent.Type.Move):
            self._changed()
        return super().eventFilter(watched, event)

    def _changed(self, *_args: object) -> None:
        if not self._closed:
            self._save_later.start()

    def close(self) -> None:
        """The final save, as the window closes; nothing is written after it."""
        self.save()
        self._closed = True

    def save(self) -> None:
        """Remember the view and the window layout: a second after a change, and when the window closes
        (the recent lists and the theme are written at once)."""
        self._save_later.stop()
        if self._closed:
            return
        layout = window_settings()
        layout.setValue("window/version", 1)
        layout.setValue("window/geometry", self.main.window.saveGeometry())
        layout.setValue("window/state", self.main.window.saveState())
        view = self.main.state.view  # what is shown, from the state (never read back from widgets)
        self.settings.opacity = view.opacity
        self.settings.scheme = view.scheme.key if view.scheme.is_cityscapes else self.settings.scheme
        self.settings.display_mode = view.display_mode
        self.settings.panel_styles = list(view.panel_styles)
        self.settings.show_gt = view.show_gt
        layout.setValue("view/palette", view.palette)
        save_settings(self.settings)
