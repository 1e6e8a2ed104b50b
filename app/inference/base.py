"""The one interface every model backend implements, and the plain dataclasses it returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

ResizePolicy = Literal["fixed", "any", "multiple"]
"""fixed: resize to the model's input size; any: feed the image as is; multiple: pad-free resize to the
nearest multiple of `size_multiple` (for fully convolutional models that need divisible sizes)."""
OutputKind = Literal["logits", "probabilities", "labels"]
Layout = Literal["NCHW", "NHWC"]
ChannelOrder = Literal["RGB", "BGR"]


@dataclass(frozen=True)
class InputSpec:
    """How an RGB uint8 image becomes the model's input tensor."""

    height: int | None  # None: dynamic
    width: int | None
    layout: Layout = "NCHW"
    channel_order: ChannelOrder = "RGB"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    scale: float = 1.0 / 255.0  # applied before mean/std: x = (pixel * scale - mean) / std
    resize: ResizePolicy = "fixed"
    size_multiple: int = 32
    dtype: Literal["float32", "uint8"] = "float32"


@dataclass(frozen=True)
class ModelInfo:
    """What the user sees about a model (model manager, reports)."""

    name: str
    backend: str  # "onnx", "keras", "hf", "rest", "v2"
    source: str  # path or URL
    class_names: tuple[str, ...]
    scheme: str  # "trainids", "categories", "labelids" or "custom:<name>"
    input: InputSpec
    output: OutputKind
    file_size: int | None  # bytes; None for remote models
    digest: str  # sha256 of the model file (hex); for remote models a digest of URL + /info
    extra: dict[str, str] = field(default_factory=dict)  # backend-specific facts (opset, providers, ...)


@dataclass(frozen=True)
class Timings:
    """Milliseconds spent in each stage of one predict() call. Backends may time the stages around the
    model call in CPU time of the thread doing them (ONNX does: during an evaluation they wait for a core
    at low priority, which is not latency); the model call itself is wall time."""

    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


@dataclass(frozen=True)
class Prediction:
    """One image's result: labels in the *model's* scheme at the input image's resolution."""

    labels: np.ndarray  # HxW uint8, values index ModelInfo.class_names
    timings: Timings
    scores: np.ndarray | None = None  # optional HxW float32 confidence of the chosen class


@dataclass(frozen=True)
class PendingPrediction:
    """A prediction split at its model call, so that an evaluation can run the CPU work around it
    (resizing before, upsampling and counting after) for other images while the model runs.

    `infer()` is the model call (it releases the GIL); `finish(raw)` turns its output into the Prediction.
    Each is called once, `finish` after `infer`, possibly on different threads."""

    infer: Callable[[], Any]
    finish: Callable[[Any], Prediction]

    @classmethod
    def whole(cls, predict: Callable[[], Prediction]) -> PendingPrediction:
        """For a backend with no split: the whole prediction is the model call."""
        return cls(infer=predict, finish=_same_prediction)


def _same_prediction(raw: Any) -> Prediction:
    if not isinstance(raw, Prediction):
        raise TypeError(f"expected a Prediction, got {type(raw).__name__}")
    return raw


@runtime_checkable
class Segmenter(Protocol):
    """A loaded model. predict() may be called from several worker threads at once."""

    @property
    def info(self) -> ModelInfo: ...

    def predict(self, image: np.ndarray) -> Prediction:
        """image: HxWx3 RGB uint8. Returns labels at HxW."""
        ...

    # Optional, for backends whose model call can be separated from the CPU work around it:
    #     def begin(self, image: np.ndarray) -> PendingPrediction
    # (see begin_prediction in app.evaluation.predictors).

    def close(self) -> None:
        """Release sessions, files and connections. Idempotent."""
        ...
