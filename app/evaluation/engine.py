"""Run predictors over a dataset: decode each image once, predict with every model, count pixels.

`Evaluator` holds what one run needs (dataset, predictors, scheme, mappings) and turns a stream of
per-image outcomes into an EvaluationResult; an engine produces that stream. The local engine is a
pipeline of threads; other engines (a Ray cluster) produce the same outcomes elsewhere, and the sums are
the same integers whatever the order.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from app.core.domain.errors import SegLensError
from app.core.domain.labels import EvalScheme
from app.core.io.datasets import Dataset, Sample, SampleRef
from app.core.io.imageio import write_label_png
from app.core.runtime.pipeline import Stage, run_pipeline
from app.core.storage.edited import EditedDataset
from app.evaluation.outputs import prediction_path
from app.evaluation.predictors import SamplePredictor, begin_prediction, mapping_for, needs_pixels
from app.evaluation.results import (
    CacheStats,
    EvaluationResult,
    GroundTruth,
    ImageEval,
    ModelAccumulator,
    SampleOutcome,
    count_prediction,
)
from app.inference.base import PendingPrediction, Prediction

if TYPE_CHECKING:
    from app.analysis.compare import ComparisonCollector, ImageAnalysis

ImageCallback = Callable[[SampleOutcome], None]

_IN_PROCESS = frozenset({"onnx", "keras", "hf", "files"})
"""Backends whose model call runs in this process (on all cores); the others are remote."""


class Engine(Protocol):
    """Produces one SampleOutcome per image of `refs`, in any order; stops early when `cancel` is set."""

    name: str

    def outcomes(
        self, evaluator: Evaluator, refs: Sequence[SampleRef], cancel: threading.Event | None
    ) -> Iterator[SampleOutcome]: ...


class Evaluator:
    """One evaluation's plan: these predictors, on this dataset, in this scheme. `workers`: threads of the
    decode and count stages, and the inference lanes of remote models (in-process models get one lane)."""

    def __init__(
        self,
        dataset: Dataset,
        predictors: Sequence[SamplePredictor],
        scheme: EvalScheme,
        *,
        workers: int = 2,
        save_predictions: Path | None = None,
        ground_truth: GroundTruth | None = None,
        engine: Engine | None = None,
        analyze: bool = False,
    ) -> None:
        self.dataset = dataset
        self.predictors = list(predictors)
        self.scheme = scheme
        self.workers = max(1, workers)
        self.save_predictions = save_predictions
        self.ground_truth = ground_truth or GroundTruth()
        self.engine: Engine = engine or LocalEngine()
        self.mappings = [mapping_for(p.info, dataset.gt_scheme) for p in self.predictors]
        for predictor, mapping in zip(self.predictors, self.mappings, strict=True):
            scheme.check_model(mapping, predictor.info.name)
        # Saved masks need only the image's size: the RGB pixels are not decoded for them.
        self.needs_pixels = any(needs_pixels(p) for p in self.predictors)
        self.write_errors: list[str] = []  # saved predictions that could not be written, each named
        # Per image: boundary quality, likely label errors, instance recalls (~80 ms at 1024x2048).
        self.analyze = analyze

    def accumulators(self) -> list[ModelAccumulator]:
        """Empty per-model accumulators for this plan (the window fills them live)."""
        return [
            ModelAccumulator(p.info, m, self.scheme)
            for p, m in zip(self.predictors, self.mappings, strict=True)
        ]

    def run(
        self,
        refs: Sequence[SampleRef] | None = None,
        on_image: ImageCallback | None = None,
        cancel: threading.Event | None = None,
        *,
        memory: Sequence[int | None] | None = None,
    ) -> EvaluationResult:
        """Evaluate `refs` (default: the whole dataset). Bad files are reported and skipped."""
        todo = list(self.dataset.refs if refs is None else refs)
        models = self.accumulators()
        sample_errors: dict[str, str] = {}
        collector = self._collector()
        start = time.perf_counter()
        for outcome in self.engine.outcomes(self, todo, cancel):
            record(models, sample_errors, outcome)
            if collector is not None and outcome.analysis is not None:
                collector.add(outcome.analysis)
            if on_image is not None:
                on_image(outcome)
        order = [ref.key for ref in todo]
        memory = list(memory) if memory is not None else [None] * len(models)
        analysis = None
        if collector is not None:
            counts = [{k: r.counts for k, r in m.images.items()} for m in models[:2]]
            analysis = collector.result(counts)
        return EvaluationResult(
            dataset=self.dataset,
            scheme=self.scheme,
            models=tuple(
                m.freeze(order, memory_bytes=mem, cache=_cache_stats(p))
                for m, mem, p in zip(models, memory, self.predictors, strict=True)
            ),
            sample_errors={k: sample_errors[k] for k in order if k in sample_errors},
            images_total=len(todo),
            cancelled=cancel is not None and cancel.is_set(),
            wall_s=time.perf_counter() - start,
            ground_truth=self.ground_truth,
            engine=self.engine.name,
            write_errors=tuple(self.write_errors),
            analysis=analysis,
        )

    def _collector(self) -> ComparisonCollector | None:
        """With two models or more, the B vs A statistics of the run (the paired bootstrap needs only
        the per-image matrices; the rest comes from per-image analyses when `analyze` is on)."""
        if len(self.predictors) < 2:
            return None
        from app.analysis.compare import ComparisonCollector

        names = [p.info.name for p in self.predictors]
        if len(set(names)) < len(names):  # the statistics key models by name: A and B must differ
            names = [f"{role}: {name}" for role, name in zip("AB" + "CDEFGH", names, strict=False)]
        return ComparisonCollector(self.scheme, tuple(names))

    # The per-image steps, shared by every engine -------------------------------------------------------
    def load(self, ref: SampleRef) -> Sample:
        """Decode one sample: the image's pixels only when a predictor needs them."""
        return self.dataset.load(ref, image=self.needs_pixels)

    def begin(self, sample: Sample) -> list[Prediction | PendingPrediction | str]:
        """Per model: a prediction ready (cache hit, saved mask), one to run, or an error message."""
        steps: list[Prediction | PendingPrediction | str] = []
        for predictor in self.predictors:
            try:
                steps.append(begin_prediction(predictor, sample))
            except Exception as exc:  # one model's failure on one image must not end the run
                steps.append(error_text(sample.ref, exc))
        return steps

    def finish(
        self,
        index: int,
        sample: Sample,
        steps: Sequence[Prediction | PendingPrediction | str],
        raw: dict[int, object],
    ) -> SampleOutcome:
        """Count each model's prediction of `sample` (`raw`: what each pending model call returned)."""
        ref = sample.ref
        evals: list[ImageEval | None] = []
        predictions: list[np.ndarray | None] = []
        errors: list[str | None] = []
        for i, (predictor, mapping) in enumerate(zip(self.predictors, self.mappings, strict=True)):
            step, image_eval, ids, error = steps[i], None, None, None
            if isinstance(step, str):
                error = step
            else:
                try:
                    prediction = step.finish(raw[i]) if isinstance(step, PendingPrediction) else step
                    name = predictor.info.name
                    image_eval, ids = count_prediction(sample, prediction, name, mapping, self.scheme)
                except Exception as exc:  # one model's failure on one image must not end the run
                    error = error_text(ref, exc)
                if ids is not None and self.save_predictions is not None:
                    self._save(prediction_path(self.save_predictions, predictor.info.name, ref), ids)
            evals.append(image_eval)
            predictions.append(ids)
            errors.append(error)
        analysis = self._analysis(sample, predictions) if self.analyze else None
        return SampleOutcome(index, ref, tuple(evals), tuple(predictions), tuple(errors), None, analysis)

    def _analysis(self, sample: Sample, predictions: Sequence[np.ndarray | None]) -> ImageAnalysis | None:
        """The image's statistics, when it has ground truth and every model predicted it."""
        if sample.gt is None or any(ids is None for ids in predictions):
            return None
        from app.analysis.compare import analyze_image

        ids = [p for p in predictions if p is not None]
        return analyze_image(sample.ref.key, sample.gt, ids, self.scheme, instances=sample.instances)

    def _save(self, path: Path, ids: np.ndarray) -> None:
        # A full disk or a refused name loses this one file, not the image's score or the run.
        try:
            write_label_png(path, ids)
        except OSError as exc:
            self.write_errors.append(f"{path}: {exc.strerror or exc}")  # list.append is atomic

    @property
    def models_in_process(self) -> bool:
        """Some model's calls run on this machine's cores (ONNX Runtime, Keras, torch)."""
        return any(p.info.backend in _IN_PROCESS - {"files"} for p in self.predictors)

    @property
    def local(self) -> bool:
        """Every model call runs in this process (and already uses every core)."""
        return all(p.info.backend in _IN_PROCESS for p in self.predictors)


