"""Evaluate models on a dataset: decode each image once, predict with every model, count pixels.

The same code runs headless (`seglens evaluate`) and inside one GUI worker job; `on_image` streams each
finished image to the caller so views can update live.
"""

from __future__ import annotations

import math
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from app import __version__
from app.core.datasets import Dataset, Sample, SampleRef
from app.core.errors import InputError, PredictError, SegLensError
from app.core.fileutil import safe_file_name
from app.core.imageio import read_label, write_label_png
from app.core.labels import (
    BUILTIN_SCHEMES,
    LABELIDS,
    ClassMapping,
    ClassScheme,
    EvalScheme,
    builtin_mapping,
    custom_eval_scheme,
    eval_scheme_by_key,
    map_by_name,
)
from app.core.metrics import (
    InstanceCounts,
    Scores,
    SparseCounts,
    compute_scores,
    confusion,
    instance_counts,
)
from app.core.pipeline import Stage, run_pipeline
from app.inference.base import InputSpec, ModelInfo, PendingPrediction, Prediction, Segmenter, Timings


class SamplePredictor(Protocol):
    """Anything that turns a decoded sample into a prediction: a model, or a folder of saved masks.

    It may also offer `begin_sample(sample) -> Prediction | PendingPrediction` (a Prediction when there is
    nothing to run, e.g. a cache hit): see begin_prediction."""

    @property
    def info(self) -> ModelInfo: ...

    def predict_sample(self, sample: Sample) -> Prediction: ...


def begin_prediction(predictor: SamplePredictor, sample: Sample) -> Prediction | PendingPrediction:
    """The prediction of `sample`, split at the model call when the predictor can, else the whole
    prediction as one call."""
    begin = getattr(predictor, "begin_sample", None)
    if begin is not None:
        result: Prediction | PendingPrediction = begin(sample)
        return result
    return PendingPrediction.whole(lambda: predictor.predict_sample(sample))


class SegmenterPredictor:
    """Adapts a Segmenter (which sees only pixels) to the sample interface."""

    def __init__(self, segmenter: Segmenter) -> None:
        self.segmenter = segmenter

    @property
    def info(self) -> ModelInfo:
        return self.segmenter.info

    def predict_sample(self, sample: Sample) -> Prediction:
        return self.segmenter.predict(sample.image)

    def begin_sample(self, sample: Sample) -> PendingPrediction:
        begin = getattr(self.segmenter, "begin", None)
        if begin is not None:
            pending: PendingPrediction = begin(sample.image)
            return pending
        segmenter, image = self.segmenter, sample.image
        return PendingPrediction.whole(lambda: segmenter.predict(image))


