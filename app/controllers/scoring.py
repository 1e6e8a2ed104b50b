"""What the window says about the scores, assembled from the live accumulators (no widgets touched): the
metrics panel's summaries, the verdict line with its basis, and the re-scoring of one edited image (run
on a worker)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from types import MappingProxyType

import numpy as np

from app.analysis.bootstrap import PairedBootstrap
from app.core.domain.errors import SegLensError
from app.core.domain.labels import ClassMapping, ClassScheme, EvalScheme
from app.core.domain.metrics import Scores
from app.core.io.datasets import Dataset, SampleRef
from app.evaluation.compare import compare_models
from app.evaluation.predictors import SamplePredictor, SegmenterPredictor, mapping_for
from app.evaluation.results import (
    EvaluationResult,
    GroundTruth,
    ImageEval,
    ModelAccumulator,
    ModelResult,
    count_prediction,
)
from app.views.metrics_panel import ModelSummary

SLOTS = ("A", "B")


def snapshot(live: ModelAccumulator, scores: Scores | None = None) -> ModelResult:
    """A ModelResult view of the accumulator as it is now, for the verdict; nothing is copied (the
    per-image scores and the matrix are the live ones) and `scores`, if already computed, is reused."""
    return ModelResult(
        info=live.info,
        mapping=live.mapping,
        scheme=live.scheme,
        images=MappingProxyType(live.images),
        errors=MappingProxyType(live.errors),
        scores=live.scores() if scores is None else scores,
        latency=live.latency(),
        matrix=live.matrix,
    )


def summary_of(live: ModelAccumulator, scores: Scores | None = None) -> ModelSummary:
    """The numbers of one model so far, for the metrics panel."""
    scores = live.scores() if scores is None else scores
    latency = live.latency().p50
    return ModelSummary(
        name=live.info.name,
        miou=scores.miou,
        iiou=scores.miiou,
        category_miou=scores.mean_category_iou,
        pixel_accuracy=scores.pixel_accuracy,
        latency_ms=math.nan if latency is None else latency,
        images=len(live.images),
        class_iou=list(scores.iou),
        matrix=scores.matrix,
        per_class={
            "precision": list(scores.precision),
            "recall": list(scores.recall),
            "f1": list(scores.f1),
            "iiou": list(scores.iiou),
        },
        categories=dict(zip(scores.category_names, map(float, scores.category_iou), strict=True)),
    )


def live_basis(
    scheme: EvalScheme, truth: GroundTruth, live: Sequence[ModelAccumulator | None], total: int, running: bool
) -> str:
    """What the numbers on screen were computed on: scheme, ground truth, images (so far), skipped."""
    done = max((len(m.images) + len(m.errors) for m in live if m is not None), default=0)
    skipped = sum(len(m.errors) for m in live if m is not None)
    text = f"scheme {scheme.key}, {truth.describe()}, {done} of {total} images"
    if skipped:
        text += f", {skipped} skipped (see the log)"
    return text + (" — evaluating…" if running else "")


def verdict_line(
    live: Sequence[ModelAccumulator | None],
    refused: Sequence[str | None],
    basis: str,
    scores: Sequence[Scores | None] = (None, None),
    bootstrap: PairedBootstrap | None = None,
) -> str:
    """The window's verdict: who is better by how much and where B is worse, or why there is none.
    `scores`: the accumulators' scores when already computed (the metrics panel's); `bootstrap`: the
    finished run's paired bootstrap of B - A, whose 95 % interval the line then quotes."""
    a, b = live[0], live[1]
    notes = [f"{SLOTS[slot]} not scored: {reason}" for slot, reason in enumerate(refused) if reason]
    if a is not None and b is not None and a.images and b.images:
        comparison = compare_models(snapshot(a, scores[0]), snapshot(b, scores[1]), basis)
        if bootstrap is not None:
            delta = bootstrap.delta_miou
            interval = (delta.low * 100, delta.high * 100)
            comparison = dataclasses.replace(comparison, interval=interval, too_small=bootstrap.too_small)
        return "; ".join([comparison.one_line(), *notes])
    scored = [(SLOTS[slot], m, scores[slot]) for slot, m in enumerate(live) if m is not None and m.images]
    parts = [f"{slot} {m.info.name} mIoU {_pct((s or m.scores()).miou)}" for slot, m, s in scored]
    if not parts and not notes:
        return "No verdict yet: open a dataset and choose models A and B (every number says its basis)."
    return "; ".join(parts + notes) + (f" — {basis}" if parts else "")


def refusals(
    predictors: Sequence[SegmenterPredictor | None], scheme: EvalScheme, gt_scheme: ClassScheme
) -> list[str | None]:
    """Per slot: why `scheme` cannot score the model (None: it can, or there is no model)."""
    reasons: list[str | None] = []
    for predictor in predictors:
        reason = None
        if predictor is not None:
            try:
                scheme.check_model(mapping_for(predictor.info, gt_scheme), predictor.info.name)
            except SegLensError as exc:
                reason = str(exc)
        reasons.append(reason)
    return reasons


def finished_message(result: EvaluationResult) -> str:
    """The status line of a finished evaluation, with its basis."""
    parts = [f"{m.info.name} mIoU {m.scores.miou * 100:.1f}" for m in result.models if m.images]
    text = f"Evaluated {result.images_done} images in {result.wall_s:.1f} s" + (
        f": {', '.join(parts)} ({result.basis()})" if parts else ""
    )
    errors = len(result.skipped())
    return text + (f" ({errors} problems, see the log)" if errors else "")


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{value * 100:.1f}"


def rescore_image(
    dataset: Dataset,
    ref: SampleRef,
    labels: np.ndarray,
    predictors: Sequence[SamplePredictor],
    mappings: Sequence[ClassMapping],
    scheme: EvalScheme,
) -> list[ImageEval | None]:
    """Score each model's prediction of `ref` against edited `labels` (a copy, in the dataset's id space).
    Predictions come from the store (no inference when the evaluation made them); None where a model has
    no prediction or fails."""
    sample = dataclasses.replace(dataset.load(ref), gt=labels)
    out: list[ImageEval | None] = []
    for predictor, mapping in zip(predictors, mappings, strict=True):
        try:
            image_eval, _ = count_prediction(
                sample, predictor.predict_sample(sample), predictor.info.name, mapping, scheme
            )
        except SegLensError:
            image_eval = None
        out.append(image_eval)
    return out
