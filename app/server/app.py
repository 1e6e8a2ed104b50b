"""The SegLens REST API: `create_app(models)` -> a FastAPI app serving segmentation models.

Endpoints (the team's API, DESIGN.md "Hosted models"):
    GET  /                   a self-contained page: upload an image, see the overlay
    GET  /health             {"status": "ok", "models": [...], "active": ..., ...}
    GET  /info               metadata of the active model
    POST /predict            multipart `file` -> JSON with the mask as base64 PNG (or the PNG itself
                             with `Accept: image/png`, class names in the X-SegLens-Classes header)
    POST /predict/visualize  multipart `file` -> PNG overlay (`opacity` query parameter, 0..1)
    POST /switch/{model}     make another served model the active one
    GET  /models             served models
    GET  /metrics/{model}    request/error counts, latency percentiles, evaluation results if given

Predictions run in the thread pool (onnxruntime releases the GIL) so the event loop keeps answering;
at most `max_concurrency` run at once and a request beyond that gets 429 + Retry-After at once, so load
never queues without bound.
"""

from __future__ import annotations

import base64
import colorsys
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import __version__
from app.core.display.overlay import overlay
from app.core.domain.errors import InputError, PredictError
from app.core.domain.labels import BUILTIN_SCHEMES
from app.inference.base import ModelInfo, Prediction, Segmenter
from app.server.codec import decode_image, encode_png
from app.server.docs import DOCS_PATHS, install_docs
from app.server.errors import ApiError, error_body
from app.server.middleware import (
    TOO_LARGE,
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    CatchAllMiddleware,
    SecurityHeadersMiddleware,
)
from app.server.page import PAGE_CSP, PAGE_HTML
from app.server.schemas import ErrorBody, Health, PredictResult, PredictTimings, SwitchResult
from app.server.state import ServerState, UnknownModelError

# `seglens serve` is app.server.cli.main; this module only builds the app (it does not import the CLI).
__all__ = ["create_app", "info_dict", "palette_for"]

log = logging.getLogger("seglens.server")

MB = 1 << 20
DEFAULT_MAX_UPLOAD_BYTES = 20 * MB
DEFAULT_MAX_PIXELS = 4096 * 4096
RETRY_AFTER_S = 1
PUBLIC_PATHS = ("/", "/openapi.json", *DOCS_PATHS)
"""Paths served without the API key: the static page and the API description hold no data."""

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 413, 422, 429, 500)
}
Render = Callable[[np.ndarray, Prediction], np.ndarray]
# Module level, not inside the router functions: with postponed annotations FastAPI resolves these
# names in the module's globals.
ImageUpload = Annotated[UploadFile, File(description="the image (PNG, JPEG, ...; any PIL-readable format)")]
Opacity = Annotated[float, Query(ge=0.0, le=1.0, description="0: the image only, 1: the class colours only")]


def create_app(
    models: Mapping[str, Segmenter],
    *,
    api_key: str | None = None,
    max_concurrency: int = 2,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    active: str | None = None,
    evaluations: Mapping[str, Mapping[str, Any]] | None = None,
) -> FastAPI:
    """The API over `models` (served name -> loaded model; the first is active unless `active` says).

    api_key: required on every non-public path when given. max_upload_bytes: whole request body.
    max_pixels: width x height of an uploaded image. evaluations: served name -> summary of
    `seglens evaluate` results (see app.server.evaluations), shown by /metrics. The caller keeps
    ownership of the models (closes them).
    """
    state = ServerState(models, active=active, evaluations=evaluations, max_concurrency=max_concurrency)
    app = FastAPI(
        title="SegLens",
        version=__version__,
        summary="Semantic-segmentation models over HTTP",
        description=__doc__,
        docs_url=None,  # served from shipped assets instead of a CDN (app.server.docs)
        redoc_url=None,
    )
    install_docs(app, "SegLens")
    app.state.seglens = state
    _install_error_handlers(app)
    app.include_router(_info_router(state))
    app.include_router(_predict_router(state, max_pixels))
    # add_middleware wraps: the last added runs first (catch-all outermost, body limit innermost).
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_upload_bytes)
    if api_key is not None:
        app.add_middleware(ApiKeyMiddleware, api_key=api_key, public_paths=PUBLIC_PATHS)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(CatchAllMiddleware)
    return app


# --- errors -------------------------------------------------------------------------------------------


def _install_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        status = exc.status_code
        phrase = HTTPStatus(status).phrase
        detail: Any = None if exc.detail == phrase else exc.detail
        if status == 404 and detail is None:
            detail = f"no such endpoint: {request.method} {request.url.path}"
        elif status == 405 and detail is None:
            detail = f"{request.method} is not allowed on {request.url.path}"
        error = TOO_LARGE if status == 413 else phrase.lower()
        return JSONResponse(error_body(error, detail), status_code=status, headers=exc.headers)

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        # loc + msg only: the default body echoes the offending input back, which may be the upload.
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()]
        return JSONResponse(error_body("invalid request", problems), status_code=422)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)


