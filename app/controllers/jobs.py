"""Functions that run on worker threads for the main controller (no widgets touched here)."""

from __future__ import annotations

import dataclasses
import threading
from typing import Protocol

import numpy as np

from app.controllers.workers import JobContext
from app.core.datasets import Dataset, SampleRef
from app.core.labels import ClassMapping, EvalScheme
from app.evaluation.engine import Evaluator
from app.evaluation.frames import Frame, Highlight, PredictionCache, cache_key, compose_frame, render_layers
from app.evaluation.predictors import SamplePredictor
from app.evaluation.results import EvaluationResult, SampleOutcome


class OutcomeSink(Protocol):
    """Where per-image outcomes go (a Qt signal emitted from the worker, delivered queued)."""

    def emit(self, generation: int, outcome: SampleOutcome) -> None: ...


def short_name(ref: SampleRef) -> str:
    """The frame without its city prefix (the city has its own column)."""
    if ref.city and ref.frame.startswith(f"{ref.city}_"):
        return ref.frame[len(ref.city) + 1 :]
    return ref.frame


def run_evaluation(
    ctx: JobContext,
    evaluator: Evaluator,
    cancel: threading.Event,
    bridge: OutcomeSink,
    generation: int,
    cache: PredictionCache,
) -> EvaluationResult:
    total = len(evaluator.dataset)
    done = 0

    def on_image(outcome: SampleOutcome) -> None:
        nonlocal done
        done += 1
        for predictor, ids, image_eval in zip(
            evaluator.predictors, outcome.predictions, outcome.evals, strict=False
        ):
            if ids is not None and image_eval is not None:
                cache.put(cache_key(predictor, evaluator.scheme, outcome.ref), (ids, image_eval))
        # The GUI needs the scores, not the pixels: queued signals must not hold masks while it is busy.
        bridge.emit(generation, dataclasses.replace(outcome, predictions=()))
        ctx.progress(done, total, outcome.ref.key)
        if ctx.cancelled:
            cancel.set()

    return evaluator.run(on_image=on_image, cancel=cancel)


def render_frame(
    dataset: Dataset,
    ref: SampleRef,
    predictors: list[SamplePredictor],
    mappings: list[ClassMapping],
    scheme: EvalScheme,
    cache: PredictionCache,
    slots: list[int],
    mode: str = "classes",
    highlight: Highlight | None = None,
    hidden: frozenset[int] = frozenset(),
    with_gt: bool = True,
    styles: tuple[str, str, str] | None = None,
    cached_only: bool = False,
) -> tuple[Frame, np.ndarray, list[np.ndarray | None], str] | None:
    """Worker side of showing one image: the frame, its RGBA layers (GT, A, B; `styles` per panel) and a
    one-line summary. With `cached_only`, None when a prediction would have to be made."""
    frame = compose_frame(dataset, ref, predictors, mappings, scheme, cache, cached_only=cached_only)
    if frame is None:
        return None
    masks, summary = render_layers(frame, scheme, slots, mode, highlight, hidden, with_gt, styles)
    return frame, frame.image, masks, summary


def thumbnail(path: object, size: tuple[int, int]) -> np.ndarray | None:
    """A small RGB copy of an image for the image table (PIL's draft/reduce keep this cheap); None for a
    file that cannot be read (the evaluation reports it properly; a thumbnail must not spam errors)."""
    from PIL import Image, UnidentifiedImageError

    try:
        source = Image.open(str(path))
    except (OSError, UnidentifiedImageError):
        return None
    with source:
        source.draft("RGB", size)  # JPEG decodes at a fraction of the size; a no-op for PNG
        try:
            small = source.convert("RGB")
        except OSError:
            return None
    small.thumbnail(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.ascontiguousarray(np.asarray(small))
