"""The main window: toolbar, compare view in the centre, image list, metrics and log in docks."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QToolBar,
    QWidget,
)

from app import __version__
from app.evaluation.frames import PALETTES
from app.views.compare_view import CompareView
from app.views.dialogs import Dialogs
from app.views.findings_panel import FindingsPanel
from app.views.image_list import ImageList
from app.views.leaderboard_panel import LeaderboardPanel
from app.views.metrics_panel import MetricsPanel
from app.views.models_panel import ModelsPanel
from app.views.review_panel import ReviewPanel
from app.views.theme import THEMES


def _let_combos_shrink(root: QWidget) -> None:
    """A combo box is as wide as its longest item by default, which adds up to a window too wide for a
    laptop at 150% scaling; these may shrink to 8 characters (the popup still shows whole items)."""
    for combo in root.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(8)


class MainWindow(QMainWindow):
    """Layout and user intents only; the MainController does the work."""

    paths_dropped = Signal(list)
    closing = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"SegLens {__version__}")
        self.setAcceptDrops(True)
        self.resize(1500, 900)
        self.dialogs = Dialogs(self)  # every question to the user goes through this (tests answer it)
        self.compare = CompareView()
        self.image_list = ImageList()
        self.metrics = MetricsPanel()
        self.models = ModelsPanel()
        self.review = ReviewPanel()
        self.leaderboard = LeaderboardPanel()
        self.findings = FindingsPanel()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        views = (self.compare, self.image_list, self.metrics, self.models, self.review, self.leaderboard)
        for view in (*views, self.findings):
            _let_combos_shrink(view)  # before any layout caches their size hints
        self.setCentralWidget(self.compare)
        self.images_dock = self._dock("Images", self.image_list, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.metrics_dock = self._dock("Metrics", self.metrics, Qt.DockWidgetArea.RightDockWidgetArea)
        self.models_dock = self._dock("Models", self.models, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.metrics_dock, self.models_dock)
        self.metrics_dock.raise_()
        self.review_dock = self._dock("Review", self.review, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.models_dock, self.review_dock)
        self.leaderboard_dock = self._dock(
            "Leaderboard", self.leaderboard, Qt.DockWidgetArea.RightDockWidgetArea
        )
        self.tabifyDockWidget(self.review_dock, self.leaderboard_dock)
        self.findings_dock = self._dock("Findings", self.findings, Qt.DockWidgetArea.RightDockWidgetArea)
        self.tabifyDockWidget(self.leaderboard_dock, self.findings_dock)
        self.metrics_dock.raise_()
        self.log_dock = self._dock("Log", self.log, Qt.DockWidgetArea.BottomDockWidgetArea)
        self.log_dock.hide()
        self._build_actions()
        self._build_status()
        self.fit_docks()

    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, shortcut: str | None = None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
        action.setToolTip(f"{tip or text} ({shortcut})" if shortcut else tip or text)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.open_dataset_action = self._action("Open dataset…", "Ctrl+O", "Open a dataset folder")
        self.model_a_action = self._action("Model A…", "Ctrl+1", "Choose model A (ONNX)")
        self.model_b_action = self._action("Model B…", "Ctrl+2", "Choose model B (ONNX)")
        self.evaluate_action = self._action("Evaluate", "F5", "Evaluate A and B on the dataset")
        self.cancel_action = self._action("Cancel", "Esc", "Cancel the evaluation")
        self.cancel_action.setEnabled(False)
        self.next_action = self._action("Next image", "Right")
        self.prev_action = self._action("Previous image", "Left")
        self.toggle_gt_action = self._action("Toggle ground truth", "G")
        self.opacity_up_action = self._action("More opacity", "Ctrl+Up")
        self.opacity_down_action = self._action("Less opacity", "Ctrl+Down")
        self.toggle_masks_action = self._action("Toggle masks", "Space")
        self.cycle_mode_action = self._action("Classes / errors / A vs B", "E")
        self.cycle_style_action = self._action(
            "Filled / contours / mask alone", "S", "Cycle the mask style of all panels"
        )
        self.leaderboard_action = self._action(
            "Add models to the leaderboard…", "Ctrl+Shift+M", "Score more models on the same scheme"
        )
        self.layout_action = self._action("Side by side / swipe / flicker", "W", "How A and B are shown")
        self.flicker_action = self._action("Flicker A / B", "V", "Show B in place of A and back")
        self.add_remote_action = self._action("Add hosted model…", "Ctrl+Shift+R", "Add a REST or v2 model")
        self.benchmark_action = self._action("Benchmark A and B", "Ctrl+B", "Latency, size, memory")
        self.export_action = self._action("Export model A to ONNX…", None, "Keras or Hugging Face model A")
        self.quantize_action = self._action("Quantize model A to INT8…", None, "Static INT8, measured")
        self.ray_action = self._action("Run evaluations on a Ray cluster…", None, "The cluster's address")
        self.report_action = self._action(
            "Export report…", "Ctrl+E", "HTML, PDF, CSV and JSON of this comparison"
        )
        self.shortcuts_action = self._action("Keyboard shortcuts", "F1")
        self.edit_action = self._action("Edit ground truth", "T", "Paint, fill and fix the GT of this image")
        self.edit_action.setCheckable(True)
        self.undo_action = self._action("Undo edit", "Ctrl+Z")
        self.redo_action = self._action("Redo edit", "Ctrl+Shift+Z")
        self.brush_bigger_action = self._action("Bigger brush", "]")
        self.brush_smaller_action = self._action("Smaller brush", "[")
        self.edited_gt_action = self._action("Evaluate on edited GT", None, "Use corrected labels")
        self.edited_gt_action.setCheckable(True)
        self.edited_gt_action.setChecked(True)
        self.export_labels_action = self._action("Export labels (gtFine)…", None, "All labels")
        self.export_review_action = self._action("Export review data…", None, "CSV and JSON")
        self.quit_action = self._action("Quit", "Ctrl+Q", "Close SegLens (edits and settings are saved)")
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.quit_action.triggered.connect(self.close)
        self.show_log_action = self.log_dock.toggleViewAction()
        self.show_log_action.setShortcut(QKeySequence("Ctrl+L"))
        self.show_findings_action = self.findings_dock.toggleViewAction()
        self.statistics_action = self._action(
            "Statistics per image (boundary, label errors, missed objects)",
            None,
            "Per image: Boundary IoU / BF, likely label errors and missed objects (the Findings dock); "
            "costs about a fifth more evaluation time",
        )
        self.statistics_action.setCheckable(True)
        self.statistics_action.setChecked(True)
        self.show_findings_action.setText("Findings (label errors, missed objects)")
        self.scheme_box = QComboBox()
        self.scheme_box.addItem("19 classes (trainIds)", "trainids")
        self.scheme_box.addItem("8 categories", "categories")
        self.scheme_box.setToolTip("Evaluation scheme")
        bar = QToolBar("Main")
        bar.setObjectName("toolbar-main")
        bar.setIconSize(QSize(16, 16))
        bar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        for action in (self.open_dataset_action, self.model_a_action, self.model_b_action):
            bar.addAction(action)
        file_menu = self.menuBar().addMenu("&File")
        for action in (
            self.open_dataset_action,
            self.model_a_action,
            self.model_b_action,
            self.leaderboard_action,
            self.evaluate_action,
            self.report_action,
        ):
            file_menu.addAction(action)
        file_menu.addSeparator()
        for action in (self.export_labels_action, self.export_review_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        self.recent_datasets_menu = file_menu.addMenu("Recent datasets")
        self.recent_a_menu = file_menu.addMenu("Recent models as A")
        self.recent_b_menu = file_menu.addMenu("Recent models as B")
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        bar.addSeparator()
        bar.addWidget(QLabel(" Scheme "))
        bar.addWidget(self.scheme_box)
        bar.addSeparator()
        bar.addAction(self.evaluate_action)
        bar.addAction(self.cancel_action)
        bar.addSeparator()
        bar.addAction(self.show_log_action)
        self.addToolBar(bar)
        edit_menu = self.menuBar().addMenu("&Edit")
        for action in (
            self.edit_action,
            self.undo_action,
            self.redo_action,
            self.brush_bigger_action,
            self.brush_smaller_action,
            self.edited_gt_action,
        ):
            edit_menu.addAction(action)
        bar.addAction(self.edit_action)
        tools = self.menuBar().addMenu("&Tools")
        tools.addAction(self.add_remote_action)
        tools.addSeparator()
        for action in (self.benchmark_action, self.export_action, self.quantize_action):
            tools.addAction(action)
        tools.addSeparator()
        tools.addAction(self.ray_action)
        view = self.menuBar().addMenu("&View")
        for action in (
            self.next_action,
            self.prev_action,
            self.toggle_gt_action,
            self.toggle_masks_action,
            self.cycle_mode_action,
            self.cycle_style_action,
            self.layout_action,
            self.flicker_action,
            self.opacity_up_action,
            self.opacity_down_action,
            self.show_log_action,
            self.show_findings_action,
            self.statistics_action,
            self.shortcuts_action,
        ):
            view.addAction(action)
        theme_menu = view.addMenu("Theme")
        self.theme_group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for key, text in THEMES:
            action = theme_menu.addAction(text)
            action.setCheckable(True)
            action.setData(key)
            self.theme_group.addAction(action)
            self.theme_actions[key] = action
        self.theme_actions["system"].setChecked(True)
        palette_menu = view.addMenu("Class colours")
        self.palette_group = QActionGroup(self)
        self.palette_actions: dict[str, QAction] = {}
        for key, text in PALETTES:
            action = palette_menu.addAction(text)
            action.setCheckable(True)
            action.setData(key)
            self.palette_group.addAction(action)
            self.palette_actions[key] = action
        self.palette_actions["cityscapes"].setChecked(True)

    def _build_status(self) -> None:
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel_action.trigger)
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.cancel_button)

    def fit_to_screen(self) -> None:
        """The first-run size (1500x900) where the screen has room, else 95% of its free area (a laptop at
        150% scaling has ~1280x700 logical pixels), centred."""
        screen = self.screen()
        if screen is None:
            return
        free = screen.availableGeometry()
        width = min(1500, int(free.width() * 0.95))
        height = min(900, int(free.height() * 0.95))
        self.resize(width, height)  # never below the minimum size (about 1070x600)
        x = free.x() + max(0, (free.width() - self.width()) // 2)
        y = free.y() + max(0, (free.height() - self.height()) // 2)
        self.move(x, y)

    def fit_docks(self) -> None:
        """Room for thumbnails and both score columns; the metrics dock keeps its tables readable.
        (Also called once the window is shown: before that, Qt may ignore dock sizes.)"""
        self.resizeDocks([self.images_dock, self.metrics_dock], [450, 380], Qt.Orientation.Horizontal)

    def set_busy(self, busy: bool, done: int = 0, total: int = 0) -> None:
        """Show or hide the progress bar and Cancel."""
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.cancel_action.setEnabled(busy)
        if busy:
            self.progress.setRange(0, max(total, 0))
            self.progress.setValue(done)
            self.progress.setFormat(f"{done} / {total}" if total else "working…")

    def show_message(self, text: str, timeout_ms: int = 0) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    def append_log(self, text: str) -> None:
        self.log.appendPlainText(text)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            self.paths_dropped.emit(paths)
            event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closing.emit()
        super().closeEvent(event)
