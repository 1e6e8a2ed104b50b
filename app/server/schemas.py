"""Response bodies, declared for the OpenAPI schema (/docs) and validated on the way out."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer."""

    error: str = Field(description="short, stable phrase, e.g. 'not an image', 'busy'")
    detail: Any = Field(default=None, description="what exactly was wrong")


class Health(BaseModel):
    """GET /health."""

    status: str
    models: list[str]
    active: str
    busy: int = Field(description="predictions running now")
    max_concurrency: int


class PredictTimings(BaseModel):
    """Server-side milliseconds per stage of one prediction."""

    decode_ms: float
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    encode_ms: float
    total_ms: float


class PredictResult(BaseModel):
    """POST /predict as JSON."""

    model: str = Field(description="served name of the model that answered")
    classes: list[str] = Field(description="class names; mask value i is classes[i]")
    scheme: str
    shape: list[int] = Field(description="[height, width] of the mask (= the uploaded image)")
    mask_png_base64: str = Field(description="8-bit greyscale PNG of the labels in the model's class values")
    timings: PredictTimings


class SwitchResult(BaseModel):
    """POST /switch/{model}."""

    active: str
    previous: str