def _not_served(exc: UnknownModelError) -> ApiError:
    return ApiError(404, "unknown model", str(exc))


# --- metadata endpoints -------------------------------------------------------------------------------


def _info_router(state: ServerState) -> APIRouter:
    router = APIRouter()

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE_HTML, headers={"Content-Security-Policy": PAGE_CSP})

    @router.get("/health", response_model=Health, responses=_ERRORS)
    async def health() -> Health:
        """Liveness, the served models and the active one."""
        return Health(
            status="ok",
            models=state.names,
            active=state.active,
            busy=state.slots.busy,
            max_concurrency=state.slots.capacity,
        )

    @router.get("/info", responses=_ERRORS)
    async def info() -> dict[str, Any]:
        """Metadata of the active model: classes, scheme, input spec, file size, digest."""
        name, model = state.active_model()
        return info_dict(name, model.info)

    @router.get("/models", responses=_ERRORS)
    async def models() -> dict[str, Any]:
        """Every served model, and which one is active."""
        active = state.active
        return {
            "active": active,
            "models": [
                {**_model_summary(name, state.get(name).info), "active": name == active}
                for name in state.names
            ],
        }

    @router.post(
        "/switch/{model}", response_model=SwitchResult, responses={**_ERRORS, 404: {"model": ErrorBody}}
    )
    async def switch(model: str) -> SwitchResult:
        """Make `model` the active model for /predict and /info."""
        previous = state.active
        try:
            state.switch(model)
        except UnknownModelError as exc:
            raise _not_served(exc) from None
        log.info("active model: %s (was %s)", model, previous)
        return SwitchResult(active=model, previous=previous)

    @router.get("/metrics/{model}", responses={**_ERRORS, 404: {"model": ErrorBody}})
    async def metrics(model: str) -> dict[str, Any]:
        """Requests, errors (any non-2xx, 429s included), latency P50/P95/P99 over the last
        requests, and the model's evaluation results when the server was given them."""
        try:
            stats = state.stats(model)
        except UnknownModelError as exc:
            raise _not_served(exc) from None
        return {"model": model, **stats, "evaluation": state.evaluations.get(model)}

    return router


def _model_summary(name: str, info: ModelInfo) -> dict[str, Any]:
    return {
        "name": name,
        "model_name": info.name,
        "backend": info.backend,
        "scheme": info.scheme,
        "num_classes": len(info.class_names),
        "digest": info.digest,
    }


def info_dict(name: str, info: ModelInfo) -> dict[str, Any]:
    """The JSON of GET /info for the model served as `name` (its file path is not disclosed)."""
    spec = info.input
    return {
        **_model_summary(name, info),
        "classes": list(info.class_names),
        "output": info.output,
        "input": {
            "height": spec.height,
            "width": spec.width,
            "layout": spec.layout,
            "channel_order": spec.channel_order,
            "resize": spec.resize,
            "size_multiple": spec.size_multiple,
            "dtype": spec.dtype,
        },
        "file_size": info.file_size,
        "extra": dict(info.extra),
    }


# --- predictions --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    name: str
    info: ModelInfo
    shape: tuple[int, int]
    png: bytes
    timings: dict[str, float]

    def headers(self) -> dict[str, str]:
        # ensure_ascii (the default) keeps header values ASCII whatever the class names are.
        return {
            "X-SegLens-Model": self.name,
            "X-SegLens-Classes": json.dumps(list(self.info.class_names)),
            "X-SegLens-Timings": json.dumps({k: round(v, 3) for k, v in self.timings.items()}),
        }


