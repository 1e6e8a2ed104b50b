"""The setting "Run evaluations on a Ray cluster (address)": one line, explained."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QVBoxLayout, QWidget

RAY_HELP = (
    "Evaluate on a Ray cluster instead of this process (the same numbers, progress and results).\n"
    "Empty: this process. 'local': a Ray started on this machine (or $RAY_ADDRESS).\n"
    "Otherwise the cluster's address, e.g. 10.0.0.5:6379 or ray://head:10001.\n"
    "Needs the ray extra: pip install -e '.[ray]'."
)


class RayClusterDialog(QDialog):
    """Edits the Ray cluster address; `address` is the line edit."""

    def __init__(self, address: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Run evaluations on a Ray cluster")
        self.address = QLineEdit(address)
        self.address.setPlaceholderText("empty: this process · local · host:port · ray://host:10001")
        self.address.setClearButtonEnabled(True)
        ok, cancel = QDialogButtonBox.StandardButton.Ok, QDialogButtonBox.StandardButton.Cancel
        buttons = QDialogButtonBox(ok | cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(RAY_HELP))
        layout.addWidget(self.address)
        layout.addWidget(buttons)

    def value(self) -> str:
        """The address as entered, trimmed ('' = evaluate in this process)."""
        return self.address.text().strip()