class FolderPredictions:
    """Predictions saved as labelIds PNGs, found the way the official Cityscapes evaluation finds them:
    the first file under `root` matching `<city>_<seq>_<frame>*.png` (or `<stem>*.png` for plain folders)."""

    def __init__(self, root: str | Path, id_space: ClassScheme = LABELIDS) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(self.root, "predictions folder not found")
        self.id_space = id_space
        self._index: dict[str, Path] = {}
        for path in sorted(self.root.rglob("*.png")):
            if path.is_file():  # never a FIFO, socket or device: opening one would block
                self._index.setdefault(path.name, path)
        self._info = ModelInfo(
            name=self.root.name or str(self.root),
            backend="files",
            source=str(self.root),
            class_names=id_space.names,
            scheme=id_space.key,
            input=InputSpec(height=None, width=None, resize="any"),
            output="labels",
            file_size=None,
            digest="",
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    def find(self, ref: SampleRef) -> Path:
        """The prediction file of `ref`, or InputError naming the folder and the pattern."""
        prefix = ref.frame
        matches = [p for name, p in self._index.items() if name.startswith(prefix)]
        if not matches:
            raise InputError(self.root, f"no prediction file matching '{prefix}*.png'")
        if len(matches) > 1:
            raise InputError(self.root, f"several prediction files match '{prefix}*.png'")
        return matches[0]

    def predict_sample(self, sample: Sample) -> Prediction:
        start = time.perf_counter()
        labels, _ = read_label(self.find(sample.ref), self.id_space, sample.image.shape[:2])
        elapsed = (time.perf_counter() - start) * 1000
        return Prediction(labels=labels, timings=Timings(0.0, elapsed, 0.0))


def mapping_for(info: ModelInfo, id_space: ClassScheme) -> ClassMapping:
    """How a model's class values land in the ground truth's id space."""
    if id_space is LABELIDS and info.scheme in BUILTIN_SCHEMES:
        return builtin_mapping(BUILTIN_SCHEMES[info.scheme])
    return map_by_name(info.class_names, id_space)


def choose_scheme(
    key: str | None, predictors: Sequence[SamplePredictor], gt_scheme: ClassScheme
) -> EvalScheme:
    """The requested scheme, or the finest one every model can be evaluated on."""
    if gt_scheme is not LABELIDS:
        return custom_eval_scheme(gt_scheme)
    if key:
        return eval_scheme_by_key(key)
    granularities = {mapping_for(p.info, gt_scheme).granularity for p in predictors}
    return eval_scheme_by_key("categories" if "categories" in granularities else "trainids")


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


@dataclass
class ModelEvaluation:
    """Everything measured about one model so far; grows image by image."""

    info: ModelInfo
    mapping: ClassMapping
    scheme: EvalScheme
    images: dict[str, ImageEval] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    matrix: np.ndarray = field(init=False)
    instances: InstanceCounts = field(default_factory=InstanceCounts.zeros)
    has_instances: bool = False  # iIoU is 'not available' (NaN), not 0, without instanceIds files

    def __post_init__(self) -> None:
        n = self.scheme.id_space.num_classes
        self.matrix = np.zeros((n, n + 1), dtype=np.int64)

    def add(self, result: ImageEval) -> None:
        self.images[result.key] = result
        if result.counts is not None:
            result.counts.add_to(self.matrix)
        if result.instances is not None:
            self.instances = self.instances + result.instances
            self.has_instances = True

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

    def latencies_ms(self) -> np.ndarray:
        return np.array([r.timings.total_ms for r in self.images.values()], dtype=np.float64)

    def latency_summary(self) -> dict[str, float | None]:
        values = np.sort(self.latencies_ms())  # images finish in any order: the mean's last bits must not
        if values.size == 0:
            return {"p50": None, "p95": None, "p99": None, "mean": None}
        p50, p95, p99 = np.percentile(values, [50, 95, 99])
        return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(values.mean())}


@dataclass(frozen=True)
class SampleOutcome:
    """What `on_image` receives for each finished image (predictions in the id space, for display)."""

    index: int
    ref: SampleRef
    evals: tuple[ImageEval | None, ...]
    predictions: tuple[np.ndarray | None, ...]
    errors: tuple[str | None, ...]
    sample_error: str | None


@dataclass
class RunResult:
    """A finished (or cancelled) evaluation of one or more models on one dataset."""

    dataset: Dataset
    scheme: EvalScheme
    models: list[ModelEvaluation]
    sample_errors: dict[str, str] = field(default_factory=dict)
    images_total: int = 0
    cancelled: bool = False
    wall_s: float = 0.0

    @property
    def images_done(self) -> int:
        return max((len(m.images) + len(m.errors) for m in self.models), default=0)

    def to_dict(self) -> dict[str, object]:
        """The JSON document of `seglens evaluate` (NaN written as null)."""
        return {
            "seglens_version": __version__,
            "dataset": {
                "root": str(self.dataset.root),
                "kind": self.dataset.kind,
                "split": self.dataset.split,
                "images": self.images_total,
            },
            "scheme": self.scheme.key,
            "classes": list(self.scheme.names),
            "cancelled": self.cancelled,
            "wall_seconds": round(self.wall_s, 3),
            "sample_errors": dict(self.sample_errors),
            "images_without_labels": self._without_labels(),
            "models": [_model_dict(m) for m in self.models],
        }

    def _without_labels(self) -> dict[str, str]:
        """Key -> why, for each image evaluated without ground truth."""
        keys = {k for m in self.models for k, r in m.images.items() if not r.evaluated}
        missing = self.dataset.missing_labels()
        return {key: missing.get(key, "no ground truth") for key in sorted(keys)}