def ground_truth_of(dataset: Dataset) -> GroundTruth:
    """What a dataset's labels are: its files, or a project's edits over them (an EditedDataset)."""
    if not isinstance(dataset, EditedDataset):
        return GroundTruth()
    return GroundTruth("edited", dataset.project.path, len(dataset.edited_keys()))


def record(models: Sequence[ModelAccumulator], sample_errors: dict[str, str], outcome: SampleOutcome) -> None:
    """Add one outcome to the per-model accumulators (and the run's image errors)."""
    if outcome.sample_error is not None:
        sample_errors[outcome.ref.key] = outcome.sample_error
        return
    for model, image_eval, error in zip(models, outcome.evals, outcome.errors, strict=True):
        if image_eval is not None:
            model.add(image_eval)
        elif error is not None:
            model.errors[outcome.ref.key] = error


def error_text(ref: SampleRef, exc: BaseException) -> str:
    """A message for one image's failure: ours say what is wrong; anything else shows its type too."""
    return f"{ref.key}: {exc}" if isinstance(exc, SegLensError) else f"{ref.key}: {exc!r}"


def _cache_stats(predictor: SamplePredictor) -> CacheStats | None:
    hits, misses = getattr(predictor, "hits", None), getattr(predictor, "misses", None)
    return CacheStats(hits, misses) if isinstance(hits, int) and isinstance(misses, int) else None


