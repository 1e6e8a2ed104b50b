"""Model manager view: what A and B are (backend, classes, input, size, digest, latency) and the mapping."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

_FIELDS = (
    "name",
    "backend",
    "source",
    "classes",
    "scheme",
    "input",
    "output",
    "file size",
    "digest",
    "latency",
)


@dataclass(frozen=True)
class ModelCard:
    """Plain facts of one model for display."""

    slot: str
    fields: dict[str, str]
    mapping: Sequence[tuple[str, str]]  # (model class, evaluated as)


class ModelsPanel(QWidget):
    """Two tables (facts of A and B side by side) and the class mapping of each model."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facts = QTableWidget(len(_FIELDS), 2)
        self.facts.setVerticalHeaderLabels(list(_FIELDS))
        self.facts.setHorizontalHeaderLabels(["A", "B"])
        self.facts.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.facts.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.facts.setWordWrap(True)
        self.mappings = QTabWidget()
        self.hint = QLabel("Model classes are mapped to the evaluation scheme by name.")
        self.hint.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.facts, 3)
        layout.addWidget(self.hint)
        layout.addWidget(self.mappings, 2)

    def set_models(self, cards: Sequence[ModelCard | None]) -> None:
        padded = [*cards, None, None][:2]
        self.mappings.clear()
        for column, card in enumerate(padded):
            for row, name in enumerate(_FIELDS):
                text = card.fields.get(name, "–") if card else "–"
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                self.facts.setItem(row, column, item)
            if card is not None:
                self.mappings.addTab(self._mapping_table(card.mapping), f"{card.slot}: {card.fields['name']}")
        self.facts.setHorizontalHeaderLabels([c.fields["name"] if c else "–" for c in padded])

    @staticmethod
    def _mapping_table(mapping: Sequence[tuple[str, str]]) -> QTableWidget:
        table = QTableWidget(len(mapping), 2)
        table.setHorizontalHeaderLabels(["model class", "counted as"])
        table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        table.verticalHeader().setVisible(False)
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, (source, target) in enumerate(mapping):
            table.setItem(row, 0, QTableWidgetItem(source))
            table.setItem(row, 1, QTableWidgetItem(target))
        return table