def _model_dict(run: ModelEvaluation) -> dict[str, object]:
    info = run.info
    per_image = [
        {
            "key": key,
            "miou": _num(r.miou),
            "pixel_accuracy": _num(r.pixel_accuracy),
            "latency_ms": round(r.timings.total_ms, 3),
            "iou": (
                {name: _num(float(v)) for name, v in zip(run.scheme.names, r.iou, strict=True)}
                if r.iou is not None
                else None
            ),
        }
        for key, r in run.images.items()
    ]
    return {
        "name": info.name,
        "backend": info.backend,
        "source": info.source,
        "digest": info.digest,
        "file_size": info.file_size,
        "class_names": list(info.class_names),
        "model_scheme": info.scheme,
        "mapping": [list(pair) for pair in run.mapping.describe()],
        "images_evaluated": sum(1 for r in run.images.values() if r.evaluated),
        "errors": dict(run.errors),
        "metrics": run.scores().to_dict(),
        "latency_ms": run.latency_summary(),
        "per_image": per_image,
    }


def _num(value: float) -> float | None:
    return None if math.isnan(value) else value


def evaluate_sample(
    sample: Sample, predictor: SamplePredictor, mapping: ClassMapping, scheme: EvalScheme
) -> tuple[ImageEval, np.ndarray]:
    """Predict one sample and count it. Returns the evaluation and the prediction in the id space."""
    return count_prediction(sample, predictor.predict_sample(sample), predictor.info.name, mapping, scheme)


def count_prediction(
    sample: Sample, prediction: Prediction, model_name: str, mapping: ClassMapping, scheme: EvalScheme
) -> tuple[ImageEval, np.ndarray]:
    """Count one prediction of `sample` against its ground truth; also returns it in the id space."""
    height, width = sample.image.shape[:2]
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


ImageCallback = Callable[[SampleOutcome], None]

_IN_PROCESS = frozenset({"onnx", "keras", "hf", "files"})
"""Backends whose model call runs in this process (on all cores); the others are remote."""


@dataclass
class _Work:
    """One image on its way through the evaluation pipeline."""

    index: int
    ref: SampleRef
    sample: Sample | None
    steps: list[Prediction | PendingPrediction | str]  # per model: ready, to run, or an error message
    sample_error: str | None
    raw: dict[int, object] = field(default_factory=dict)  # per model: what infer() returned


def _error_text(ref: SampleRef, exc: Exception) -> str:
    return f"{ref.key}: {exc}" if isinstance(exc, SegLensError) else f"{ref.key}: {exc!r}"


