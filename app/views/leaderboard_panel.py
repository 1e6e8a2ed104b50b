"""Every model in one table: mIoU, mean precision / recall / F1, latency, size and per-class IoU, all on
one scheme and ground truth (the basis line says which); any two rows become A and B."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGridLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

FIXED_COLUMNS = ("Model", "Role", "mIoU", "Precision", "Recall", "F1", "P50 ms", "P95 ms", "MB")


@dataclass(frozen=True)
class LeaderRow:
    """One model's line (NaN where unknown; `note` says why a model has no numbers)."""

    name: str
    role: str  # "A", "B" or ""
    miou: float
    precision: float
    recall: float
    f1: float
    p50_ms: float
    p95_ms: float
    size_mb: float
    class_iou: Sequence[float]
    source: str
    note: str = ""


class _Number(QTableWidgetItem):
    """A number shown with its digits ("63.0"), sorted by value (unknown last)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.value = float(text) if text != "–" else math.inf

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.value < getattr(other, "value", math.inf)


def _cell(value: float, digits: int = 1, scale: float = 100.0) -> str:
    return "–" if math.isnan(value) else f"{value * scale:.{digits}f}"


class LeaderboardPanel(QWidget):
    """The table and its buttons; emits intents, holds no models."""

    add_requested = Signal()
    evaluate_requested = Signal()
    use_requested = Signal(int, str)  # (slot 0 = A / 1 = B, the row's model source)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, len(FIXED_COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(2, Qt.SortOrder.DescendingOrder)  # best mIoU first
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.basis = QLabel("Add models to compare them all on one scheme.")
        self.basis.setWordWrap(True)
        self.add_button = QPushButton("Add models…")
        self.evaluate_button = QPushButton("Evaluate all")
        self.use_a = QPushButton("Use as A")
        self.use_b = QPushButton("Use as B")
        for button, tip in (
            (self.add_button, "Add ONNX models (or manifests) to the table"),
            (self.evaluate_button, "Score every model in the table on the current scheme"),
            (self.use_a, "Compare the selected model as A"),
            (self.use_b, "Compare the selected model as B"),
        ):
            button.setToolTip(tip)
        buttons = QGridLayout()  # two by two: the dock stays as narrow as the metrics dock beside it
        for i, button in enumerate((self.add_button, self.evaluate_button, self.use_a, self.use_b)):
            buttons.addWidget(button, i // 2, i % 2)
        buttons.setColumnStretch(2, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(buttons)
        layout.addWidget(self.basis)
        layout.addWidget(self.table, 1)
        self.add_button.clicked.connect(self.add_requested)
        self.evaluate_button.clicked.connect(self.evaluate_requested)
        self.use_a.clicked.connect(lambda: self._use(0))
        self.use_b.clicked.connect(lambda: self._use(1))

    def _use(self, slot: int) -> None:
        row = self.table.currentRow()
        item = self.table.item(row, 0) if row >= 0 else None
        if item is not None:
            self.use_requested.emit(slot, str(item.data(Qt.ItemDataRole.UserRole)))

    def set_rows(self, rows: Sequence[LeaderRow], class_names: Sequence[str], basis: str) -> None:
        """Show the models, best mIoU first, with per-class IoU columns after the fixed ones."""
        self.basis.setText(f"All on {basis}")
        self.table.setSortingEnabled(False)
        self.table.clearContents()
        self.table.setColumnCount(len(FIXED_COLUMNS) + len(class_names))
        self.table.setHorizontalHeaderLabels([*FIXED_COLUMNS, *(f"IoU {n}" for n in class_names)])
        self.table.setRowCount(len(rows))
        ordered = sorted(rows, key=lambda r: (math.isnan(r.miou), -r.miou if not math.isnan(r.miou) else 0))
        for i, row in enumerate(ordered):
            name = QTableWidgetItem(row.name)
            name.setData(Qt.ItemDataRole.UserRole, row.source)
            name.setToolTip(f"{row.source}\n{row.note}" if row.note else row.source)
            self.table.setItem(i, 0, name)
            self.table.setItem(i, 1, QTableWidgetItem(row.role))
            values = [
                _cell(row.miou),
                _cell(row.precision),
                _cell(row.recall),
                _cell(row.f1),
                _cell(row.p50_ms, 0, 1.0),
                _cell(row.p95_ms, 0, 1.0),
                _cell(row.size_mb, 1, 1.0),
                *(_cell(float(v)) for v in row.class_iou),
            ]
            for column, text in enumerate(values, start=2):
                item = _Number(text)
                if text == "–" and row.note:
                    item.setToolTip(row.note)
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, column, item)
        self.table.setSortingEnabled(True)
