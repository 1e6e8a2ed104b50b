"""Functions that run on worker threads for the main controller (no widgets touched here)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from app.controllers.workers import JobContext
from app.core.datasets import Dataset, SampleRef
from app.core.labels import ClassMapping, EvalScheme
from app.evaluation.engine import Evaluator
from app.evaluation.frames import Frame, Highlight, compose_frame, render_layers
from app.evaluation.predictors import SamplePredictor
from app.evaluation.results import EvaluationResult, ImageEval, SampleOutcome


class OutcomeSink(Protocol):
    """Where per-image outcomes go (a Qt signal emitted from the worker, delivered queued)."""

    def emit(self, generation: int, outcome: SampleOutcome) -> None: ...


def short_name(ref: SampleRef) -> str:
    """The frame name as the user knows the file: with its city ("aachen_000000_000019"; frames of
    different cities share their numbers), the city prefixed when the file name lacks it."""
    if ref.city and not ref.frame.startswith(f"{ref.city}_"):
        return f"{ref.city}/{ref.frame}"
    return ref.frame


def run_evaluation(
    ctx: JobContext,
    evaluator: Evaluator,
    cancel: threading.Event,
    bridge: OutcomeSink,
    generation: int,
) -> EvaluationResult:
    """The window's evaluation on a worker: per-image outcomes go to the GUI thread as they finish (the
    predictions themselves land in the prediction store, through the cached predictors)."""
    total = len(evaluator.dataset)
    done = 0

    def on_image(outcome: SampleOutcome) -> None:
        nonlocal done
        done += 1
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
    known: Sequence[Mapping[str, ImageEval] | None],
    slots: list[int],
    mode: str = "classes",
    highlight: Highlight | None = None,
    hidden: frozenset[int] = frozenset(),
    with_gt: bool = True,
    styles: tuple[str, str, str] | None = None,
    palette: str = "cityscapes",
    cached_only: bool = False,
) -> tuple[Frame, np.ndarray, list[np.ndarray | None], str] | None:
    """Worker side of showing one image: the frame, its RGBA layers (GT, A, B; `styles` per panel) and a
    one-line summary. With `cached_only`, None when a prediction would have to be made."""
    frame = compose_frame(dataset, ref, predictors, mappings, scheme, known, cached_only=cached_only)
    if frame is None:
        return None
    frame = dataclasses.replace(frame, slots=tuple(slots))
    masks, summary = render_layers(frame, scheme, slots, mode, highlight, hidden, with_gt, styles, palette)
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
