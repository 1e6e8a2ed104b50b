"""What the compare view shows for one image: the image, GT and each model's mask as evaluated classes.

Runs on a worker thread. Predictions come from the shared cache when the evaluation already made them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.core.datasets import Dataset, SampleRef
from app.core.errors import SegLensError
from app.core.labels import ClassMapping, EvalScheme
from app.core.lru import LruCache
from app.inference.evaluate import ImageEval, SamplePredictor, evaluate_sample

PredictionCache = LruCache[tuple[np.ndarray, ImageEval]]


@dataclass(frozen=True)
class Frame:
    """One image ready to display; class maps hold evaluated-class indices (IGNORE = not evaluated)."""

    ref: SampleRef
    image: np.ndarray
    gt_class: np.ndarray | None
    pred_class: tuple[np.ndarray | None, ...]
    evals: tuple[ImageEval | None, ...]
    errors: tuple[str | None, ...]
    warnings: tuple[str, ...]


def cache_key(predictor: SamplePredictor, scheme: EvalScheme, ref: SampleRef) -> tuple[str, str, str, str]:
    """Predictions depend on the model file, the image and the scheme they were counted in."""
    info = predictor.info
    return (info.digest or info.source, info.name, scheme.key, ref.key)


def compose_frame(
    dataset: Dataset,
    ref: SampleRef,
    predictors: Sequence[SamplePredictor],
    mappings: Sequence[ClassMapping],
    scheme: EvalScheme,
    cache: PredictionCache,
) -> Frame:
    """Load `ref`, take each model's prediction from `cache` or compute it, map all to evaluated classes."""
    sample = dataset.load(ref)
    to_class = scheme.id_to_class()
    preds: list[np.ndarray | None] = []
    evals: list[ImageEval | None] = []
    errors: list[str | None] = []
    for predictor, mapping in zip(predictors, mappings, strict=True):
        key = cache_key(predictor, scheme, ref)
        hit = cache.get(key)
        if hit is None:
            try:
                image_eval, ids = evaluate_sample(sample, predictor, mapping, scheme)
            except SegLensError as exc:
                preds.append(None)
                evals.append(None)
                errors.append(str(exc))
                continue
            hit = (ids, image_eval)
            cache.put(key, hit)
        preds.append(to_class[hit[0]])
        evals.append(hit[1])
        errors.append(None)
    gt_class = to_class[sample.gt] if sample.gt is not None else None
    return Frame(ref, sample.image, gt_class, tuple(preds), tuple(evals), tuple(errors), sample.warnings)
