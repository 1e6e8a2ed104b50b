"""What an evaluation produces: per image, per model, per run. Frozen once a run ends; `ModelAccumulator`
is the one mutable piece, growing image by image while a run streams (the window shows it live).

A result always carries what it was computed on: the scheme, the ground truth (original or edited labels)
and the images it could not use, with the reason for each.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

import numpy as np

from app.core.domain.errors import PredictError
from app.core.domain.labels import ClassMapping, EvalScheme
from app.core.domain.metrics import (
    InstanceCounts,
    Scores,
    SparseCounts,
    compute_scores,
    confusion,
    instance_counts,
)
from app.core.io.datasets import Dataset, Sample, SampleRef
from app.evaluation.predictors import SamplePredictor, sample_shape

if TYPE_CHECKING:
    from app.analysis.compare import Comparison, ImageAnalysis
from app.inference.base import ModelInfo, Prediction, Timings


@dataclass(frozen=True)
class ImageEval:
    """One model on one image. Without ground truth only the timings are known."""

    key: str
    counts: SparseCounts | None  # id-space confusion (n, n + 1), stored sparse
    instances: InstanceCounts | None
    iou: np.ndarray | None  # (K,) per evaluated class, NaN where undefined
    miou: float
    pixel_accuracy: float
    timings: Timings

    @property
    def matrix(self) -> np.ndarray | None:
        """The id-space confusion matrix (n, n + 1) int64, or None without ground truth."""
        return None if self.counts is None else self.counts.dense()

    @property
    def evaluated(self) -> bool:
        """Whether there was ground truth to count against."""
        return self.counts is not None


def evaluate_sample(
    sample: Sample, predictor: SamplePredictor, mapping: ClassMapping, scheme: EvalScheme
) -> tuple[ImageEval, np.ndarray]:
    """Predict one sample and count it. Returns the evaluation and the prediction in the id space."""
    return count_prediction(sample, predictor.predict_sample(sample), predictor.info.name, mapping, scheme)


def count_prediction(
    sample: Sample, prediction: Prediction, model_name: str, mapping: ClassMapping, scheme: EvalScheme
) -> tuple[ImageEval, np.ndarray]:
    """Count one prediction of `sample` against its ground truth; also returns it in the id space."""
    height, width = sample_shape(sample)
    if prediction.labels.shape != (height, width):
        raise PredictError(
            f"{model_name}: mask is {prediction.labels.shape[1]}x{prediction.labels.shape[0]}, "
            f"image is {width}x{height}"
        )
    ids = mapping.apply(prediction.labels)
    if sample.gt is None:
        nan = float("nan")
        return ImageEval(sample.ref.key, None, None, None, nan, nan, prediction.timings), ids
    matrix = confusion(sample.gt, ids, scheme.id_space.num_classes)
    instances = None
    if sample.instances is not None and scheme.is_cityscapes:
        instances = instance_counts(sample.instances, ids)
    scores = compute_scores(matrix, scheme, None)
    result = ImageEval(
        sample.ref.key,
        SparseCounts.from_dense(matrix),
        instances,
        scores.iou,
        scores.miou,
        scores.pixel_accuracy,
        prediction.timings,
    )
    return result, ids


@dataclass(frozen=True)
class Latency:
    """Per-image latency of a model (pre + inference + post, ms) over the images it predicted."""

    p50: float | None
    p95: float | None
    p99: float | None
    mean: float | None

    @staticmethod
    def of(values_ms: Iterable[float]) -> Latency:
        values = np.sort(np.fromiter(values_ms, dtype=np.float64))  # any completion order: same mean bits
        if values.size == 0:
            return Latency(None, None, None, None)
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return Latency(float(p50), float(p95), float(p99), float(values.mean()))

    def to_dict(self) -> dict[str, float | None]:
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99, "mean": self.mean}


@dataclass(frozen=True)
class CacheStats:
    """Prediction-cache use of one model in one run."""

    hits: int
    misses: int


@dataclass(frozen=True)
class ModelResult:
    """Everything measured about one model in a finished (or cancelled) run."""

    info: ModelInfo
    mapping: ClassMapping
    scheme: EvalScheme
    images: Mapping[str, ImageEval]  # in dataset order
    errors: Mapping[str, str]  # image key -> why this model has no result for it
    scores: Scores
    latency: Latency
    matrix: np.ndarray  # id-space confusion (n, n + 1) int64 summed over the images: exact integers
    memory_bytes: int | None = None  # resident-memory growth when the model was opened
    cache: CacheStats | None = None

    @property
    def images_evaluated(self) -> int:
        """Images counted against ground truth."""
        return sum(1 for r in self.images.values() if r.evaluated)

    @property
    def miou(self) -> float:
        return self.scores.miou


class ModelAccumulator:
    """One model's results so far; grows image by image (from any order of completion)."""

    def __init__(self, info: ModelInfo, mapping: ClassMapping, scheme: EvalScheme) -> None:
        self.info = info
        self.mapping = mapping
        self.scheme = scheme
        self.images: dict[str, ImageEval] = {}
        self.errors: dict[str, str] = {}
        n = scheme.id_space.num_classes
        self.matrix = np.zeros((n, n + 1), dtype=np.int64)
        self.has_instances = False  # iIoU is 'not available' (NaN), not 0, without instanceIds files

    def add(self, result: ImageEval) -> None:
        self.images[result.key] = result
        if result.counts is not None:
            result.counts.add_to(self.matrix)
        if result.instances is not None:
            self.has_instances = True

    def replace(self, result: ImageEval) -> bool:
        """Put a re-scored image in place of its earlier score (its labels were edited) and recompute the
        sums from the per-image counts; False (nothing changed) when the image was not scored yet."""
        if result.key not in self.images:
            return False
        self.images[result.key] = result
        self.matrix[:] = 0
        self.has_instances = False
        for image in self.images.values():
            if image.counts is not None:
                image.counts.add_to(self.matrix)
            if image.instances is not None:
                self.has_instances = True
        return True

    def scores(self) -> Scores:
        # Instance weights are floats: sum them in a fixed (key) order, not in the order images finished,
        # so iIoU is identical from run to run.
        instances = None
        if self.has_instances:
            instances = InstanceCounts.zeros()
            for key in sorted(self.images):
                counts = self.images[key].instances
                if counts is not None:
                    instances = instances + counts
        return compute_scores(self.matrix, self.scheme, instances)

    def latency(self) -> Latency:
        return Latency.of(r.timings.total_ms for r in self.images.values())

    def freeze(
        self,
        order: Iterable[str] = (),
        *,
        memory_bytes: int | None = None,
        cache: CacheStats | None = None,
    ) -> ModelResult:
        """The frozen result; images listed in `order` (the dataset's) first, any others after."""
        ordered = {key: self.images[key] for key in order if key in self.images}
        ordered.update(self.images)
        return ModelResult(
            info=self.info,
            mapping=self.mapping,
            scheme=self.scheme,
            images=MappingProxyType(ordered),
            errors=MappingProxyType(dict(self.errors)),
            scores=self.scores(),
            latency=self.latency(),
            matrix=self.matrix.copy(),
            memory_bytes=memory_bytes,
            cache=cache,
        )


