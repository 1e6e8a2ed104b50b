"""The image table: one row per image with per-image mIoU of A and B and their difference."""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QVBoxLayout, QWidget

_HEADERS = ("Image", "City", "mIoU A", "mIoU B", "B−A")
Index = QModelIndex | QPersistentModelIndex


class ImageTableModel(QAbstractTableModel):
    """Rows are images in dataset order; scores arrive as the evaluation runs."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[tuple[str, str]] = []
        self._scores: list[list[float]] = []

    def reset(self, rows: Sequence[tuple[str, str]]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._scores = [[math.nan, math.nan] for _ in self._rows]
        self.endResetModel()

    def set_score(self, row: int, model: int, miou: float) -> None:
        self._scores[row][model] = miou
        self.dataChanged.emit(self.index(row, 2), self.index(row, 4))

    def clear_scores(self) -> None:
        # dataChanged, not a model reset: a reset would drop the user's current row and sort.
        self._scores = [[math.nan, math.nan] for _ in self._rows]
        if self._rows:
            self.dataChanged.emit(self.index(0, 2), self.index(len(self._rows) - 1, 4))

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(_HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return _HEADERS[section]
        return None

    def _value(self, row: int, column: int) -> float:
        a, b = self._scores[row]
        return {2: a, 3: b, 4: b - a}.get(column, math.nan)

    def data(self, index: Index, role: int = 0) -> object:
        if not index.isValid():
            return None
        row, column = index.row(), index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if column < 2:
                return self._rows[row][column]
            value = self._value(row, column)
            if math.isnan(value):
                return "–"
            return f"{value * 100:+.1f}" if column == 4 else f"{value * 100:.1f}"
        if role == Qt.ItemDataRole.UserRole:  # sort key
            if column < 2:
                return self._rows[row][column]
            value = self._value(row, column)
            return -1e9 if math.isnan(value) else value
        if role == Qt.ItemDataRole.TextAlignmentRole and column >= 2:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and column == 4:
            value = self._value(row, column)
            if not math.isnan(value) and abs(value) >= 0.005:
                return QBrush(QColor(40, 160, 70) if value > 0 else QColor(210, 60, 60))
        return None


class ImageList(QWidget):
    """A sortable table; emits the dataset row of the image the user picks."""

    image_selected = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = ImageTableModel()
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(Qt.ItemDataRole.UserRole)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(-1, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for column in range(2, len(_HEADERS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMinimumWidth(360)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table)
        self.table.selectionModel().currentRowChanged.connect(self._on_current)

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.image_selected.emit(self.proxy.mapToSource(current).row())

    def select_row(self, row: int) -> None:
        """Select a dataset row (whatever the sort order)."""
        index = self.proxy.mapFromSource(self.model.index(row, 0))
        if index.isValid():
            self.table.setCurrentIndex(index)
            self.table.scrollTo(index)

    def current_row(self) -> int:
        index = self.table.currentIndex()
        return self.proxy.mapToSource(index).row() if index.isValid() else -1

    def step(self, delta: int) -> None:
        """Move the selection by `delta` rows in the displayed order."""
        count = self.proxy.rowCount()
        if count == 0:
            return
        current = self.table.currentIndex()
        row = 0 if not current.isValid() else min(max(current.row() + delta, 0), count - 1)
        self.table.setCurrentIndex(self.proxy.index(row, 0))
