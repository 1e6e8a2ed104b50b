"""Review of the current image: flags, free tags, a note and commented region boxes."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class ReviewPanel(QWidget):
    """Layout only: the review controller fills it and reads it back."""

    flag_toggled = Signal(str, bool)
    flag_added = Signal(str)
    tags_edited = Signal(str)
    note_edited = Signal(str)
    box_requested = Signal()
    box_removed = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("No image")
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        self.flags_row = QGridLayout()  # two columns: flags must not widen the dock
        self.flag_boxes: dict[str, QCheckBox] = {}
        self.new_flag = QLineEdit()
        self.new_flag.setPlaceholderText("new flag…")
        self.tags = QLineEdit()
        self.tags.setPlaceholderText("tags, comma separated")
        self.note = QPlainTextEdit()
        self.note.setPlaceholderText("Why is this image interesting? (saved automatically)")
        self.boxes = QListWidget()
        self.boxes.setMaximumHeight(90)
        self.add_box = QPushButton("Mark a region…")
        self.add_box.setToolTip("Drag a rectangle on the image, then type its comment")
        self.remove_box = QPushButton("Remove region")
        self.status = QLabel("")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addLayout(self.flags_row)
        layout.addWidget(self.new_flag)
        layout.addWidget(QLabel("Tags"))
        layout.addWidget(self.tags)
        layout.addWidget(QLabel("Note"))
        layout.addWidget(self.note, 1)
        layout.addWidget(QLabel("Regions"))
        layout.addWidget(self.boxes)
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_box)
        buttons.addWidget(self.remove_box)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        self.new_flag.returnPressed.connect(self._on_new_flag)
        self.tags.editingFinished.connect(lambda: self.tags_edited.emit(self.tags.text()))
        self.add_box.clicked.connect(self.box_requested)
        self.remove_box.clicked.connect(lambda: self.box_removed.emit(self.boxes.currentRow()))

    def set_vocabulary(self, names: Sequence[str]) -> None:
        for box in self.flag_boxes.values():
            self.flags_row.removeWidget(box)
            box.deleteLater()
        self.flag_boxes = {}
        for i, name in enumerate(names):
            box = QCheckBox(name)
            box.toggled.connect(lambda on, n=name: self.flag_toggled.emit(n, on))
            self.flags_row.addWidget(box, i // 2, i % 2)
            self.flag_boxes[name] = box

    def show_review(
        self, title: str, flags: Sequence[str], tags: Sequence[str], note: str, boxes: Sequence[str]
    ) -> None:
        """Display one image's review without echoing the changes back as edits."""
        self.title.setText(title)
        for name, box in self.flag_boxes.items():
            box.blockSignals(True)
            box.setChecked(name in flags)
            box.blockSignals(False)
        self.tags.setText(", ".join(tags))
        self.note.blockSignals(True)
        self.note.setPlainText(note)
        self.note.blockSignals(False)
        self.boxes.clear()
        self.boxes.addItems(list(boxes))

    def _on_new_flag(self) -> None:
        text = self.new_flag.text().strip()
        if text:
            self.flag_added.emit(text)
            self.new_flag.clear()
