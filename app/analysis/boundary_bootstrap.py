"""Paired bootstrap of the Boundary IoU difference B − A: "is B better at object borders?" with an
interval, from the additive per-image boundary counts exactly as the mIoU bootstrap uses per-image
confusion matrices (same resampling stream: the same seed draws the same image sets)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.analysis.bootstrap import (
    DEFAULT_RESAMPLES,
    MIN_IMAGES,
    MIN_RESAMPLES,
    Interval,
    class_mean,
    percentile_interval,
    resample_sums,
)
from app.analysis.boundary import BoundaryCounts
from app.core.domain.labels import EvalScheme


@dataclass(frozen=True)
class BoundaryBootstrap:
    """B − A of the pooled Boundary IoU (mean over classes) and per class, with percentile intervals."""

    baseline: str
    candidate: str
    images: int
    resamples: int
    seed: int
    class_names: tuple[str, ...]
    delta_boundary_iou: Interval
    classes: tuple[Interval, ...]
    too_small: bool

    def to_dict(self) -> dict[str, object]:
        """`{"delta_boundary_iou": {"value", "ci95"}, "classes": {name: {"value", "ci95"}}, ...}`."""
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "images": self.images,
            "resamples": self.resamples,
            "seed": self.seed,
            "delta_boundary_iou": self.delta_boundary_iou.to_dict(),
            "classes": {n: c.to_dict() for n, c in zip(self.class_names, self.classes, strict=True)},
            "too_small": self.too_small,
        }


def paired_boundary_bootstrap(
    counts_a: Sequence[BoundaryCounts],
    counts_b: Sequence[BoundaryCounts],
    scheme: EvalScheme,
    *,
    names: tuple[str, str] = ("A", "B"),
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
) -> BoundaryBootstrap:
    """Paired bootstrap of Boundary IoU from per-image counts of the same images, in the same order."""
    if len(counts_a) != len(counts_b):
        raise ValueError(f"paired bootstrap needs the same images: {len(counts_a)} vs {len(counts_b)}")
    if resamples < MIN_RESAMPLES:
        raise ValueError(f"at least {MIN_RESAMPLES} resamples are needed, got {resamples}")
    k = scheme.num_classes
    table = np.array(
        [
            np.concatenate([a.biou_inter, a.biou_union, b.biou_inter, b.biou_union])
            for a, b in zip(counts_a, counts_b, strict=True)
        ],
        dtype=np.float64,
    ).reshape(len(counts_a), 4 * k)
    sums = resample_sums(table, resamples, seed)
    # The point values from the plain totals: the same ratios boundary_scores takes of sum_counts.
    point = _ious(table.sum(axis=0, keepdims=True), k)
    resampled = _ious(sums, k)
    deltas = class_mean(resampled[1]) - class_mean(resampled[0])
    value = float(class_mean(point[1])[0] - class_mean(point[0])[0])
    class_deltas = resampled[1] - resampled[0]
    classes = tuple(
        percentile_interval(float(point[1][0, c] - point[0][0, c]), class_deltas[:, c], confidence)
        for c in range(k)
    )
    return BoundaryBootstrap(
        baseline=names[0],
        candidate=names[1],
        images=len(counts_a),
        resamples=resamples,
        seed=seed,
        class_names=scheme.names,
        delta_boundary_iou=percentile_interval(value, deltas, confidence),
        classes=classes,
        too_small=len(counts_a) < MIN_IMAGES,
    )


def _ious(sums: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class Boundary IoU of A and of B from rows of inter A | union A | inter B | union B."""
    out = []
    for start in (0, 2 * k):
        iou = np.full((sums.shape[0], k), np.nan)
        np.divide(sums[:, start : start + k], sums[:, start + k : start + 2 * k], out=iou,
                  where=sums[:, start + k : start + 2 * k] > 0)  # fmt: skip
        out.append(iou)
    return out[0], out[1]
