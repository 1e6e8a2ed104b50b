"""Every question the window asks the user, in one place: folders, files to open or save, a line of text,
a modal dialog to run. Controllers ask through `MainWindow.dialogs`; tests put in one that answers as a
user would (the one dialog seam), so every menu item is driven through its action."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QFileDialog, QInputDialog, QWidget


class Dialogs:
    """The platform's standard dialogs, parented to the window."""

    def __init__(self, parent: QWidget) -> None:
        self.parent = parent

    def existing_directory(self, title: str, start: str = "") -> str:
        """A folder the user picked, or "" when cancelled."""
        return QFileDialog.getExistingDirectory(self.parent, title, start)

    def open_file(self, title: str, start: str = "", filters: str = "") -> str:
        """A file to read, or "" when cancelled."""
        return QFileDialog.getOpenFileName(self.parent, title, start, filters)[0]

    def open_files(self, title: str, start: str = "", filters: str = "") -> list[str]:
        """Files to read (empty when cancelled)."""
        return QFileDialog.getOpenFileNames(self.parent, title, start, filters)[0]

    def save_file(self, title: str, start: str = "", filters: str = "") -> str:
        """A file to write, or "" when cancelled."""
        return QFileDialog.getSaveFileName(self.parent, title, start, filters)[0]

    def text(self, title: str, label: str) -> str | None:
        """A line of text, or None when cancelled."""
        text, ok = QInputDialog.getText(self.parent, title, label)
        return text if ok else None

    def run(self, dialog: QDialog) -> bool:
        """Show a modal dialog; True when the user accepted it."""
        return dialog.exec() == QDialog.DialogCode.Accepted
