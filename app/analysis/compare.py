"""One entry point per image and one per dataset for the evaluation service: everything issue 19 adds to
a comparison of models on one image set, collected as images finish (from any thread).

Per image: `analyze_image(key, gt_ids, predictions, scheme, instances=..., scores=...)` (id-space maps, the
same the confusion matrices count) -> ImageAnalysis. Per dataset: a `ComparisonCollector` takes each
ImageAnalysis; `collector.result(counts_a, counts_b, ...)` adds the paired bootstrap from the per-image
matrices the evaluation already keeps and gives a Comparison whose `to_dict()` is the JSON sections.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from app.analysis.bootstrap import DEFAULT_RESAMPLES, PairedBootstrap, paired_bootstrap, paired_by_key
from app.analysis.boundary import (
    BoundaryCounts,
    BoundaryScores,
    boundary_counts_many,
    boundary_scores,
    mean_image_scores,
    sum_counts,
)
from app.analysis.boundary_bootstrap import BoundaryBootstrap, paired_boundary_bootstrap
from app.analysis.instances import (
    DEFAULT_THRESHOLD,
    InstanceRecall,
    MissedObjects,
    compare_instances,
    instance_recalls,
)
from app.analysis.label_errors import DEFAULT_LIMIT, LabelErrorRegion, find_label_errors, rank_label_errors
from app.core.domain.labels import EvalScheme
from app.core.domain.metrics import SparseCounts


@dataclass(frozen=True)
class ImageAnalysis:
    """What one image adds: boundary counts per model; with two models, their shared disagreements with
    the ground truth; with instanceIds, every instance's recall per model."""

    key: str
    boundary: tuple[BoundaryCounts, ...]  # per model
    label_errors: tuple[LabelErrorRegion, ...]  # models 0 and 1; () with one model
    instances: tuple[InstanceRecall, ...]  # () without instanceIds or outside the Cityscapes id space

    def to_dict(self, scheme: EvalScheme, threshold: float = DEFAULT_THRESHOLD) -> dict[str, object]:
        """The image's row for per-image JSON and the image table: per model (in order) the mean Boundary IoU
        and BF of this image and the instances missed; the label-error regions found here."""
        scores = [boundary_scores(counts, scheme) for counts in self.boundary]
        models = range(len(self.boundary))
        return {
            "key": self.key,
            "boundary_iou": [_num(s.mean_boundary_iou) for s in scores],
            "bf": [_num(s.mean_bf) for s in scores],
            "instances": len(self.instances),
            "instances_missed": [sum(r.recall[m] < threshold for r in self.instances) for m in models],
            "label_errors": len(self.label_errors),
            "label_error_pixels": sum(r.area for r in self.label_errors),
        }


def analyze_image(
    key: str,
    gt_ids: np.ndarray,
    predictions: Sequence[np.ndarray],
    scheme: EvalScheme,
    *,
    instances: np.ndarray | None = None,
    scores: Sequence[np.ndarray | None] | None = None,
    width: int | None = None,
    tolerance: int | None = None,
) -> ImageAnalysis:
    """Analyze one image: GT and predictions in the scheme's id space (uint8, GT resolution), optional
    instanceIds and per-model confidence maps. Boundary width and tolerance default from the image size."""
    boundary = boundary_counts_many(gt_ids, predictions, scheme, width=width, tolerance=tolerance)
    errors: tuple[LabelErrorRegion, ...] = ()
    if len(predictions) >= 2:
        pair = (None, None) if scores is None else (scores[0], scores[1])
        errors = find_label_errors(gt_ids, predictions[0], predictions[1], scheme, key=key, scores=pair)
    recalls: tuple[InstanceRecall, ...] = ()
    if instances is not None and scheme.is_cityscapes:
        recalls = instance_recalls(instances, predictions, scheme, key=key)
    return ImageAnalysis(key, boundary, errors, recalls)


