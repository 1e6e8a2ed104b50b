"""Dialog to add a hosted model (the team's apps, SegLens REST, Azure ML, Open Inference Protocol v2 or any
JSON/PNG API) as model A or B. It is tried before it can be saved: "Try connection" asks the controller to
check health and run one prediction on a worker, and the answer (mask preview, classes, timing) is shown
here; editing any field asks for a new try."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.inference.backends.remote_models import RemoteModelRequest

PROTOCOLS = (
    ("rest", "SegLens REST API (seglens serve)"),
    ("p9", "SegFormer app (P9: /predict?model=ID, colour masks)"),
    ("p8", "Baseline app (P8: /predict/visualize)"),
    ("azureml", "Azure ML online endpoint (/score)"),
    ("v2", "Open Inference Protocol v2 (Triton, KServe, MLServer, ...)"),
    ("http", "Other JSON/PNG API (described below)"),
)
_MODEL_HINTS = {
    "p9": "model id, e.g. segformer_b0_fp32 (required)",
    "v2": "served model name (default: the name above)",
    "rest": "served model name (optional: switches the server)",
}
_PREVIEW_WIDTH = 384


class RemoteModelDialog(QDialog):
    """Layout and display only: the controller validates, tries, stores the key and loads the model."""

    test_requested = Signal()

    def __init__(self, keyring_available: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a hosted model")
        self._make_fields(keyring_available)
        self._lay_out()
        for line in (self.name, self.url, self.model, self.key_env, self.key, self.azureml):
            line.textChanged.connect(self._edited)
        for combo in (self.protocol, self.scheme):
            combo.currentIndexChanged.connect(self._edited)
        self.api_options.textChanged.connect(self._edited)
        self._protocol_changed()

    def _make_fields(self, keyring_available: bool) -> None:
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. segformer-prod")
        self.protocol = QComboBox()
        for key, text in PROTOCOLS:
            self.protocol.addItem(text, key)
        self.url = QLineEdit()
        self.url.setPlaceholderText("https://host:8000")
        self.model = QLineEdit()
        self.scheme = QComboBox()
        for key, text in (
            ("", "from the server / API"),
            ("trainids", "19 trainIds"),
            ("categories", "8 categories"),
        ):
            self.scheme.addItem(text, key)
        self.api_options = QPlainTextEdit()
        self.api_options.setPlaceholderText(
            '{"path": "/predict/mask", "request": {"field": "file", "form": {"model_name": "unet"}},\n'
            ' "response": {"format": "png"}, "encoding": "indices"}'
        )
        self.api_options.setMaximumHeight(90)
        self.key_env = QLineEdit()
        self.key_env.setPlaceholderText("environment variable holding the key, e.g. SEG_API_KEY")
        self.key = QLineEdit()
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setEnabled(keyring_available)
        self.key.setPlaceholderText(
            "stored in the OS keyring, never in a file"
            if keyring_available
            else "no OS keyring: use a variable"
        )
        self.slot = QComboBox()
        self.slot.addItems(["Model A", "Model B"])
        self.azureml = QLineEdit()
        self.azureml.setPlaceholderText("Azure ML deployment (optional)")
        self.try_button = QPushButton("Try connection")
        self.try_button.clicked.connect(self._try)
        self.status = QLabel("Try the connection first: health, then one prediction on a test image.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumHeight(80)

    def _lay_out(self) -> None:
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("API", self.protocol)
        form.addRow("URL", self.url)
        form.addRow("Model", self.model)
        form.addRow("Classes", self.scheme)
        form.addRow("API description", self.api_options)
        form.addRow("API key variable", self.key_env)
        form.addRow("API key", self.key)
        form.addRow("Azure ML", self.azureml)
        form.addRow("Use as", self.slot)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel
        )
        self.save_button = self.buttons.button(QDialogButtonBox.StandardButton.Save)
        self.save_button.setEnabled(False)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.try_button)
        layout.addWidget(self.status)
        layout.addWidget(self.preview)
        layout.addWidget(self.buttons)

    def request(self) -> RemoteModelRequest:
        """The fields as typed (the controller validates them)."""
        return RemoteModelRequest(
            name=self.name.text().strip(),
            protocol=str(self.protocol.currentData()),
            url=self.url.text().strip(),
            model=self.model.text().strip(),
            key_env=self.key_env.text().strip(),
            key=self.key.text(),
            azureml_deployment=self.azureml.text().strip(),
            scheme=str(self.scheme.currentData()),
            slot=self.slot.currentIndex(),
            api_options=self.api_options.toPlainText().strip(),
        )

    def select_protocol(self, key: str) -> None:
        """Choose an API preset by key ("p9", "azureml", ...)."""
        self.protocol.setCurrentIndex(self.protocol.findData(key))

    def show_trying(self) -> None:
        """The try is running: no second try, no saving."""
        self.try_button.setEnabled(False)
        self.save_button.setEnabled(False)
        self.status.setText("Trying: health, then one prediction…")

    def show_result(self, preview: np.ndarray, summary: str) -> None:
        """A successful try: the mask (HxWx3 RGB uint8) and what the controller says about it."""
        image = np.ascontiguousarray(preview)
        height, width = image.shape[:2]
        qimage = QImage(image.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
        pixmap = QPixmap.fromImage(qimage)
        if width > _PREVIEW_WIDTH:
            pixmap = pixmap.scaledToWidth(_PREVIEW_WIDTH, Qt.TransformationMode.FastTransformation)
        self.preview.setPixmap(pixmap)
        self.status.setText(summary)
        self.try_button.setEnabled(True)
        self.save_button.setEnabled(True)

    def show_failure(self, message: str) -> None:
        """The try failed: why, and no saving."""
        self.preview.clear()
        self.status.setText(f"Not usable: {message}")
        self.try_button.setEnabled(True)
        self.save_button.setEnabled(False)

    def _try(self) -> None:
        self.test_requested.emit()

    def _edited(self) -> None:
        self._protocol_changed()
        if self.save_button.isEnabled():
            self.save_button.setEnabled(False)
            self.status.setText("Changed since the last try: try the connection again.")

    def _protocol_changed(self) -> None:
        key = str(self.protocol.currentData())
        self.model.setPlaceholderText(_MODEL_HINTS.get(key, "not used by this API"))
        self.model.setEnabled(key in _MODEL_HINTS)
        self.api_options.setEnabled(key in ("http", "azureml"))
        self.scheme.setEnabled(key not in ("p8", "p9"))
        self.azureml.setEnabled(key in ("azureml", "v2"))
