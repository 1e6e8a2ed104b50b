"""The Findings dock: the likely label errors (both models agree, the label says otherwise) and the objects
one model finds and the other misses, each row one click from its image with the finding outlined."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

# The image last: it takes the width left (elided on the left), the short columns stay readable.
LABEL_ERROR_COLUMNS = ("#", "Labelled as", "Both models say", "Pixels", "Image")
MISSED_COLUMNS = ("Missed by", "Class", "Size", "Recall A", "Recall B", "Image")
EMPTY_TEXT = "Evaluate two models to list likely label errors and missed objects."


@dataclass(frozen=True)
class LabelErrorRow:
    """One likely label error as the dock shows it."""

    rank: int
    image: str  # the name shown (the key's last part)
    ground_truth: str
    predicted: str
    pixels: int


@dataclass(frozen=True)
class MissedRow:
    """One instance one model finds and the other misses."""

    missed_by: str  # "A" or "B"
    class_name: str
    size: str
    image: str
    recall_a: float
    recall_b: float


def _table(columns: Sequence[str]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    table.setTextElideMode(Qt.TextElideMode.ElideLeft)  # frame numbers tell images apart
    header = table.horizontalHeader()
    header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
    header.setStretchLastSection(True)
    return table


def _cell(text: str, number: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setToolTip(text)
    if number:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class FindingsPanel(QWidget):
    """Two ranked lists and an Export button; says which row the user picked (its index in the list)."""

    label_error_picked = Signal(int)
    missed_picked = Signal(int)
    export_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.basis = QLabel(EMPTY_TEXT)
        self.basis.setWordWrap(True)
        self.errors_title = QLabel("Likely label errors")
        self.errors = _table(LABEL_ERROR_COLUMNS)
        self.errors.setToolTip(
            "Regions where models A and B agree with each other and both disagree with the ground truth, "
            "largest first: often a wrong label. Pick one: its pixels are outlined in panel A."
        )
        self.missed_title = QLabel("Missed objects")
        self.missed = _table(MISSED_COLUMNS)
        self.missed.setToolTip(
            "Ground-truth instances one model finds (recall ≥ threshold) and the other misses, largest "
            "first. Pick one: the missed pixels are outlined in that model's panel."
        )
        self.export_button = QPushButton("Export…")
        self.export_button.setToolTip("Write both lists as CSV files")
        self.export_button.setEnabled(False)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.errors_title)
        top_layout.addWidget(self.errors)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addWidget(self.missed_title)
        bottom_layout.addWidget(self.missed)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.basis)
        layout.addWidget(split, 1)
        layout.addLayout(buttons)
        self.errors.currentCellChanged.connect(
            lambda row, _c, previous, _pc: self._picked(self.label_error_picked, row, previous)
        )
        self.missed.currentCellChanged.connect(
            lambda row, _c, previous, _pc: self._picked(self.missed_picked, row, previous)
        )
        self.export_button.clicked.connect(lambda _checked=False: self.export_requested.emit())

    @staticmethod
    def _picked(signal: object, row: int, previous: int) -> None:
        if row >= 0 and row != previous:
            signal.emit(row)  # type: ignore[attr-defined]

    def set_findings(
        self,
        errors: Sequence[LabelErrorRow],
        missed: Sequence[MissedRow],
        basis: str,
        *,
        capped: bool = False,
        instances: bool = True,
    ) -> None:
        """Fill both lists; `basis` says what they were computed on (models, scheme, labels, images);
        `capped`: the evaluation kept only the largest label errors; `instances`: the set had some."""
        self.basis.setText(basis)
        self.errors_title.setText(
            f"Likely label errors — the {len(errors)} largest regions (smaller ones not kept)"
            if capped
            else f"Likely label errors — {len(errors)} regions (largest first)"
        )
        self._fill(
            self.errors,
            [
                (_cell(str(r.rank), True), _cell(r.ground_truth), _cell(r.predicted),
                 _cell(f"{r.pixels:,}", True), _cell(r.image))
                for r in errors
            ],
        )  # fmt: skip
        self.missed_title.setText(
            f"Missed objects — {len(missed)} instances found by one model only"
            if instances
            else "Missed objects — no ground-truth instances (instanceIds) to compare"
        )
        self._fill(
            self.missed,
            [
                (_cell(r.missed_by), _cell(r.class_name), _cell(r.size),
                 _cell(f"{r.recall_a * 100:.0f}%", True), _cell(f"{r.recall_b * 100:.0f}%", True),
                 _cell(r.image))
                for r in missed
            ],
        )  # fmt: skip
        self.export_button.setEnabled(bool(errors) or bool(missed))

    def clear(self, text: str = EMPTY_TEXT) -> None:
        """No findings (no evaluation yet, or its numbers are gone)."""
        self.basis.setText(text)
        self.errors_title.setText("Likely label errors")
        self.missed_title.setText("Missed objects")
        self._fill(self.errors, [])
        self._fill(self.missed, [])
        self.export_button.setEnabled(False)

    @staticmethod
    def _fill(table: QTableWidget, rows: Sequence[Sequence[QTableWidgetItem]]) -> None:
        table.blockSignals(True)  # refilling is not the user picking a row
        table.clearContents()
        table.setRowCount(len(rows))
        for r, items in enumerate(rows):
            for c, item in enumerate(items):
                table.setItem(r, c, item)
        table.setCurrentCell(-1, -1)
        table.blockSignals(False)
        table.resizeColumnsToContents()