@dataclass
class _Work:
    """One image on its way through the local pipeline."""

    index: int
    ref: SampleRef
    sample: Sample | None
    steps: list[Prediction | PendingPrediction | str]  # per model: ready, to run, or an error message
    sample_error: str | None
    raw: dict[int, object] = field(default_factory=dict)  # per model: what infer() returned


class LocalEngine:
    """Three stages joined by small queues: decode + prepare inputs, model calls, upsample + count.

    In-process models already use every core, so their calls run one at a time on one lane while the
    other stages work on the images before and after (at the lowest CPU priority); remote models wait on
    the network, so they get a lane per worker."""

    name = "local"

    def outcomes(
        self, evaluator: Evaluator, refs: Sequence[SampleRef], cancel: threading.Event | None
    ) -> Iterator[SampleOutcome]:
        def load(item: tuple[int, SampleRef]) -> _Work:
            index, ref = item
            try:
                sample = evaluator.load(ref)
            except SegLensError as exc:
                return _Work(index, ref, None, [], str(exc))
            return _Work(index, ref, sample, evaluator.begin(sample), None)

        def finish(work: _Work) -> SampleOutcome:
            if work.sample is None:
                return SampleOutcome(work.index, work.ref, (), (), (), work.sample_error)
            return evaluator.finish(work.index, work.sample, work.steps, work.raw)

        workers = evaluator.workers
        # Decoding and counting yield the CPU to in-process model calls (lowest priority); with nothing
        # but saved masks or remote models there is no model to yield to, and they run at normal priority.
        background = evaluator.models_in_process
        stages = [
            Stage(load, workers, "load", background=background),
            Stage(_infer, 1 if evaluator.local else workers, "infer"),
            Stage(finish, workers, "count", background=background),
        ]
        yield from run_pipeline(enumerate(refs), stages, cancel=cancel, name="seglens-eval")


def _infer(work: _Work) -> _Work:
    for i, step in enumerate(work.steps):
        if isinstance(step, PendingPrediction):
            try:
                work.raw[i] = step.infer()
            except Exception as exc:
                work.steps[i] = error_text(work.ref, exc)
    return work
