"""Any JSON/PNG segmentation API, described by its manifest alone (kind "http"), as a Segmenter.

Manifest (kind "http")::

    name: team-b-unet
    kind: http
    url: https://team-b.example.org
    scheme: categories            # or class_names: [...] (+ options.colors for colour masks)
    options:
      path: /predict/mask         # POSTed to (default /predict)
      health: /health             # GET before use (default /health; null: no check)
      params: {version: "3"}      # query parameters
      headers: {X-Client: seglens}
      request:
        format: multipart         # multipart | json | raw
        field: file               # multipart: the image's field name
        form: {model_name: unet}  # multipart: extra form fields
        key: image                # json: where the base64 PNG goes (dotted path: instances.0)
        image: base64             # json: base64 (a PNG) | list (HxWx3 numbers, as KServe v1 takes)
        body: {threshold: 0.5}    # json: the rest of the body
        content_type: image/png   # raw: the body is the PNG itself
      response:
        format: png               # png (the body) | json_png (base64 at key) | json_indices (list at key)
        key: image_base64         # dotted path into the JSON answer
        model_key: model          # optional: the answer's served-model name ...
        expect_model: unet-v3     # ... which must equal this
        time_key: inference_ms    # optional: the server's own time (ms)
      encoding: auto              # auto | indices | palette (colour masks, mapped back by exact colour)
      colors: [[128, 64, 128], ...]   # the palette, one per class (default: the scheme's colours)
      max_mask_pixels: 40000000   # a mask PNG declaring more is refused before decoding

The image goes up as PNG (lossless) at its own size; the mask that comes back is resized by nearest
neighbour (centre-aligned) to the image when the server answers at another size. Azure ML scoring scripts
often return `json.dumps(...)` from run(), which the server sends as a JSON string: such a string is
parsed once more. The presets for the team's own apps (rest_presets) and Azure ML (azureml_backend) are
configurations of this adapter.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np

from app.core.domain.errors import ModelLoadError, PredictError
from app.inference.backends.http_client import HttpClient, load_error, remote_digest
from app.inference.backends.remote_common import RemoteSegmenter
from app.inference.backends.remote_masks import (
    DEFAULT_MAX_MASK_PIXELS,
    MaskEncoding,
    b64decode,
    decode_png,
    encode_png,
    index_list,
    palette_array,
    to_labels,
)
from app.inference.base import InputSpec, ModelInfo
from app.inference.manifest import ModelManifest
from app.inference.preprocess import scheme_key

if TYPE_CHECKING:
    import httpx

RequestFormat = Literal["multipart", "json", "raw"]
ResponseFormat = Literal["png", "json_png", "json_indices"]
_REQUEST_FORMATS = ("multipart", "json", "raw")
_RESPONSE_FORMATS = ("png", "json_png", "json_indices")
_ENCODINGS = ("auto", "indices", "palette")
_VOLATILE = frozenset({"timestamp", "time", "now", "uptime", "uptime_s", "date", "requests", "load"})


@dataclass(frozen=True)
class HttpApi:
    """How to call one segmentation API and read its answer (see the module docstring)."""

    path: str = "/predict"
    health: str | None = "/health"
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    request: RequestFormat = "multipart"
    file_field: str = "file"
    form: Mapping[str, str] = field(default_factory=dict)
    json_key: str = "image"
    json_image: Literal["base64", "list"] = "base64"  # list: HxWx3 nested numbers (KServe v1 instances)
    json_body: Mapping[str, Any] = field(default_factory=dict)
    content_type: str = "image/png"
    response: ResponseFormat = "png"
    response_key: str = ""
    model_key: str | None = None
    expect_model: str | None = None
    time_key: str | None = None
    encoding: MaskEncoding = "auto"
    colors: tuple[tuple[int, int, int], ...] | None = None
    class_names: tuple[str, ...] | None = None  # a preset's own classes (else the manifest's)
    max_mask_pixels: int = DEFAULT_MAX_MASK_PIXELS

    def describe(self) -> dict[str, Any]:
        """The API as plain JSON data (for the model's digest and ModelInfo.extra)."""
        return cast(dict[str, Any], json.loads(json.dumps(dataclasses.asdict(self), default=str)))


def parse_api(options: Mapping[str, Any], where: str) -> HttpApi:
    """An HttpApi from a manifest's options; a bad value raises ModelLoadError naming the option."""
    request = _mapping(options, "request", where)
    response = _mapping(options, "response", where)
    values: dict[str, Any] = {
        "path": _path(options.get("path", "/predict"), "path", where),
        "health": _path(health, "health", where) if (health := options.get("health", "/health")) else None,
        "params": _strings(options, "params", where),
        "headers": _headers(options, where),
        "request": _choice(request.get("format", "multipart"), _REQUEST_FORMATS, "request.format", where),
        "file_field": _text(request.get("field", "file"), "request.field", where),
        "form": _strings(request, "form", where, "request."),
        "json_key": _text(request.get("key", "image"), "request.key", where),
        "json_image": _choice(request.get("image", "base64"), ("base64", "list"), "request.image", where),
        "json_body": _mapping(request, "body", where, "request."),
        "content_type": _text(request.get("content_type", "image/png"), "request.content_type", where),
        "response": _choice(response.get("format", "png"), _RESPONSE_FORMATS, "response.format", where),
        "response_key": str(response.get("key", "")),
        "model_key": _optional_text(response.get("model_key"), "response.model_key", where),
        "expect_model": _optional_text(response.get("expect_model"), "response.expect_model", where),
        "time_key": _optional_text(response.get("time_key"), "response.time_key", where),
        "encoding": _choice(options.get("encoding", "auto"), _ENCODINGS, "encoding", where),
    }
    if values["response"] != "png" and not values["response_key"]:
        raise load_error(f"{where}: options.response.key is needed for response format {values['response']}")
    if options.get("colors") is not None:
        try:
            colors = palette_array(options["colors"], f"{where}: options.colors")
        except ValueError as exc:
            raise load_error(str(exc)) from None
        values["colors"] = tuple(tuple(int(v) for v in row) for row in colors.tolist())
    if "max_mask_pixels" in options:
        limit = options["max_mask_pixels"]
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise load_error(f"{where}: options.max_mask_pixels must be a positive integer")
        values["max_mask_pixels"] = limit
    return HttpApi(**values)


class HttpSegmenter(RemoteSegmenter):
    """A Segmenter over one POST per image to an API described by an HttpApi. Thread-safe."""

    def __init__(
        self,
        url: str,
        manifest: ModelManifest | None,
        api: HttpApi,
        *,
        backend: str = "http",
        client: HttpClient | None = None,
    ) -> None:
        self._api, self._backend = api, backend
        super().__init__(url, manifest, client=client, headers=api.headers)

    def __repr__(self) -> str:
        return f"HttpSegmenter({self._client.endpoint}{self._api.path!r}, backend={self._backend!r})"

    @property
    def api(self) -> HttpApi:
        """How this model's server is called."""
        return self._api

    # --- load ---------------------------------------------------------------------------------------

    def _load(self, manifest: ModelManifest | None, options: Mapping[str, Any]) -> None:
        endpoint = self._client.endpoint
        health: Any = None
        if self._api.health is not None:
            response = self._client.request("GET", self._api.health, error=_health_error)
            health = check_health(response, f"{endpoint}{self._api.health}")
        names, colours, scheme = self._classes(manifest, f"{endpoint}{self._api.path}")
        self._palette = palette_array(colours, endpoint) if colours is not None else None
        if self._api.encoding == "palette" and self._palette is None:
            raise load_error(
                f"{endpoint}: colour masks need a colour per class: give options.colors or a builtin scheme"
            )
        name = manifest.name if manifest is not None else endpoint
        # The digest keys the prediction cache: the health answer's clock readings must not change it.
        if isinstance(health, dict):
            health = {k: v for k, v in health.items() if k.lower() not in _VOLATILE}
        description = {"api": self._api.describe(), "classes": list(names), "health": health}
        self._info = ModelInfo(
            name=name,
            backend=self._backend,
            source=f"{endpoint}{self._api.path}",
            class_names=names,
            scheme=scheme or scheme_key(names, name),
            input=InputSpec(height=None, width=None, resize="any", dtype="uint8"),
            output="labels",
            file_size=None,
            digest=remote_digest(self._url + self._api.path, description),
            extra={
                "request": self._api.request,
                "response": self._api.response,
                "encoding": self._api.encoding,
                **({"served_model": self._api.expect_model} if self._api.expect_model else {}),
            },
        )

    def _classes(
        self, manifest: ModelManifest | None, where: str
    ) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...] | None, str | None]:
        api = self._api
        if api.class_names is not None:
            if manifest is not None and manifest.class_names not in (None, api.class_names):
                raise load_error(f"{where}: this API's classes are fixed: {', '.join(api.class_names)}")
            return api.class_names, api.colors, None
        if manifest is not None and manifest.class_names is not None:
            colours = api.colors
            if colours is not None and len(colours) != len(manifest.class_names):
                raise load_error(
                    f"{where}: options.colors has {len(colours)} colours for "
                    f"{len(manifest.class_names)} classes"
                )
            return manifest.class_names, colours, None
        scheme = manifest.class_scheme() if manifest is not None else None
        if scheme is None:
            raise load_error(f"{where}: name the classes: class_names or scheme in the manifest")
        colours = api.colors or tuple((int(r), int(g), int(b)) for r, g, b in scheme.colors)
        return scheme.names, colours, scheme.key

    # --- predict ------------------------------------------------------------------------------------

    def _encode(self, image: np.ndarray) -> tuple[str, dict[str, Any]]:
        api = self._api
        png = encode_png(image) if api.request != "json" or api.json_image == "base64" else b""
        request: dict[str, Any] = {"params": dict(api.params)} if api.params else {}
        if api.request == "multipart":
            request["files"] = {api.file_field: ("image.png", png, "image/png")}
            if api.form:
                request["data"] = dict(api.form)
        elif api.request == "json":
            import base64

            body = json.loads(json.dumps(api.json_body))  # a deep copy: the template is shared
            value: Any = image.tolist() if api.json_image == "list" else base64.b64encode(png).decode()
            _set_path(body, api.json_key, value)
            request["content"] = json.dumps(body, separators=(",", ":")).encode()
            request["headers"] = {"Content-Type": "application/json"}
        else:
            request["content"] = png
            request["headers"] = {"Content-Type": api.content_type}
        return api.path, request

    def _decode(self, response: httpx.Response, size: tuple[int, int]) -> tuple[np.ndarray, float | None]:
        api = self._api
        where = f"{self._client.endpoint}{api.path}"
        server_ms: float | None = None
        encoding = api.encoding
        if api.response == "png":
            if response.content[:1] == b"{":  # a JSON error with a 2xx status (some Flask apps)
                answer_document(self._client.json_body(response, api.path), where)
            mask = decode_png(response.content, where, api.max_mask_pixels, encoding)
        else:
            document = answer_document(self._client.json_body(response, api.path), where)
            self._check_model(document, where)
            server_ms = _milliseconds(document, api.time_key, where)
            value = get_path(document, api.response_key, where)
            if api.response == "json_png":
                mask = decode_png(b64decode(value, where), where, api.max_mask_pixels, encoding)
            else:
                mask = index_list(value, where)
        return to_labels(mask, encoding, self._palette, len(self._info.class_names), size, where), server_ms

    def _check_model(self, document: Any, where: str) -> None:
        api = self._api
        if api.model_key is None:
            return
        served = get_path(document, api.model_key, where)
        if api.expect_model is not None and str(served) != api.expect_model:
            raise PredictError(
                f"{where}: answered by model {served!r}, expected {api.expect_model!r} "
                "(was the server switched?)"
            )


