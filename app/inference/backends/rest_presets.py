"""The team's deployed apps as REST presets (kind "rest", options.api "p9" or "p8").

    {"kind": "rest", "url": "https://p9.azurewebsites.net",
     "options": {"api": "p9", "model": "segformer_b0_fp32"}}
    {"kind": "rest", "url": "https://p8.azurewebsites.net", "options": {"api": "p8"}}

* P9, the SegFormer app (Flask on an Azure Web App): `POST /predict?model=ID`, the image in the multipart
  field `image`; the answer `{"status": "success", "model": ID, "inference_time_ms", "class_distribution",
  "segmentation_image": base64 PNG}` holds an RGB colour mask at 512x256 whatever the upload's size. The
  answer's "model" must be the id asked for; `GET /models` is read at load to refuse an unknown or
  unavailable id before the first image.
* P8, the baseline app: `POST /predict/visualize` with JSON `{"image": base64}`, the answer's
  `colored_mask` (same palette) and `processing_time_ms`.

Both use the 8 categories in the apps' own order and colours (below), mapped back by exact colour; the
mask is resized by nearest neighbour (centre-aligned) to the image. Both are configurations of the
generic HTTP adapter (http_backend).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.inference.backends.http_backend import HttpApi, HttpSegmenter
from app.inference.backends.http_client import load_error
from app.inference.manifest import ModelManifest

APP_CLASSES: tuple[str, ...] = (
    "flat",
    "human",
    "vehicle",
    "construction",
    "object",
    "nature",
    "sky",
    "void",
)
APP_COLOURS: tuple[tuple[int, int, int], ...] = (
    (128, 64, 128),
    (220, 20, 60),
    (0, 0, 142),
    (70, 70, 70),
    (153, 153, 153),
    (107, 142, 35),
    (70, 130, 180),
    (0, 0, 0),
)
P9_MASK_SIZE = (256, 512)  # (height, width) of every P9 answer
PRESETS = ("seglens", "p9", "p8")


def p9_api(model: str) -> HttpApi:
    """The SegFormer app's /predict for model `model`."""
    return HttpApi(
        path="/predict",
        health="/health",
        params={"model": model},
        request="multipart",
        file_field="image",
        response="json_png",
        response_key="segmentation_image",
        model_key="model",
        expect_model=model,
        time_key="inference_time_ms",
        encoding="palette",
        colors=APP_COLOURS,
        class_names=APP_CLASSES,
    )


def p8_api() -> HttpApi:
    """The baseline app's /predict/visualize."""
    return HttpApi(
        path="/predict/visualize",
        health="/health",
        request="json",
        json_key="image",
        response="json_png",
        response_key="colored_mask",
        time_key="processing_time_ms",
        encoding="palette",
        colors=APP_COLOURS,
        class_names=APP_CLASSES,
    )


def load_preset(url: str, manifest: ModelManifest | None, preset: str) -> HttpSegmenter:
    """A P9 or P8 model at `url` (rest_backend.load_rest calls this for options.api)."""
    options: Mapping[str, Any] = manifest.options if manifest is not None else {}
    if preset == "p8":
        return HttpSegmenter(url, manifest, p8_api(), backend="rest-p8")
    model = options.get("model")
    if not isinstance(model, str) or not model:
        raise load_error(f"{url}: the P9 API needs options.model (e.g. segformer_b0_fp32)")
    segmenter = HttpSegmenter(url, manifest, p9_api(model), backend="rest-p9")
    try:
        _check_p9_model(segmenter, model)
    except BaseException:
        segmenter.close()
        raise
    return segmenter


def _check_p9_model(segmenter: HttpSegmenter, model: str) -> None:
    client = segmenter._client
    document = client.get_json("/models")
    entries = document.get("models") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise load_error(f"{client.endpoint}/models: expected {{'models': [...]}}, got {document!r:.100}")
    ids = [str(e.get("id")) for e in entries if isinstance(e, dict)]
    entry = next((e for e in entries if isinstance(e, dict) and str(e.get("id")) == model), None)
    if entry is None:
        raise load_error(f"{client.endpoint}: no model {model!r}; the server has {', '.join(ids) or 'none'}")
    if entry.get("available") is False:
        raise load_error(f"{client.endpoint}: model {model!r} is listed but not available")