def _predict_router(state: ServerState, max_pixels: int) -> APIRouter:
    router = APIRouter()
    png = {"image/png": {"schema": {"type": "string", "format": "binary"}}}

    @router.post(
        "/predict",
        response_model=PredictResult,
        responses={
            **_ERRORS,
            200: {"content": png, "description": "JSON, or the mask PNG (Accept: image/png)"},
        },
    )
    async def predict(request: Request, file: ImageUpload) -> Any:
        """Segment the uploaded image with the active model: labels as an 8-bit PNG in the model's class
        values (value i is classes[i]), at the image's size."""
        outcome = await _guarded(state, file, max_pixels, _labels_only)
        if _wants_png(request.headers.get("accept", "")):
            return Response(outcome.png, media_type="image/png", headers=outcome.headers())
        return PredictResult(
            model=outcome.name,
            classes=list(outcome.info.class_names),
            scheme=outcome.info.scheme,
            shape=list(outcome.shape),
            mask_png_base64=base64.b64encode(outcome.png).decode("ascii"),
            timings=PredictTimings(**outcome.timings),
        )

    @router.post(
        "/predict/visualize",
        response_class=Response,
        responses={**_ERRORS, 200: {"content": png, "description": "the overlay, RGB PNG"}},
    )
    async def visualize(
        file: ImageUpload,
        opacity: Opacity = 0.5,
    ) -> Response:
        """The image with the active model's classes blended over it in their colours."""

        # The model is fixed here so that a /switch during the request cannot pair its palette with
        # another model's labels.
        name, model = state.active_model()
        palette = palette_for(model.info)

        def render(image: np.ndarray, prediction: Prediction) -> np.ndarray:
            return overlay(image, prediction.labels, palette, opacity)

        outcome = await _guarded(state, file, max_pixels, render, (name, model))
        return Response(outcome.png, media_type="image/png", headers=outcome.headers())

    return router


async def _guarded(
    state: ServerState,
    upload: UploadFile,
    max_pixels: int,
    render: Render,
    target: tuple[str, Segmenter] | None = None,
) -> _Outcome:
    """Run one prediction in a free slot (429 when none is), counting it in the model's statistics."""
    name, model = target if target is not None else state.active_model()
    if not state.slots.try_acquire():
        state.record(name, ok=False, rejected=True)
        raise ApiError(
            429,
            "busy",
            f"all {state.slots.capacity} prediction slots are in use; retry in {RETRY_AFTER_S} s",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    start = time.perf_counter()
    ok = False
    try:
        data = await upload.read()
        shape, png, timings = await run_in_threadpool(_run, model, data, max_pixels, render)
        ok = True
    finally:
        state.slots.release()
        total_ms = (time.perf_counter() - start) * 1e3
        state.record(name, ok=ok, latency_ms=total_ms)
    return _Outcome(name, model.info, shape, png, {**timings, "total_ms": total_ms})


def _run(
    model: Segmenter, data: bytes, max_pixels: int, render: Render
) -> tuple[tuple[int, int], bytes, dict[str, float]]:
    """Decode, predict, render and encode (in a worker thread). Returns (shape, PNG, timings in ms)."""
    t0 = time.perf_counter()
    image = decode_image(data, max_pixels)
    t1 = time.perf_counter()
    try:
        prediction = model.predict(image)
    except InputError as exc:
        raise ApiError(422, "unsupported image", exc.problem) from None
    except PredictError as exc:
        # The message may name server paths and runtime internals: log it, tell the client less.
        log.error("prediction failed with model %s: %s", model.info.name, exc)
        raise ApiError(500, "prediction failed", "the model failed on this image") from None
    if prediction.labels.shape != image.shape[:2] or prediction.labels.dtype != np.uint8:
        labels = prediction.labels
        log.error("model %s returned labels %s %s", model.info.name, labels.dtype, labels.shape)
        raise ApiError(500, "prediction failed", "the model returned a mask of the wrong size or type")
    t2 = time.perf_counter()
    png = encode_png(render(image, prediction))
    t3 = time.perf_counter()
    timings = {
        "decode_ms": (t1 - t0) * 1e3,
        "preprocess_ms": prediction.timings.preprocess_ms,
        "inference_ms": prediction.timings.inference_ms,
        "postprocess_ms": prediction.timings.postprocess_ms,
        "encode_ms": (t3 - t2) * 1e3,
    }
    return (int(image.shape[0]), int(image.shape[1])), png, timings


def _labels_only(image: np.ndarray, prediction: Prediction) -> np.ndarray:
    return prediction.labels


def _wants_png(accept: str) -> bool:
    """True when the Accept header prefers image/png over JSON (JSON wins ties and is the default)."""
    best: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best[media.lower()] = max(q, best.get(media.lower(), 0.0))
    return best.get("image/png", 0.0) > best.get("application/json", 0.0)


def palette_for(info: ModelInfo) -> np.ndarray:
    """256x3 colours for the model's classes: the built-in scheme's when the model uses one, else a
    stable, well-spread hue walk (golden ratio) per class value."""
    scheme = BUILTIN_SCHEMES.get(info.scheme)
    if scheme is not None and scheme.num_classes == len(info.class_names):
        return scheme.palette()
    palette = np.zeros((256, 3), dtype=np.uint8)
    for i in range(min(len(info.class_names), 256)):
        palette[i] = _hue_colour((i * 0.618033988749895) % 1.0)
    return palette


def _hue_colour(hue: float, saturation: float = 0.65, value: float = 0.95) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)