def load_http(target: Path | str, manifest: ModelManifest | None = None) -> HttpSegmenter:
    """Registry entry point: a manifest with kind "http", a url and the API in its options."""
    if manifest is None or not manifest.url:
        raise load_error(f"{target}: an HTTP model needs a manifest with a url")
    return HttpSegmenter(manifest.url, manifest, parse_api(manifest.options, manifest.url))


# --- JSON helpers shared by the presets ------------------------------------------------------------------


def _health_error(message: str) -> ModelLoadError:
    return load_error(f"{message} (options.health names the API's health path; null skips the check)")


def check_health(response: httpx.Response, where: str) -> Any:
    """The health answer's JSON (or text); a JSON status of error/unhealthy/down raises load_error."""
    try:
        document: Any = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text[:200]
    if isinstance(document, dict):
        status = str(document.get("status", "")).lower()
        if status in ("error", "unhealthy", "down", "fail", "failed"):
            raise load_error(f"{where}: the server reports status {status!r}: {document!r:.200}")
        if document.get("model_loaded") is False or document.get("ready") is False:
            raise load_error(f"{where}: the server is up but reports its model not loaded or not ready")
    return document


def answer_document(document: Any, where: str) -> Any:
    """A JSON answer, parsed once more when it is a JSON string holding JSON (Azure ML's run() returning
    json.dumps(...)); an answer with "status": "error" raises PredictError with its message."""
    if isinstance(document, str) and document.lstrip()[:1] in ("{", "["):
        try:
            document = json.loads(document)
        except ValueError:
            raise PredictError(
                f"{where}: the answer is a string that is not JSON: {document[:80]!r}"
            ) from None
    if isinstance(document, dict) and str(document.get("status", "")).lower() == "error":
        raise PredictError(f"{where}: the server reports an error: {str(document.get('error', ''))[:300]}")
    return document


