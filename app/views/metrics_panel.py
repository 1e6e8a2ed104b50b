"""Dataset metrics of A and B: summary, per-class IoU with deltas, and a confusion-matrix heatmap."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QBrush
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.views.theme import delta_colors, style_plot


@dataclass(frozen=True)
class ModelSummary:
    """Numbers of one model for the panel (plain values; NaN where unknown)."""

    name: str
    miou: float
    iiou: float
    category_miou: float
    pixel_accuracy: float
    latency_ms: float
    images: int
    class_iou: Sequence[float]
    matrix: np.ndarray | None  # (K, K + 1) counts
    per_class: dict[str, Sequence[float]] = field(default_factory=dict)  # "precision", "recall", "f1", "iiou"
    categories: dict[str, float] = field(default_factory=dict)  # category IoU (Cityscapes)


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{value * 100:.1f}"


class ConfusionHeatmap(QWidget):
    """Row-normalised confusion (rows: ground truth, columns: prediction); a click on a cell drills down."""

    cell_clicked = Signal(int, int)  # (ground-truth class, predicted class; the last column is "other")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.plot.invertY(True)
        self.plot.setAspectLocked(True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
        self.plot.addItem(self.image)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        self.plot.getAxis("left").setLabel("ground truth")
        self.plot.getAxis("bottom").setLabel("prediction (last column: other)")
        style_plot(self.plot)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)
        self.values: np.ndarray | None = None
        self._names: list[str] = []
        self.plot.getViewBox().sigResized.connect(lambda *_: self._update_ticks())

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # theme switched: axes follow the text colour
            style_plot(self.plot, self.palette())

    def _on_click(self, event: object) -> None:
        if self.values is None:
            return
        point = self.image.mapFromScene(event.scenePos())  # type: ignore[attr-defined]
        row, column = int(np.floor(point.y())), int(np.floor(point.x()))
        rows, columns = self.values.shape
        if 0 <= row < rows and 0 <= column < columns:
            self.cell_clicked.emit(row, column)

    def set_values(self, view: tuple[np.ndarray, tuple[float, float]] | None, names: Sequence[str]) -> None:
        """Show prepared values (see app.core.display.render.matrix_view); negative levels use a diverging
        map."""
        if view is None or view[0].size == 0:
            self.image.clear()
            self.values = None
            self.plot.hide()  # empty axes with meaningless ranges would only confuse
            return
        values, levels = view
        self.plot.show()
        self.values = values
        cmap = "CET-D1" if levels[0] < 0 else "viridis"
        self.image.setLookupTable(pg.colormap.get(cmap).getLookupTable(nPts=256))
        self.image.setImage(values, levels=levels)
        self._names = list(names)
        self._update_ticks()

    def _update_ticks(self) -> None:
        """Names on the vertical axis, numbers on the horizontal one (same order), thinned to every k-th
        class when the cells are smaller than a line of text (a small window, high DPI, 34 classes)."""
        if self.values is None:
            return
        rows = len(self._names)
        size = self.plot.getViewBox().viewPixelSize()  # data units (cells) per pixel
        cell_px = 1.0 / max(size[0], size[1], 1e-9)
        left = max(1, math.ceil(self.fontMetrics().height() / cell_px))
        bottom = max(2, math.ceil((self.fontMetrics().horizontalAdvance("00") + 6) / cell_px))
        labels = [(i + 0.5, f"{self._names[i][:12]} {i}") for i in range(0, rows, left)]
        self.plot.getAxis("left").setTicks([labels])
        self.plot.getAxis("bottom").setTicks([[(i + 0.5, str(i)) for i in range(0, rows + 1, bottom)]])


def _metric(model: ModelSummary | None, metric: str, row: int) -> float:
    if model is None:
        return math.nan
    values = model.class_iou if metric == "iou" else model.per_class.get(metric, ())
    return float(values[row]) if row < len(values) else math.nan


class MetricsPanel(QWidget):
    """Lays out the numbers; the controller feeds ModelSummary objects."""

    matrix_model_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.summary = QTableWidget(6, 2)
        self.summary.setVerticalHeaderLabels(
            ["mIoU", "iIoU", "category mIoU", "pixel accuracy", "latency p50 (ms)", "images"]
        )
        self.summary.setHorizontalHeaderLabels(["A", "B"])
        self.summary.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self._model_names = ["A", "B"]
        self.summary.horizontalHeader().installEventFilter(self)  # stretched sections resize silently
        self.class_metric = QComboBox()
        for text, key in (
            ("IoU", "iou"),
            ("precision", "precision"),
            ("recall", "recall"),
            ("F1", "f1"),
            ("iIoU", "iiou"),
        ):
            self.class_metric.addItem(text, key)
        self.bars = pg.PlotWidget()
        self.bars.setMenuEnabled(False)
        self.bars.setMouseEnabled(x=False, y=False)
        self.bars.hideButtons()
        self.bars.setMaximumHeight(100)
        self.bars.getAxis("left").setLabel("B−A (points)")
        style_plot(self.bars)
        self.classes = QTableWidget(0, 3)
        self.classes.setHorizontalHeaderLabels(["IoU A", "IoU B", "B−A"])
        self.classes.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.classes.verticalHeader().setDefaultSectionSize(20)
        self.matrix_choice = QComboBox()
        for text, key in (("A", "A"), ("B", "B"), ("B − A", "B-A")):
            self.matrix_choice.addItem(text, key)
        self.matrix_scale = QComboBox()
        for text, key in (("row-normalised", "rows"), ("counts", "counts"), ("log counts", "log")):
            self.matrix_scale.addItem(text, key)
        self.heatmap = ConfusionHeatmap()
        self.drill_title = QLabel("Click a matrix cell to list the images with that confusion.")
        self.drill_title.setWordWrap(True)
        self.drill = QListWidget()
        choice_row = QHBoxLayout()
        choice_row.addWidget(QLabel("Confusion of"))
        choice_row.addWidget(self.matrix_choice)
        choice_row.addWidget(self.matrix_scale)
        choice_row.addStretch(1)
        metric_row = QHBoxLayout()
        metric_row.addWidget(QLabel("Per class:"))
        metric_row.addWidget(self.class_metric)
        metric_row.addStretch(1)
        # Three parts the user can resize against each other; the confusion matrix gets the most room
        # (its cells stay square, so its width follows its height).
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setChildrenCollapsible(False)
        for items, stretch in (
            ((self.summary, metric_row, self.classes, self.bars), 3),
            ((choice_row, self.heatmap), 3),
            ((self.drill_title, self.drill), 1),
        ):
            part = QWidget()
            part_layout = QVBoxLayout(part)
            part_layout.setContentsMargins(0, 0, 0, 0)
            for item in items:
                if isinstance(item, QWidget):
                    part_layout.addWidget(item, 1 if item in (self.classes, self.heatmap, self.drill) else 0)
                else:
                    part_layout.addLayout(item)
            self.splitter.addWidget(part)
            self.splitter.setStretchFactor(self.splitter.count() - 1, stretch)
        # The summary is never taller than its six rows (the room goes to the matrix), and everything can
        # shrink far enough for a 768-pixel-high screen (rows then scroll).
        header = self.summary.horizontalHeader().sizeHint().height()
        self.summary.setMaximumHeight(header + 6 * self.summary.verticalHeader().defaultSectionSize() + 4)
        self.summary.setMinimumHeight(90)
        self.classes.setMinimumHeight(70)
        self.bars.setMinimumHeight(60)
        self.heatmap.setMinimumHeight(120)
        self.drill.setMinimumHeight(40)
        # Initial shares (scaled to the dock's height): tables and bars, the matrix, the image list.
        self.splitter.setSizes([580, 300, 80])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.splitter)
        for table in (self.summary, self.classes):
            table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.matrix_choice.currentIndexChanged.connect(self.matrix_model_changed)
        self.matrix_scale.currentIndexChanged.connect(self.matrix_model_changed)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # theme switched: re-colour charts and deltas
            style_plot(self.bars, self.palette())
            for row in range(self.classes.rowCount()):
                item = self.classes.item(row, 2)
                if item is not None:
                    self._colour_delta(item)

    def _colour_delta(self, item: QTableWidgetItem) -> None:
        delta = item.data(Qt.ItemDataRole.UserRole)
        if isinstance(delta, float) and not math.isnan(delta) and abs(delta) >= 0.005:
            better, worse = delta_colors(self.palette())
            item.setForeground(QBrush(better if delta > 0 else worse))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.summary.horizontalHeader() and event.type() == QEvent.Type.Resize:
            QTimer.singleShot(0, self, self._elide_model_names)  # after the header re-laid its sections
        return super().eventFilter(watched, event)

    def _elide_model_names(self) -> None:
        """Column titles shortened in the middle to fit (a long name would be cut at both ends), whole
        in the tooltip."""
        header = self.summary.horizontalHeader()
        metrics = header.fontMetrics()
        for column, name in enumerate(self._model_names):
            room = max(20, header.sectionSize(column) - 12)
            text = metrics.elidedText(name, Qt.TextElideMode.ElideMiddle, room)
            item = self.summary.horizontalHeaderItem(column)
            if item is None:
                item = QTableWidgetItem()
                self.summary.setHorizontalHeaderItem(column, item)
            if item.text() != text:
                item.setText(text)
            item.setToolTip(name)

    def set_models(self, summaries: Sequence[ModelSummary | None], class_names: Sequence[str]) -> None:
        """Show up to two models; None leaves a column empty."""
        padded = [*summaries, None, None][:2]
        self._model_names = [s.name if s else "–" for s in padded]
        self._elide_model_names()
        for column, s in enumerate(padded):
            values = (
                ["–"] * 6
                if s is None
                else [
                    _pct(s.miou),
                    _pct(s.iiou),
                    _pct(s.category_miou),
                    _pct(s.pixel_accuracy),
                    "–" if math.isnan(s.latency_ms) else f"{s.latency_ms:.0f}",
                    str(s.images),
                ]
            )
            for row, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.summary.setItem(row, column, item)
        self._set_classes(padded, class_names)

    def _set_classes(self, models: Sequence[ModelSummary | None], names: Sequence[str]) -> None:
        metric = str(self.class_metric.currentData())
        label = self.class_metric.currentText()
        self.classes.setHorizontalHeaderLabels([f"{label} A", f"{label} B", "B−A"])
        # Category IoU rows under the classes (19-class scheme, IoU view; on categories they are the rows).
        categories = list(dict.fromkeys(c for m in models if m is not None for c in m.categories))
        if metric != "iou" or set(categories) <= set(names):
            categories = []
        rows = [*names, *(f"[{c}]" for c in categories)]
        self.classes.setRowCount(len(rows))
        self.classes.setVerticalHeaderLabels(rows)
        deltas = []
        for row in range(len(rows)):
            if row < len(names):
                values = [_metric(m, metric, row) for m in models]
            else:
                category = categories[row - len(names)]
                values = [m.categories.get(category, math.nan) if m else math.nan for m in models]
            ious = values
            delta = ious[1] - ious[0]
            if row < len(names):
                deltas.append(delta)
            cells = [_pct(ious[0]), _pct(ious[1]), "–" if math.isnan(delta) else f"{delta * 100:+.1f}"]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if column == 2:
                    item.setData(Qt.ItemDataRole.UserRole, float(delta))
                    self._colour_delta(item)
                self.classes.setItem(row, column, item)
        self._set_bars(deltas, names)

    def _set_bars(self, deltas: Sequence[float], names: Sequence[str]) -> None:
        """B−A per class as bars (points), green where B is better."""
        self.bars.clear()
        values = np.array([0.0 if math.isnan(d) else d * 100 for d in deltas])
        if values.size == 0 or not np.isfinite(values).any():
            return
        brushes = [pg.mkBrush(40, 160, 70) if v >= 0 else pg.mkBrush(210, 60, 60) for v in values]
        self.bars.addItem(
            pg.BarGraphItem(x=np.arange(len(values)), height=values, width=0.8, brushes=brushes)
        )
        self.bars.getAxis("bottom").setTicks([[(i, n[:6]) for i, n in enumerate(names)][::2]])
