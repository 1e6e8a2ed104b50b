"""Stand-ins for the hosted APIs of issue 17, written from their documented formats (FastAPI, served on
127.0.0.1 by servers.serve_app). Each runs a real Segmenter on the uploaded image and answers as the
deployed app does:

* P9 (the SegFormer app): POST /predict?model=ID, multipart `image`, JSON with a base64 RGB colour mask
  nearest-resized to 512x256; /health, /models, /switch/{id}; French error texts.
* P8 (the baseline app): POST /predict/visualize with JSON {"image": base64}, `colored_mask` at the input
  size; /health, /info.
* team A: multipart `file` + form field `model_name`, a PNG body of class indices from /predict/mask;
  also the raw PNG as the body of /predict/raw?version=N.
* team B: POST /predict/ (trailing slash), multipart `file`, {"image_base64": colour PNG at the input size}.
* team C: multipart `file`, {"mask": nested list of class indices at 224x224, "shape": [224, 224]}.

`faults` is a queue the next prediction answers take instead of the normal answer: "wrong_model",
"stray_colour", "huge_png", "endless", "slow" (P9: one second), "error_200" (team A: an error JSON
with status 200), ("error", status, text).
"""

from __future__ import annotations

import asyncio
import base64
import io
import struct
import time
import zlib
from collections import deque
from collections.abc import Iterator
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse
from PIL import Image

from app.inference.backends.rest_presets import APP_COLOURS
from app.inference.base import Segmenter
from app.inference.postprocess import resize_labels_nearest

PALETTE = np.array(APP_COLOURS, dtype=np.uint8)
# Module level: FastAPI resolves the (postponed) annotations of routes in the module's globals.
Upload = Annotated[UploadFile, File()]
P9_SIZE = (256, 512)


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def colour_png(labels: np.ndarray) -> bytes:
    return png_bytes(PALETTE[labels])