class Evaluator:
    """Runs predictors over a dataset as a pipeline: decoding and counting of some images overlap the
    inference of another. `workers`: threads of the decode and count stages, and the inference lanes of
    remote models (in-process models always get one lane)."""

    def __init__(
        self,
        dataset: Dataset,
        predictors: Sequence[SamplePredictor],
        scheme: EvalScheme,
        *,
        workers: int = 2,
        save_predictions: Path | None = None,
    ) -> None:
        self.dataset = dataset
        self.predictors = list(predictors)
        self.scheme = scheme
        self.workers = max(1, workers)
        self.save_predictions = save_predictions
        self.mappings = [mapping_for(p.info, dataset.gt_scheme) for p in self.predictors]
        self.write_errors: list[str] = []  # saved predictions that could not be written, each named
        for predictor, mapping in zip(self.predictors, self.mappings, strict=True):
            scheme.check_model(mapping, predictor.info.name)

    def run(
        self,
        refs: Sequence[SampleRef] | None = None,
        on_image: ImageCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        """Evaluate `refs` (default: the whole dataset). Bad files are reported and skipped."""
        todo = list(self.dataset.refs if refs is None else refs)
        result = RunResult(
            dataset=self.dataset,
            scheme=self.scheme,
            models=[
                ModelEvaluation(p.info, m, self.scheme)
                for p, m in zip(self.predictors, self.mappings, strict=True)
            ],
            images_total=len(todo),
        )
        start = time.perf_counter()
        for outcome in self._outcomes(todo, cancel):
            self._record(result, outcome)
            if on_image is not None:
                on_image(outcome)
        result.cancelled = cancel is not None and cancel.is_set()
        result.wall_s = time.perf_counter() - start
        return result

    def _outcomes(self, todo: list[SampleRef], cancel: threading.Event | None) -> Iterator[SampleOutcome]:
        # Three stages joined by small queues: decode + prepare inputs, model calls, upsample + count.
        # In-process models already use every core, so their calls run one at a time on one lane, while
        # the other stages work on the images before and after; remote models wait on the network, so
        # they get a lane per worker.
        local = all(p.info.backend in _IN_PROCESS for p in self.predictors)
        stages = [
            Stage(self._load, self.workers, "load", background=True),
            Stage(self._infer, 1 if local else self.workers, "infer"),
            Stage(self._finish, self.workers, "count", background=True),
        ]
        yield from run_pipeline(enumerate(todo), stages, cancel=cancel, name="seglens-eval")

    def _load(self, item: tuple[int, SampleRef]) -> _Work:
        index, ref = item
        try:
            sample = self.dataset.load(ref)
        except SegLensError as exc:
            return _Work(index, ref, None, [], str(exc))
        steps: list[Prediction | PendingPrediction | str] = []
        for predictor in self.predictors:
            try:
                steps.append(begin_prediction(predictor, sample))
            except Exception as exc:  # one model's failure on one image must not end the run
                steps.append(_error_text(ref, exc))
        return _Work(index, ref, sample, steps, None)

    @staticmethod
    def _infer(work: _Work) -> _Work:
        for i, step in enumerate(work.steps):
            if isinstance(step, PendingPrediction):
                try:
                    work.raw[i] = step.infer()
                except Exception as exc:
                    work.steps[i] = _error_text(work.ref, exc)
        return work

    def _finish(self, work: _Work) -> SampleOutcome:
        sample, ref = work.sample, work.ref
        if sample is None:
            return SampleOutcome(work.index, ref, (), (), (), work.sample_error)
        evals: list[ImageEval | None] = []
        predictions: list[np.ndarray | None] = []
        errors: list[str | None] = []
        for i, (predictor, mapping) in enumerate(zip(self.predictors, self.mappings, strict=True)):
            step, image_eval, ids, error = work.steps[i], None, None, None
            if isinstance(step, str):
                error = step
            else:
                try:
                    prediction = step.finish(work.raw[i]) if isinstance(step, PendingPrediction) else step
                    name = predictor.info.name
                    image_eval, ids = count_prediction(sample, prediction, name, mapping, self.scheme)
                except Exception as exc:  # one model's failure on one image must not end the run
                    error = _error_text(ref, exc)
            evals.append(image_eval)
            predictions.append(ids)
            errors.append(error)
            if ids is not None and self.save_predictions is not None:
                self._save(_prediction_path(self.save_predictions, predictor.info.name, ref), ids)
        return SampleOutcome(work.index, ref, tuple(evals), tuple(predictions), tuple(errors), None)

    def _save(self, path: Path, ids: np.ndarray) -> None:
        # A full disk or a refused name loses this one file, not the run and every result computed.
        try:
            write_label_png(path, ids)
        except OSError as exc:
            self.write_errors.append(f"{path}: {exc.strerror or exc}")

    @staticmethod
    def _record(result: RunResult, outcome: SampleOutcome) -> None:
        if outcome.sample_error is not None:
            result.sample_errors[outcome.ref.key] = outcome.sample_error
            return
        for model, image_eval, error in zip(result.models, outcome.evals, outcome.errors, strict=True):
            if image_eval is not None:
                model.add(image_eval)
            elif error is not None:
                model.errors[outcome.ref.key] = error


def run_with_progress(
    evaluator: Evaluator,
    refs: Sequence[SampleRef],
    *,
    quiet: bool = False,
    report_skipped: bool = True,
    on_image: ImageCallback | None = None,
) -> RunResult:
    """Evaluator.run over `refs` as the headless commands run it: a progress bar on stderr (hidden when
    `quiet`), each skipped image or failed prediction written above it when `report_skipped`, `on_image`
    called per finished image, and Ctrl-C cancelling the workers before KeyboardInterrupt propagates."""
    from tqdm import tqdm

    bar = tqdm(total=len(refs), unit="img", disable=quiet, file=sys.stderr)

    def on_outcome(outcome: SampleOutcome) -> None:
        bar.update(1)
        if on_image is not None:
            on_image(outcome)
        for message in (outcome.sample_error, *outcome.errors):
            if message and report_skipped:
                tqdm.write(f"skipped: {message}", file=sys.stderr)

    cancel = threading.Event()
    try:
        return evaluator.run(refs, on_image=on_outcome, cancel=cancel)
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        bar.close()


def safe_name(name: str) -> str:
    """A model name usable as a folder name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "model"


def _prediction_path(root: Path, model_name: str, ref: SampleRef) -> Path:
    # Named like the GT file so the official evaluation finds it by city/sequence/frame.
    parts = [safe_file_name(p) for p in (ref.split, ref.city) if p]
    return root.joinpath(safe_name(model_name), *parts, safe_file_name(ref.frame, "_gtFine_labelIds.png"))
