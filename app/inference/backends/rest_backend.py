"""A model served by `seglens serve` (the team's REST API) as a Segmenter.

Manifest (kind "rest")::

    name: segformer-b0 (hosted)
    kind: rest
    url: https://seg.example.org
    options:
      api: seglens               # default; "p9" / "p8": the team's deployed apps (rest_presets)
      model: segformer-b0        # optional: POST /switch/{model} at load when the server serves another
      api_key_env: SEGLENS_KEY   # or keyring_service: seglens-prod (never the key itself)
      read_timeout: 30           # and the other http_client.ClientSettings fields

The image goes up as PNG (lossless: the server must see our pixels exactly) and the mask comes back as a
PNG body (`Accept: image/png`), which skips base64 and JSON. Every response names the model that
produced it (X-SegLens-Model); a server switched to another model by someone else is reported as an
error, not silently evaluated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.core.domain.errors import PredictError
from app.inference.backends.http_client import HttpClient, load_error, remote_digest
from app.inference.backends.remote_common import RemoteSegmenter
from app.inference.backends.remote_masks import b64decode, decode_png, encode_png
from app.inference.base import InputSpec, ModelInfo, Segmenter
from app.inference.manifest import ModelManifest
from app.inference.preprocess import scheme_key

if TYPE_CHECKING:
    import httpx

_SERVER_TIMING = re.compile(r"(?:^|,)\s*([\w.-]+)\s*(?:;[^,]*?\bdur=([0-9.]+))?", re.ASCII)


class RestSegmenter(RemoteSegmenter):
    """A Segmenter whose predict() is one POST /predict to a SegLens server. Thread-safe."""

    def __init__(
        self, url: str, manifest: ModelManifest | None = None, *, client: HttpClient | None = None
    ) -> None:
        super().__init__(url, manifest, client=client)
        self._served = self._info.extra.get("served_model", "")

    def __repr__(self) -> str:
        return f"RestSegmenter({self._client.endpoint!r}, model={self._served!r})"

    # --- load ---------------------------------------------------------------------------------------

    def _load(self, manifest: ModelManifest | None, options: Mapping[str, Any]) -> None:
        document = self._open(options.get("model"))
        self._info = self._model_info(document, manifest)

    def _open(self, wanted: Any) -> dict[str, Any]:
        document = self._info_document()
        if wanted is not None and str(wanted) != _served_name(document):
            # /switch changes the server for every client; only done when the manifest asks for a model.
            self._client.request("POST", f"/switch/{wanted}", error=load_error)
            document = self._info_document()
            if _served_name(document) != str(wanted):
                raise load_error(
                    f"{self._client.endpoint}: asked to switch to {wanted!r}, server still serves "
                    f"{_served_name(document)!r}"
                )
        return document

    def _info_document(self) -> dict[str, Any]:
        document = self._client.get_json("/info")
        if not isinstance(document, dict):
            raise load_error(f"{self._client.endpoint}/info: expected a JSON object, got {document!r:.80}")
        classes = document.get("classes")
        if (
            not isinstance(classes, list)
            or not classes
            or len(classes) > 255
            or not all(isinstance(c, str) and c for c in classes)
        ):
            raise load_error(f"{self._client.endpoint}/info: 'classes' must be a list of 1..255 class names")
        return document

    def _model_info(self, document: Mapping[str, Any], manifest: ModelManifest | None) -> ModelInfo:
        served = _served_name(document)
        names = tuple(document["classes"])
        if (
            manifest is not None
            and manifest.class_names is not None
            and len(manifest.class_names) != len(names)
        ):
            raise load_error(
                f"{self._client.endpoint}: the manifest names {len(manifest.class_names)} classes, "
                f"the server {len(names)}"
            )
        size = _size(document)
        name = manifest.name if manifest is not None else served or self._client.endpoint
        declared = document.get("scheme")
        return ModelInfo(
            name=name,
            backend="rest",
            source=self._client.endpoint,
            class_names=names,
            scheme=scheme_key(names, name, declared if isinstance(declared, str) else None),
            input=InputSpec(
                height=size[0] if size else None,
                width=size[1] if size else None,
                resize="fixed" if size else "any",
            ),
            output="labels",
            file_size=None,
            digest=remote_digest(self._url, document),
            extra={
                "served_model": served,
                "server_backend": str(document.get("backend", "")),
                "server_digest": str(document.get("digest", "")),
            },
        )

    # --- predict ------------------------------------------------------------------------------------

    def _encode(self, image: np.ndarray) -> tuple[str, dict[str, Any]]:
        files = {"file": ("image.png", encode_png(image), "image/png")}
        return "/predict", {"files": files, "headers": {"Accept": "image/png"}}

    def _decode(self, response: httpx.Response, size: tuple[int, int]) -> tuple[np.ndarray, float | None]:
        """The checked mask and the server's own time (ms) if it reports one."""
        endpoint = f"{self._client.endpoint}/predict"
        served = response.headers.get("X-SegLens-Model")
        server_ms = _server_ms(response)
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            document = self._client.json_body(response, "/predict")
            if not isinstance(document, dict) or not isinstance(document.get("mask_png_base64"), str):
                raise PredictError(f"{endpoint}: JSON answer without 'mask_png_base64'")
            served = served or str(document.get("model", ""))
            server_ms = server_ms if server_ms is not None else _json_server_ms(document.get("timings"))
            png = _b64decode(document["mask_png_base64"], endpoint)
        else:
            png = response.content
        if served and self._served and served != self._served:
            raise PredictError(
                f"{endpoint}: answered by model {served!r}, expected {self._served!r} "
                "(was the server switched?)"
            )
        labels = _decode_mask(png, endpoint)
        if labels.shape != size:
            raise PredictError(
                f"{endpoint}: mask is {labels.shape[1]}x{labels.shape[0]}, image is {size[1]}x{size[0]}"
            )
        count = len(self._info.class_names)
        if labels.size and int(labels.max()) >= count:
            raise PredictError(f"{endpoint}: mask has class value {int(labels.max())}; the model has {count}")
        return labels, server_ms