def huge_png(width: int = 13000, height: int = 13000) -> bytes:
    """A valid PNG header declaring width x height grey pixels, with almost no data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


def endless() -> Iterator[bytes]:
    """An answer body that never ends (bounded here at 20 s so a broken client cannot hang the suite)."""
    block = b"A" * (1 << 16)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        yield block


def _read_image(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


class HostedStandIns:
    """The five stand-in apps over one model, sharing a fault queue and a request log."""

    def __init__(self, model: Segmenter, models: tuple[str, ...] = ("segformer_b0_fp32",)) -> None:
        self.model, self.models = model, models
        self.faults: deque[Any] = deque()
        self.seen: list[dict[str, Any]] = []

    def labels(self, data: bytes) -> np.ndarray:
        return self.model.predict(_read_image(data)).labels

    def _fault(self) -> Any:
        return self.faults.popleft() if self.faults else None

    def _special(self, fault: Any) -> Response | None:
        if fault == "endless":
            return StreamingResponse(endless(), media_type="application/json")
        if isinstance(fault, tuple) and fault[0] == "error":
            return JSONResponse({"status": "error", "error": fault[2]}, status_code=fault[1])
        return None

    def _mask_png(self, labels: np.ndarray, fault: Any) -> bytes:
        if fault == "huge_png":
            return huge_png()
        colours = PALETTE[labels]
        if fault == "stray_colour":
            colours[:3, :5] = (1, 2, 3)
        return png_bytes(colours)

    # --- P9 ------------------------------------------------------------------------------------------

    def p9(self) -> FastAPI:
        app = FastAPI()
        state = {"active": self.models[0]}

        @app.get("/health")
        def health() -> dict[str, Any]:
            return {
                "status": "healthy",
                "model": state["active"],
                "model_loaded": True,
                "is_azure": False,
                "timestamp": time.time(),
            }

        @app.get("/models")
        def models() -> dict[str, Any]:
            entries = [
                {
                    "id": m,
                    "name": m.replace("_", " "),
                    "precision": m.rsplit("_", 1)[-1],
                    "size_mb": 14.2,
                    "iou": 0.61,
                    "available": True,
                    "active": m == state["active"],
                }
                for m in self.models
            ]
            return {"models": entries, "current": state["active"], "is_azure": False}

        @app.post("/switch/{model}")
        def switch(model: str) -> Response:
            if model not in self.models:
                return JSONResponse({"status": "error", "error": f"Modèle inconnu : {model}"}, 400)
            state["active"] = model
            return JSONResponse({"status": "success", "model": model, "display_name": model, "info": {}})

        @app.post("/predict")
        async def predict(request: Request, model: str | None = None) -> Response:
            form = await request.form()
            upload = form.get("image")
            self.seen.append({"fields": list(form.keys()), "model": model})
            if upload is None or isinstance(upload, str):
                return JSONResponse({"status": "error", "error": "Aucune image fournie"}, 400)
            fault = self._fault()
            special = self._special(fault)
            if special is not None:
                return special
            if fault == "slow":
                await asyncio.sleep(1.0)
            served = model or state["active"]
            start = time.perf_counter()
            labels = self.labels(await upload.read())
            elapsed = (time.perf_counter() - start) * 1e3
            # The app nearest-resizes the model output to 512x256 whatever the upload's size.
            small = resize_labels_nearest(labels, P9_SIZE)
            share = np.bincount(small.ravel(), minlength=len(PALETTE)) / small.size * 100
            return JSONResponse(
                {
                    "status": "success",
                    "model": "segformer_b1_fp32" if fault == "wrong_model" else served,
                    "inference_time_ms": elapsed,
                    "class_distribution": {str(i): float(p) for i, p in enumerate(share)},
                    "segmentation_image": base64.b64encode(self._mask_png(small, fault)).decode(),
                }
            )

        return app

    # --- P8 ------------------------------------------------------------------------------------------

    def p8(self) -> FastAPI:
        app = FastAPI()

        @app.get("/health")
        def health() -> dict[str, str]:
            return {"status": "ok"}

        @app.get("/info")
        def info() -> dict[str, Any]:
            return {"model": "unet-vgg16", "classes": 8}

        @app.post("/predict/visualize")
        async def visualize(request: Request) -> Response:
            body = await request.json()
            self.seen.append({"keys": sorted(body)})
            fault = self._fault()
            special = self._special(fault)
            if special is not None:
                return special
            start = time.perf_counter()
            image_bytes = base64.b64decode(body["image"])
            labels = self.labels(image_bytes)
            elapsed = (time.perf_counter() - start) * 1e3
            mask = self._mask_png(labels, fault)
            overlay = png_bytes(_read_image(image_bytes))
            return JSONResponse(
                {
                    "colored_mask": base64.b64encode(mask).decode(),
                    "overlay": base64.b64encode(overlay).decode(),
                    "processing_time_ms": elapsed,
                }
            )

        return app

    # --- other teams ---------------------------------------------------------------------------------

    def team_a(self) -> FastAPI:
        app = FastAPI()

        @app.get("/health")
        def health() -> dict[str, str]:
            return {"status": "up"}

        @app.post("/predict/mask")
        async def mask(file: Upload, model_name: Annotated[str, Form()]) -> Response:
            if model_name != "unet":
                return JSONResponse({"detail": f"unknown model_name {model_name}"}, 400)
            fault = self._fault()
            if fault == "huge_png":
                return Response(huge_png(), media_type="image/png")
            if fault == "error_200":
                return JSONResponse({"status": "error", "error": "modèle non chargé"}, 200)
            special = self._special(fault)
            if special is not None:
                return special
            return Response(png_bytes(self.labels(await file.read())), media_type="image/png")

        @app.post("/predict/raw")
        async def raw(request: Request, version: str) -> Response:
            # The PNG itself as the body; a query parameter and a header say which model.
            self.seen.append(
                {
                    "type": request.headers.get("content-type"),
                    "version": version,
                    "client": request.headers.get("x-client"),
                }
            )
            return Response(png_bytes(self.labels(await request.body())), media_type="image/png")

        return app

    def team_b(self) -> FastAPI:
        app = FastAPI()

        @app.get("/health")
        def health() -> dict[str, str]:
            return {"status": "healthy"}

        @app.post("/predict/")
        async def predict(file: Upload) -> dict[str, str]:
            labels = self.labels(await file.read())
            return {"image_base64": base64.b64encode(colour_png(labels)).decode()}

        return app

    def team_c(self) -> FastAPI:
        app = FastAPI()

        @app.get("/health")
        def health() -> dict[str, str]:
            return {"status": "ok"}

        @app.post("/segment")
        async def segment(file: Upload) -> dict[str, Any]:
            labels = resize_labels_nearest(self.labels(await file.read()), (224, 224))
            return {"mask": labels.tolist(), "shape": [224, 224]}

        return app