@dataclass(frozen=True)
class SampleOutcome:
    """What `on_image` receives for each finished image (predictions in the id space, for display)."""

    index: int
    ref: SampleRef
    evals: tuple[ImageEval | None, ...]
    predictions: tuple[np.ndarray | None, ...]
    errors: tuple[str | None, ...]
    sample_error: str | None
    analysis: ImageAnalysis | None = None  # boundary, label errors, instance recalls (when asked)


GroundTruthKind = Literal["original", "edited"]


@dataclass(frozen=True)
class GroundTruth:
    """Which labels a run counted against: the dataset's files, or those with a project's edits."""

    kind: GroundTruthKind = "original"
    project: Path | None = None  # the project whose edits were used (kind "edited")
    edited_images: int = 0  # how many of the run's images had an edited label

    def describe(self) -> str:
        if self.kind == "original":
            return "original labels"
        return f"edited labels ({self.edited_images} images edited, project {self.project})"


@dataclass(frozen=True)
class Skipped:
    """An image (or one model's prediction of it) that no number includes, and why."""

    key: str
    reason: str
    model: str | None = None  # None: the image itself could not be used


@dataclass(frozen=True)
class EvaluationResult:
    """A finished (or cancelled) evaluation of one or more models on one dataset."""

    dataset: Dataset
    scheme: EvalScheme
    models: tuple[ModelResult, ...]
    sample_errors: Mapping[str, str] = field(default_factory=dict)
    images_total: int = 0
    cancelled: bool = False
    wall_s: float = 0.0
    ground_truth: GroundTruth = GroundTruth()
    engine: str = "local"
    write_errors: tuple[str, ...] = ()  # saved-prediction files that could not be written, each named
    analysis: Comparison | None = None  # B vs A statistics (bootstrap; boundary etc. when analyzed)

    @property
    def images_done(self) -> int:
        return max((len(m.images) + len(m.errors) for m in self.models), default=0)

    def skipped(self) -> list[Skipped]:
        """Every image or prediction left out of the numbers, in dataset order."""
        out = [Skipped(key, reason) for key, reason in self.sample_errors.items()]
        for model in self.models:
            out += [Skipped(key, reason, model.info.name) for key, reason in model.errors.items()]
        return out

    def basis(self) -> str:
        """One line saying what the numbers were computed on (for every place they are shown)."""
        skipped = len(self.skipped())
        text = f"scheme {self.scheme.key}, {self.ground_truth.describe()}, {self.images_done} images"
        if skipped:
            text += f", {skipped} skipped"
        if self.cancelled:
            text += f", cancelled after {self.images_done} of {self.images_total}"
        return text

    def unlabelled(self) -> dict[str, str]:
        """Images predicted but not scored, and why they have no ground truth."""
        missing = self.dataset.missing_labels()
        keys: dict[str, str] = {}
        for model in self.models:
            for key, r in model.images.items():
                if not r.evaluated:
                    keys[key] = missing.get(key, "no ground truth")
        return keys


def nan_to_none(value: float) -> float | None:
    """JSON has no NaN: undefined numbers are written as null."""
    return None if math.isnan(value) else value