def get_path(document: Any, path: str, where: str) -> Any:
    """The value at a dotted path ("outputs.0.mask"; "" is the document itself). PredictError if absent."""
    value = document
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            keys = ", ".join(map(str, list(value)[:10])) if isinstance(value, dict) else type(value).__name__
            raise PredictError(f"{where}: the answer has no {path!r} (at {part!r}; found: {keys})")
    return value


def _set_path(body: dict[str, Any], path: str, value: Any) -> None:
    parts = [p for p in path.split(".") if p]
    node: Any = body
    for part, following in itertools.pairwise(parts):
        if isinstance(node, list):
            node = node[int(part)]
            continue
        node = node.setdefault(part, [] if following.isdigit() else {})
        if isinstance(node, list) and following.isdigit():
            while len(node) <= int(following):
                node.append({})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def _milliseconds(document: Any, key: str | None, where: str) -> float | None:
    if key is None:
        return None
    value = get_path(document, key, where)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


# --- option parsing -------------------------------------------------------------------------------------


def _mapping(options: Mapping[str, Any], key: str, where: str, prefix: str = "") -> dict[str, Any]:
    value = options.get(key) or {}
    if not isinstance(value, dict):
        raise load_error(f"{where}: options.{prefix}{key} must be a mapping")
    return dict(value)


