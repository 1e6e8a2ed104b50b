"""Dataset metrics of A and B: summary, per-class IoU with deltas, and a confusion-matrix heatmap."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QEvent, QModelIndex, QObject, QPersistentModelIndex, QRect, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QPainter
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QSplitter,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.views.heatmap import ConfusionHeatmap
from app.views.theme import delta_colors


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


class DeltaBarDelegate(QStyledItemDelegate):
    """The B−A column: the signed number and a bar from the middle of the cell, blue where B is better,
    orange where it is worse (every class labelled, at any width: the names are the table's rows)."""

    def paint(
        self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        delta = index.data(Qt.ItemDataRole.UserRole)
        if isinstance(delta, float) and not math.isnan(delta):
            rect = option.rect.adjusted(2, 3, -2, -3)
            middle = rect.center().x()
            length = int(min(abs(delta) / 0.5, 1.0) * rect.width() / 2)  # 50 points fill half the cell
            color = QColor(0, 114, 178, 110) if delta > 0 else QColor(230, 159, 0, 130)
            bar = (
                QRect(middle, rect.top(), length, rect.height())
                if delta > 0
                else QRect(middle - length, rect.top(), length, rect.height())
            )
            painter.fillRect(bar, color)
        super().paint(painter, option, index)


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
        self._ignored: frozenset[int] = frozenset()  # classes never evaluated (void): marked in the rows
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
        self.names = QLabel("A: –   B: –")
        self.names.setWordWrap(True)
        self.names.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.basis = QLabel("")
        self.basis.setWordWrap(True)
        self.classes = QTableWidget(0, 3)
        self.classes.setHorizontalHeaderLabels(["IoU A", "IoU B", "B−A"])
        self.classes.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.classes.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 4)
        self.classes.setItemDelegateForColumn(2, DeltaBarDelegate(self.classes))
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
        self.drill.setToolTip("Images ranked by pixels with the chosen confusion; pick one to see them")
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
            ((self.names, self.summary, self.basis, metric_row, self.classes), 4),
            ((choice_row, self.heatmap), 4),
            ((self.drill_title, self.drill), 2),
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
        row = self.fontMetrics().height() + 4
        self.summary.verticalHeader().setDefaultSectionSize(row)
        header = self.summary.horizontalHeader().sizeHint().height()
        self.summary.setMaximumHeight(header + 6 * self.summary.verticalHeader().defaultSectionSize() + 4)
        self.summary.setMinimumHeight(90)
        self.classes.setMinimumHeight(5 * row)  # a useful part of the class list, at any dock height
        self.heatmap.setMinimumHeight(140)
        self.drill.setMinimumHeight(5 * self.fontMetrics().height())
        # Initial shares (scaled to the dock's height): tables, the matrix, the image list.
        self.splitter.setSizes([520, 330, 130])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.splitter)
        for table in (self.summary, self.classes):
            table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.matrix_choice.currentIndexChanged.connect(self.matrix_model_changed)
        self.matrix_scale.currentIndexChanged.connect(self.matrix_model_changed)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:  # theme switched: re-colour the deltas
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

    def set_models(
        self,
        summaries: Sequence[ModelSummary | None],
        class_names: Sequence[str],
        ignored: Collection[int] = (),
    ) -> None:
        """Show up to two models; None leaves a column empty."""
        padded = [*summaries, None, None][:2]
        self._model_names = ["A", "B"]  # whole names in the line above: headers never elide them
        self._elide_model_names()
        self.names.setText(
            "   ".join(f"{slot}: {s.name if s else '–'}" for slot, s in zip("AB", padded, strict=True))
        )
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
        self._ignored = frozenset(ignored)
        self._set_classes(padded, class_names)

    def _set_classes(self, models: Sequence[ModelSummary | None], names: Sequence[str]) -> None:
        metric = str(self.class_metric.currentData())
        label = self.class_metric.currentText()
        self.classes.setHorizontalHeaderLabels([f"{label} A", f"{label} B", "B−A"])
        # Category IoU rows under the classes (19-class scheme, IoU view; on categories they are the rows).
        categories = list(dict.fromkeys(c for m in models if m is not None for c in m.categories))
        if metric != "iou" or set(categories) <= set(names):
            categories = []
        marked = [f"{n} (not evaluated)" if i in self._ignored else n for i, n in enumerate(names)]
        rows = [*marked, *(f"[{c}]" for c in categories)]
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
