"""Checks on what a model returned, before it is turned into labels and counted.

A NaN score loses every comparison, so argmax calls a NaN map class 0 and the image is scored as if the
model had predicted it; a labels output of 300 or -1 wraps to 44 or 255 on the way to uint8. Both give a
confident wrong number. These checks make that image x model an error with a message instead (the run goes
on with the next image). They run on the low-resolution output, before upsampling: np.isfinite over a
(K, h, w) float map, or min/max over a label map, costs little next to the model.
"""

from __future__ import annotations

import numpy as np

from app.core.domain.errors import PredictError


def check_scores(scores: np.ndarray, model: str) -> None:
    """PredictError naming `model` when class scores hold NaN or +-Inf (how many values, of how many)."""
    if scores.dtype.kind not in "fc":
        return
    finite = np.isfinite(scores)
    if finite.all():
        return
    bad = int(finite.size - np.count_nonzero(finite))
    raise PredictError(
        f"{model}: the model's class scores hold {bad} of {finite.size} values that are NaN or infinite "
        f"(output shape {tuple(scores.shape)}); this image is not scored"
    )


def check_labels(labels: np.ndarray, num_classes: int, model: str) -> np.ndarray:
    """`labels` as uint8 after checking every value is a class index 0..num_classes-1; otherwise
    PredictError naming `model` and how many pixels are outside."""
    if labels.size == 0:
        return labels.astype(np.uint8)
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all():
            bad = int(labels.size - np.count_nonzero(np.isfinite(labels)))
            raise PredictError(f"{model}: the labels output holds {bad} NaN or infinite pixels; not scored")
        if not np.array_equal(labels, np.rint(labels)):
            raise PredictError(f"{model}: the labels output holds fractional values; not scored")
    low, high = labels.min(), labels.max()
    if low >= 0 and high < num_classes:
        return labels.astype(np.uint8, copy=False)
    outside = (labels < 0) | (labels >= num_classes)
    bad = int(np.count_nonzero(outside))
    raise PredictError(
        f"{model}: the labels output holds values {low:g}..{high:g} but the model has {num_classes} classes "
        f"(0..{num_classes - 1}); {bad} of {labels.size} output pixels are outside; this image is not scored"
    )
