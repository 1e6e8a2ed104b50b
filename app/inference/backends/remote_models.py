"""Hosted models added by hand (the window's "Add a hosted model"): what the user typed, the manifest it
becomes (never holding the key itself) and where it is saved. Qt-free; the dialog only fills a request."""

from __future__ import annotations

import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.domain.errors import InputError
from app.core.io.fileutil import atomic_write_text
from app.core.io.paths import config_dir


@dataclass(frozen=True)
class RemoteModelRequest:
    """What the user typed; the key is kept only long enough to hand it to the OS keyring."""

    name: str
    protocol: str
    url: str
    model: str
    key_env: str
    key: str
    azureml_deployment: str
    scheme: str
    slot: int  # 0 = A, 1 = B
    api_options: str = ""  # JSON: the http / azureml request and response description


def keyring_available() -> bool:
    """True when the optional `keyring` package is importable (it stores keys in the OS keyring)."""
    try:
        importlib.import_module("keyring")
    except ImportError:
        return False
    return True


def remote_manifest(request: RemoteModelRequest) -> dict[str, Any]:
    """The manifest of a hosted model; it never contains the key itself."""
    if not request.name or not re.fullmatch(r"[A-Za-z0-9._-]+", request.name):
        raise InputError(None, "a hosted model needs a name of letters, digits, '.', '_' or '-'")
    if not request.url.startswith(("http://", "https://")):
        raise InputError(None, f"{request.url!r}: the URL must start with http:// or https://")
    protocol = request.protocol
    options: dict[str, Any] = _api_options(request)
    kind = "rest" if protocol in ("p8", "p9") else protocol
    if protocol in ("p8", "p9"):
        options["api"] = protocol
    if protocol == "p9" and not request.model:
        raise InputError(None, "the P9 app needs a model id, e.g. segformer_b0_fp32")
    if request.model and protocol in ("rest", "p9", "v2"):
        options["model"] = request.model
    if request.key_env:
        options["api_key_env"] = request.key_env
    elif request.key:
        options["keyring_service"] = f"seglens:{request.name}"
    if request.azureml_deployment:
        options["azureml_deployment"] = request.azureml_deployment
    manifest: dict[str, Any] = {"name": request.name, "kind": kind, "url": request.url}
    if request.scheme and protocol not in ("p8", "p9"):
        manifest["scheme"] = request.scheme
    if options:
        manifest["options"] = options
    return manifest


def _api_options(request: RemoteModelRequest) -> dict[str, Any]:
    """The typed API description (JSON) of an http / azureml model, as manifest options."""
    if request.protocol not in ("http", "azureml") or not request.api_options:
        return {}
    try:
        options = json.loads(request.api_options)
    except json.JSONDecodeError as exc:
        raise InputError(None, f"the API description is not JSON: {exc}") from None
    if not isinstance(options, dict):
        raise InputError(None, "the API description must be a JSON object of manifest options")
    if any(k in options for k in ("api_key", "api_key_env", "keyring_service")):
        raise InputError(None, "give the key in the key fields, not in the API description")
    return options


def save_remote(request: RemoteModelRequest, folder: Path | None = None) -> Path:
    """Store the key in the OS keyring (if typed) and write the manifest under the config folder."""
    manifest = remote_manifest(request)
    if request.key and not request.key_env:
        keyring = importlib.import_module("keyring")
        keyring.set_password(manifest["options"]["keyring_service"], "seglens", request.key)
    path = (folder or config_dir() / "remote") / f"{request.name}.json"
    atomic_write_text(path, json.dumps(manifest, indent=2))
    return path
