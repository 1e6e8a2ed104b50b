"""The evaluation as it runs on a worker thread for the main controller (no widgets touched here).

The other worker-side functions are Qt-free and live below: `app.evaluation.frames.render_frame`,
`app.core.io.image_table.thumbnail`."""

from __future__ import annotations

import dataclasses
import threading
from typing import Protocol

from app.controllers.workers import JobContext
from app.evaluation.engine import Evaluator
from app.evaluation.results import EvaluationResult, SampleOutcome


class OutcomeSink(Protocol):
    """Where per-image outcomes go (a Qt signal emitted from the worker, delivered queued)."""

    def emit(self, generation: int, outcome: SampleOutcome) -> None: ...


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
