"""The label-editing toolbar: tool, class, brush size, preserve option, undo/redo, edited-GT toggle."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.views.theme import swatch_icon

TOOLS = (
    ("brush", "Brush", "B"),
    ("eraser", "Eraser", "X"),
    ("fill", "Fill", "F"),
    ("polygon", "Polygon", "P"),
    ("picker", "Pick class", "I"),
    ("copy_a", "Copy A", "1"),
    ("copy_b", "Copy B", "2"),
)


class EditBar(QWidget):
    """Layout only; the EditController reads the current tool, class and size from it."""

    tool_changed = Signal(str)
    radius_changed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.buttons: dict[str, QToolButton] = {}
        self.group = QButtonGroup(self)
        self.group.setExclusive(True)
        # Two rows, so the bar never makes the window wider than the screen.
        rows = QVBoxLayout(self)
        rows.setContentsMargins(0, 0, 0, 0)
        rows.setSpacing(2)
        row = QHBoxLayout()
        options = QHBoxLayout()
        rows.addLayout(row)
        rows.addLayout(options)
        row.addWidget(QLabel("Edit GT:"))
        for key, text, shortcut in TOOLS:
            button = QToolButton()
            button.setText(text)
            button.setCheckable(True)
            button.setShortcut(shortcut)
            button.setToolTip(f"{text} ({shortcut})")
            self.group.addButton(button)
            self.buttons[key] = button
            row.addWidget(button)
            button.toggled.connect(lambda on, k=key: self._on_toggled(on, k))
        self.buttons["brush"].setChecked(True)
        self.value = QComboBox()
        self.value.setToolTip("Class to paint (labelIds)")
        self.radius = QSpinBox()
        self.radius.setRange(1, 200)
        self.radius.setValue(8)
        self.radius.setSuffix(" px")
        self.radius.setToolTip("Brush radius ([ and ] change it)")
        self.polygon_source = QComboBox()
        self.polygon_source.setToolTip("A closed polygon writes the class, or model A's/B's pixels")
        for text, key in (("polygon: class", "class"), ("polygon: copy A", "a"), ("polygon: copy B", "b")):
            self.polygon_source.addItem(text, key)
        self.preserve = QCheckBox("Only unlabeled")
        self.preserve.setToolTip("Preserve other classes: paint only over 'unlabeled' pixels")
        self.undo = QPushButton("Undo")
        self.redo = QPushButton("Redo")
        for push in (self.undo, self.redo):  # below the style's ~80 px when the window is narrow
            push.setMinimumWidth(push.fontMetrics().horizontalAdvance(push.text()) + 20)
        row.addStretch(1)
        for widget in (self.value, self.radius, self.polygon_source, self.preserve, self.undo, self.redo):
            options.addWidget(widget)
        options.addStretch(1)
        self.radius.valueChanged.connect(self.radius_changed)

    def _on_toggled(self, on: bool, key: str) -> None:
        if on:
            self.tool_changed.emit(key)

    def set_classes(self, names: Sequence[str], colors: Sequence[tuple[int, int, int]]) -> None:
        self.value.clear()
        for value, (name, color) in enumerate(zip(names, colors, strict=True)):
            self.value.addItem(swatch_icon(color), f"{value} {name}", value)

    def tool(self) -> str:
        for key, button in self.buttons.items():
            if button.isChecked():
                return key
        return "brush"

    def class_value(self) -> int:
        data = self.value.currentData()
        return int(data) if data is not None else 0

    def set_class_value(self, value: int) -> None:
        index = self.value.findData(value)
        if index >= 0:
            self.value.setCurrentIndex(index)

    def step_size(self, delta: int) -> None:
        self.radius.setValue(self.radius.value() + delta)
