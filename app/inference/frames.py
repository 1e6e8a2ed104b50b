"""What the compare view shows for one image: the image, GT and each model's mask as evaluated classes.

Runs on a worker thread. Predictions come from the shared cache when the evaluation already made them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from app.core.datasets import Dataset, SampleRef
from app.core.errors import SegLensError
from app.core.labels import IGNORE, ClassMapping, EvalScheme
from app.core.lru import LruCache
from app.core.overlay import contours
from app.core.render import (
    DISAGREEMENT_COLORS,
    DISAGREEMENT_NAMES,
    ERROR_COLORS,
    counts,
    disagreement_map,
    error_map,
    mask_rgba,
    rgba_palette,
)
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


@dataclass(frozen=True)
class Highlight:
    """Confusion drill-down: in model `slot`'s panel show only pixels of GT class `gt` predicted as `pred`
    (`pred` equal to the number of classes means "not an evaluated class")."""

    slot: int
    gt: int
    pred: int


HIGHLIGHT_RGBA = np.array([255, 0, 255, 255], dtype=np.uint8)


def render_layers(
    frame: Frame,
    scheme: EvalScheme,
    slots: Sequence[int],
    mode: str = "classes",
    highlight: Highlight | None = None,
    hidden: Collection[int] = (),
    with_gt: bool = True,
) -> tuple[list[np.ndarray | None], str]:
    """RGBA layers for the GT, A and B panels, and a one-line summary (A vs B shares).

    mode: "classes" (class colours), "contours" (class outlines only), "errors" (right/wrong against GT)
    or "disagreement" (panel B shows A right & B wrong / B right & A wrong / both wrong). Classes in
    `hidden` are transparent in the class modes. A highlight replaces its model's layer.
    """
    class_lut = rgba_palette(scheme.colors, hidden=hidden)
    masks: list[np.ndarray | None] = [None, None, None]
    preds: list[np.ndarray | None] = [None, None]
    for slot, pred in zip(slots, frame.pred_class, strict=True):
        preds[slot] = pred
    gt = frame.gt_class
    outline = mode == "contours"
    if gt is not None and with_gt:  # the GT panel is often hidden: no layer to build then
        masks[0] = _class_layer(gt, class_lut, outline)
    summary = ""
    if mode in ("classes", "contours") or gt is None:
        for slot, pred in enumerate(preds):
            if pred is not None:
                masks[1 + slot] = _class_layer(pred, class_lut, outline)
    else:
        error_lut = rgba_palette(ERROR_COLORS, hidden=(0,))
        for slot, pred in enumerate(preds):
            if pred is not None:
                masks[1 + slot] = mask_rgba(error_map(gt, pred), error_lut)
        a, b = preds
        if mode == "disagreement" and a is not None and b is not None:
            codes = disagreement_map(gt, a, b)
            masks[2] = mask_rgba(codes, rgba_palette(DISAGREEMENT_COLORS, hidden=(0,)))
            n = counts(codes, len(DISAGREEMENT_NAMES))
            total = max(sum(n[1:]), 1)
            summary = "   ".join(
                f"{name}: {n[i] / total * 100:.1f}%" for i, name in enumerate(DISAGREEMENT_NAMES) if i > 1
            )
    if highlight is not None and gt is not None and preds[highlight.slot] is not None:
        masks[1 + highlight.slot], pixels = _highlight_layer(gt, preds[highlight.slot], highlight, scheme)
        summary = (
            f"{pixels} pixels of {_name(scheme, highlight.gt)} predicted as {_name(scheme, highlight.pred)}"
        )
    return masks, summary


def _class_layer(class_map: np.ndarray, lut: np.ndarray, outline: bool) -> np.ndarray:
    layer = mask_rgba(class_map, lut)
    if outline:
        layer[~contours(class_map), 3] = 0
    return layer


def _name(scheme: EvalScheme, value: int) -> str:
    return scheme.names[value] if value < scheme.num_classes else "not an evaluated class"


def _highlight_layer(
    gt: np.ndarray, pred: np.ndarray | None, highlight: Highlight, scheme: EvalScheme
) -> tuple[np.ndarray, int]:
    assert pred is not None
    # "Other" predictions are every value outside the evaluated classes (IGNORE in the class map).
    predicted = pred >= scheme.num_classes if highlight.pred >= scheme.num_classes else pred == highlight.pred
    selected = (gt == highlight.gt) & predicted & (gt != IGNORE)
    layer = np.zeros((*gt.shape, 4), dtype=np.uint8)
    layer[selected] = HIGHLIGHT_RGBA
    return layer, int(np.count_nonzero(selected))
