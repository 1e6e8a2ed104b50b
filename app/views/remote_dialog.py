"""Dialog to add a hosted model (SegLens REST or Open Inference Protocol v2) as model A or B."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from app.inference.backends.remote_models import RemoteModelRequest

PROTOCOLS = (
    ("rest", "SegLens REST API (seglens serve)"),
    ("v2", "Open Inference Protocol v2 (Triton, KServe, ...)"),
)


class RemoteModelDialog(QDialog):
    """Layout only: the controller validates, stores the key and loads the model."""

    def __init__(self, keyring_available: bool, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a hosted model")
        self.name = QLineEdit()
        self.name.setPlaceholderText("e.g. segformer-prod")
        self.protocol = QComboBox()
        for key, text in PROTOCOLS:
            self.protocol.addItem(text, key)
        self.url = QLineEdit()
        self.url.setPlaceholderText("https://host:8000")
        self.model = QLineEdit()
        self.model.setPlaceholderText("served model name (optional for REST)")
        self.scheme = QComboBox()
        for key, text in (
            ("", "from the server"),
            ("trainids", "19 trainIds"),
            ("categories", "8 categories"),
        ):
            self.scheme.addItem(text, key)
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
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Protocol", self.protocol)
        form.addRow("URL", self.url)
        form.addRow("Model", self.model)
        form.addRow("Classes", self.scheme)
        form.addRow("API key variable", self.key_env)
        form.addRow("API key", self.key)
        form.addRow("Azure ML", self.azureml)
        form.addRow("Use as", self.slot)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("The model is checked (health and metadata) before it is used."))
        layout.addWidget(self.buttons)

    def request(self) -> RemoteModelRequest:
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
        )