@dataclass(frozen=True, eq=False)
class Comparison:
    """The dataset-level results; `to_dict()` gives the JSON sections (see its docstring)."""

    models: tuple[str, ...]
    scheme: str
    images: int  # images analyzed
    boundary: tuple[BoundaryScores | None, ...]  # per model, pooled over the images
    mean_image_boundary: tuple[tuple[float, float], ...]  # per model: (Boundary IoU, BF) averaged by image
    bootstrap: PairedBootstrap | None  # models 0 -> 1; None with one model
    boundary_bootstrap: BoundaryBootstrap | None  # Boundary IoU, models 0 -> 1, over the analyzed images
    unpaired_images: int  # images one of the two models has no matrix for (left out of the bootstrap)
    label_errors: tuple[LabelErrorRegion, ...]
    missed: MissedObjects | None

    def to_dict(self) -> dict[str, object]:
        """`{"comparison": bootstrap | null, "boundary": {model: {...}}, "label_errors": [...],
        "missed_objects": {...} | null}`; per model `boundary_iou` is the mean over classes; the
        comparison holds the Boundary IoU bootstrap under "boundary"."""
        boundary: dict[str, object] = {}
        for name, scores, (biou, bf) in zip(
            self.models, self.boundary, self.mean_image_boundary, strict=True
        ):
            if scores is not None:
                boundary[name] = {
                    **scores.to_dict(),
                    "mean_image_boundary_iou": _num(biou),
                    "mean_image_bf": _num(bf),
                }
        comparison: dict[str, object] | None = None
        if self.bootstrap is not None:
            comparison = {**self.bootstrap.to_dict(), "unpaired_images": self.unpaired_images}
            if self.boundary_bootstrap is not None:
                comparison["boundary"] = self.boundary_bootstrap.to_dict()
        return {
            "comparison": comparison,
            "boundary": boundary,
            "label_errors": [r.to_dict() for r in self.label_errors],
            "missed_objects": None if self.missed is None else self.missed.to_dict(),
        }


@dataclass
class ComparisonCollector:
    """Collects ImageAnalysis results of one run (thread-safe); memory stays bounded: label errors are cut
    to the `limit` largest as they come."""

    scheme: EvalScheme
    models: tuple[str, ...]
    limit: int = DEFAULT_LIMIT
    _boundary: dict[str, tuple[BoundaryCounts, ...]] = field(default_factory=dict)
    _errors: list[LabelErrorRegion] = field(default_factory=list)
    _instances: list[InstanceRecall] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, analysis: ImageAnalysis) -> None:
        """Take one image's results (an image added twice replaces its boundary counts)."""
        if len(analysis.boundary) != len(self.models):
            raise ValueError(
                f"{analysis.key}: {len(analysis.boundary)} models analyzed, expected {len(self.models)}"
            )
        with self._lock:
            self._boundary[analysis.key] = analysis.boundary
            self._errors.extend(analysis.label_errors)
            if len(self._errors) > 2 * self.limit:
                self._errors = list(rank_label_errors(self._errors, self.limit))
            self._instances.extend(analysis.instances)

    def result(
        self,
        counts: Sequence[Mapping[str, SparseCounts | None]] = (),
        *,
        resamples: int = DEFAULT_RESAMPLES,
        seed: int = 0,
        confidence: float = 0.95,
    ) -> Comparison:
        """The dataset results; `counts` are the per-image matrices by image key of models 0 and 1 (the
        evaluation's ImageEval.counts) for the paired bootstrap of model 1 − model 0."""
        with self._lock:
            per_image = [self._boundary[k] for k in sorted(self._boundary)]
            errors, instances = list(self._errors), list(self._instances)
        boundary, mean_image = [], []
        for m in range(len(self.models)):
            items = [row[m] for row in per_image]
            total = sum_counts(items)
            boundary.append(None if total is None else boundary_scores(total, self.scheme))
            mean_image.append(mean_image_scores(items, self.scheme))
        bootstrap, unpaired = None, 0
        if len(counts) >= 2:
            keys, left, right = paired_by_key(counts[0], counts[1])
            unpaired = len(counts[0].keys() | counts[1].keys()) - len(keys)
            bootstrap = paired_bootstrap(
                left, right, self.scheme, names=(self.models[0], self.models[1]),
                resamples=resamples, seed=seed, confidence=confidence,
            )  # fmt: skip
        boundary_bootstrap = None
        if len(self.models) >= 2 and per_image:
            boundary_bootstrap = paired_boundary_bootstrap(
                [row[0] for row in per_image], [row[1] for row in per_image], self.scheme,
                names=(self.models[0], self.models[1]), resamples=resamples, seed=seed, confidence=confidence,
            )  # fmt: skip
        missed = None
        if instances and len(self.models) >= 2:
            missed = compare_instances(instances, self.scheme, models=(self.models[0], self.models[1]))
        return Comparison(
            models=self.models,
            scheme=self.scheme.key,
            images=len(per_image),
            boundary=tuple(boundary),
            mean_image_boundary=tuple(mean_image),
            bootstrap=bootstrap,
            boundary_bootstrap=boundary_bootstrap,
            unpaired_images=unpaired,
            label_errors=rank_label_errors(errors, self.limit),
            missed=missed,
        )


def _num(value: float) -> float | None:
    return None if value != value else float(value)