def _strings(options: Mapping[str, Any], key: str, where: str, prefix: str = "") -> dict[str, str]:
    value = _mapping(options, key, where, prefix)
    if not all(isinstance(v, str | int | float) and not isinstance(v, bool) for v in value.values()):
        raise load_error(f"{where}: options.{prefix}{key} values must be text or numbers")
    return {str(k): str(v) for k, v in value.items()}


def _headers(options: Mapping[str, Any], where: str) -> dict[str, str]:
    headers = _strings(options, "headers", where)
    if any(k.lower() in ("authorization", "api-key", "x-api-key") for k in headers):
        raise load_error(
            f"{where}: a key in options.headers would be stored in clear text; use options.api_key_env "
            "or options.keyring_service (sent as Bearer)"
        )
    return headers


def _choice(value: Any, choices: tuple[str, ...], key: str, where: str) -> Any:
    if value not in choices:
        raise load_error(f"{where}: options.{key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _text(value: Any, key: str, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise load_error(f"{where}: options.{key} must be non-empty text, got {value!r}")
    return value


def _optional_text(value: Any, key: str, where: str) -> str | None:
    return None if value is None else _text(str(value), key, where)


def _path(value: Any, key: str, where: str) -> str:
    text = _text(value, key, where)
    if "://" in text:
        raise load_error(f"{where}: options.{key} is a path on the server (e.g. /predict), not a URL")
    return text if text.startswith("/") else "/" + text
