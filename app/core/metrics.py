"""Confusion matrices and the official Cityscapes scores (evalPixelLevelSemanticLabeling, 2.3.0).

STUB: signatures fixed; a helper implements them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.core.labels import EvalScheme


def confusion(gt: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """Confusion matrix of one image in the id space: shape (n, n + 1) int64, rows = GT id, cols = predicted id.

    GT values >= n are not counted; predicted values >= n are counted in column n ('outside').
    For Cityscapes (n = 34) rows/cols 0..33 equal the official confMatrix.
    """
    raise NotImplementedError


@dataclass(frozen=True)
class InstanceCounts:
    """Per-image instance statistics for iIoU: weighted and raw TP/FN per instance class and category."""

    class_tp_w: np.ndarray  # (num instance classes,) float64, in INSTANCE_CLASS_IDS order
    class_fn_w: np.ndarray
    class_tp: np.ndarray  # int64
    class_fn: np.ndarray
    cat_tp_w: np.ndarray  # (num instance categories,) float64, in INSTANCE_CATEGORIES order
    cat_fn_w: np.ndarray
    cat_tp: np.ndarray
    cat_fn: np.ndarray

    def __add__(self, other: InstanceCounts) -> InstanceCounts:
        raise NotImplementedError

    @staticmethod
    def zeros() -> InstanceCounts:
        raise NotImplementedError


def instance_counts(instances: np.ndarray, pred_ids: np.ndarray) -> InstanceCounts:
    """Official instance statistics of one image: `instances` the instanceIds map (int32), `pred_ids` the
    prediction in labelIds. Only instances with id > 1000 of non-ignored instance classes count."""
    raise NotImplementedError


@dataclass(frozen=True)
class Scores:
    """Scores of one image or a whole dataset under one EvalScheme. NaN where undefined."""

    class_names: tuple[str, ...]
    iou: np.ndarray  # (K,) float64
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    iiou: np.ndarray  # (K,) NaN for classes without instances
    miou: float  # mean over non-NaN iou
    miiou: float
    pixel_accuracy: float
    category_names: tuple[str, ...]  # Cityscapes only, else ()
    category_iou: np.ndarray  # (C,)
    category_iiou: np.ndarray
    mean_category_iou: float
    mean_category_iiou: float
    matrix: np.ndarray  # (K, K + 1) int64 aggregated to the evaluated classes; col K = not an evaluated class

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict keyed by class name (NaN -> None)."""
        raise NotImplementedError


def compute_scores(matrix: np.ndarray, scheme: EvalScheme, inst: InstanceCounts | None = None) -> Scores:
    """Scores from an id-space confusion matrix (n, n + 1) and optional instance counts."""
    raise NotImplementedError