def load_rest(target: Path | str, manifest: ModelManifest | None = None) -> Segmenter:
    """Registry entry point: a manifest with kind "rest" and a url; options.api picks the API
    ("seglens", the default; "p9" and "p8", the team's deployed apps: see rest_presets)."""
    url = manifest.url if manifest is not None and manifest.url else str(target)
    if "://" not in url:
        raise load_error(f"{target}: a REST model needs a url in its manifest")
    api = str(manifest.options.get("api", "seglens")).lower() if manifest is not None else "seglens"
    if api in ("p8", "p9"):
        from app.inference.backends.rest_presets import load_preset

        return load_preset(url, manifest, api)
    if api != "seglens":
        raise load_error(f"{url}: unknown options.api {api!r}; known: seglens, p9, p8")
    return RestSegmenter(url, manifest)


def _served_name(document: Mapping[str, Any]) -> str:
    value = document.get("model", document.get("name", ""))
    return str(value) if value is not None else ""


def _size(document: Mapping[str, Any]) -> tuple[int, int] | None:
    """The model's input (height, width) from /info ("input": {"height", "width"}), None when dynamic."""
    spec = document.get("input")
    if isinstance(spec, dict):
        value: Any = [spec.get("height"), spec.get("width")]
    else:
        value = document.get("input_size")
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return int(value[0]), int(value[1])
    return None


def _b64decode(text: str, endpoint: str) -> bytes:
    return b64decode(text, f"{endpoint}: 'mask_png_base64'")


def _decode_mask(png: bytes, endpoint: str) -> np.ndarray:
    mask = decode_png(png, endpoint)  # its size checked from the PNG header before decoding
    if mask.ndim != 2:
        raise PredictError(f"{endpoint}: expected an 8-bit single-channel PNG mask, got an RGB one")
    return mask


def _server_ms(response: httpx.Response) -> float | None:
    """The server's own time: total_ms of the X-SegLens-Timings JSON header (`seglens serve`), else a
    `Server-Timing` header (its "total", else the sum of its entries), else None."""
    header = response.headers.get("X-SegLens-Timings")
    if header:
        try:
            reported = _json_server_ms(json.loads(header))
        except ValueError:
            reported = None
        if reported is not None:
            return reported
    timing = response.headers.get("Server-Timing")
    if not timing:
        return None
    durations = {name: float(dur) for name, dur in _SERVER_TIMING.findall(timing) if dur}
    if not durations:
        return None
    return durations.get("total", sum(durations.values()))


def _json_server_ms(timings: Any) -> float | None:
    """The server's time from a JSON "timings" object: its total_ms, else the sum of its *_ms numbers."""
    if not isinstance(timings, dict):
        return None
    values = {
        k: float(v)
        for k, v in timings.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and str(k).endswith("_ms")
    }
    if "total_ms" in values:
        return values["total_ms"]
    return sum(values.values()) if values else None
