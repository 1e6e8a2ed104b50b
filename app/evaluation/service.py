"""The evaluation service: one request in, one typed result out.

Every command (`evaluate`, `report`, `gate`, `benchmark`, `quantize`'s validation) and the window go
through here, so an option works everywhere it makes sense: the prediction cache, running Keras/HF models
through ONNX Runtime (`accelerate`), edited ground truth, the engine.

    with open_session(EvaluationRequest(dataset="data", models=("a.onnx", "b.onnx"))) as session:
        result = session.run()

`open_session` does everything that can fail before any image is decoded (dataset listed, models opened,
scheme chosen and checked), so a bad argument costs no inference.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from app.core.domain.errors import InputError, SegLensError
from app.core.domain.labels import LABELIDS, ClassScheme, EvalScheme
from app.core.io.datasets import Dataset, SampleRef, open_dataset
from app.evaluation.engine import Engine, Evaluator, ImageCallback, LocalEngine
from app.evaluation.predictors import FolderPredictions, SamplePredictor, SegmenterPredictor, choose_scheme
from app.evaluation.results import EvaluationResult, GroundTruth, GroundTruthKind
from app.inference.base import Segmenter

if TYPE_CHECKING:
    from app.core.storage.project import Project

ModelLoader = Callable[[str], Segmenter]
Note = Callable[[str], None]


@dataclass(frozen=True)
class CachePolicy:
    """Whether predictions are read from and written to the on-disk prediction cache."""

    use: bool = False
    folder: Path | None = None  # None: the user cache folder
    max_bytes: int = 2048 * 1024 * 1024


@dataclass(frozen=True)
class RayOptions:
    """Where and how the Ray engine runs (ignored by the local engine)."""

    address: str | None = None  # None: $RAY_ADDRESS, else a local Ray with this machine's cores
    data: str = "auto"  # "shared": workers read the dataset's path; "ship": the driver sends the bytes
    cpus_per_worker: int | None = None  # None: up to 4 for in-process models, 1 for remote ones


@dataclass(frozen=True)
class EvaluationRequest:
    """What to evaluate and how. Models are files/manifests/folders opened through the registry;
    `predictions` are folders of saved labelIds PNGs, listed after the models."""

    dataset: str | Path
    models: tuple[str, ...] = ()
    predictions: tuple[str, ...] = ()
    split: str | None = None
    gt_scheme: ClassScheme = LABELIDS
    scheme: str | None = None  # None: the finest scheme every model can be evaluated on
    ground_truth: GroundTruthKind = "original"  # "edited": a project's edited label maps where it has one
    project: Path | None = None  # the project holding the edits (default: the dataset's own project)
    cache: CachePolicy = field(default_factory=CachePolicy)
    accelerate: bool = False  # Keras / Hugging Face models through an ONNX export (fidelity checked)
    engine: str = "local"  # or "ray" (the optional extra)
    ray: RayOptions = field(default_factory=RayOptions)
    workers: int = 2
    limit: int | None = None  # the first N images only
    save_predictions: Path | None = None
    measure_memory: bool = False  # resident-memory growth of opening each model
    analysis: bool = False  # per image: boundary quality, likely label errors, missed objects
    # Threads of each in-process model call (None: the backend's default, every core). The commands leave
    # one core to decoding and counting, which then run beside inference instead of waiting for it.
    inference_threads: int | None = None
    # Each SampleOutcome carries the predictions (the report's top masks, the window's display); False
    # lets a cluster engine leave them on the workers.
    outcome_predictions: bool = True

    def __post_init__(self) -> None:
        if not self.models and not self.predictions:
            raise InputError(
                Path(self.dataset), "nothing to evaluate: give at least one model or predictions"
            )
        if self.limit is not None and self.limit < 1:
            raise InputError(Path(self.dataset), f"the image limit must be 1 or more, not {self.limit}")
        if self.workers < 1:
            raise InputError(Path(self.dataset), f"workers must be 1 or more, not {self.workers}")


class EvaluationSession:
    """An opened request: dataset listed, models loaded and wrapped, scheme chosen. Close it (or use it as
    a context manager) to release the models."""

    def __init__(
        self,
        request: EvaluationRequest,
        dataset: Dataset,
        predictors: list[SamplePredictor],
        memory: list[int | None],
        notes: list[str],
        engine: Engine,
        ground_truth: GroundTruth,
        closers: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.request = request
        self.dataset = dataset
        self.predictors = predictors
        self.memory = memory
        self.notes = notes  # what the user should know before the numbers (accelerations, caveats)
        scheme = choose_scheme(request.scheme, predictors, dataset.gt_scheme)
        self.evaluator = Evaluator(
            dataset,
            predictors,
            scheme,
            workers=request.workers,
            save_predictions=request.save_predictions,
            ground_truth=ground_truth,
            engine=engine,
            analyze=request.analysis,
        )
        self.refs = dataset.refs[: request.limit] if request.limit else list(dataset.refs)
        self._closers = list(closers)

    @property
    def scheme(self) -> EvalScheme:
        return self.evaluator.scheme

    def run(
        self, on_image: ImageCallback | None = None, cancel: threading.Event | None = None
    ) -> EvaluationResult:
        """Evaluate the request's images; bad files are reported per image and skipped."""
        return self.evaluator.run(self.refs, on_image, cancel, memory=self.memory)

    def close(self) -> None:
        close_all(self.predictors)
        for closer in self._closers:
            closer()
        self._closers = []

    def __enter__(self) -> EvaluationSession:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def open_session(request: EvaluationRequest, *, loader: ModelLoader | None = None) -> EvaluationSession:
    """Open everything `request` names. Raises SegLensError (naming the file) before any image is decoded;
    on an error every model opened so far is closed."""
    dataset = open_dataset(request.dataset, split=request.split, gt_scheme=request.gt_scheme)
    if not dataset.refs:
        raise InputError(dataset.root, "the dataset has no images")
    engine = engine_by_name(request.engine, request)
    notes: list[str] = []
    refs = dataset.refs[: request.limit] if request.limit else dataset.refs
    dataset, truth, project = _ground_truth(request, dataset, refs, notes)
    closers = [project.close] if project is not None else []
    try:
        predictors, memory, opened = open_predictors(request, dataset, loader)
    except BaseException:
        for closer in closers:
            closer()
        raise
    try:
        return EvaluationSession(request, dataset, predictors, memory, notes + opened, engine, truth, closers)
    except BaseException:
        close_all(predictors)
        for closer in closers:
            closer()
        raise


def open_predictors(
    request: EvaluationRequest, dataset: Dataset, loader: ModelLoader | None = None
) -> tuple[list[SamplePredictor], list[int | None], list[str]]:
    """The request's models and prediction folders, accelerated and cached as it asks: (predictors, RSS
    growth of each on load, notes). A cluster engine's workers open theirs with this too."""
    with _threads_for_models(request.inference_threads):
        predictors, memory = load_predictors(
            request.models, request.predictions, dataset, loader, measure_memory=request.measure_memory
        )
    notes: list[str] = []
    try:
        if request.accelerate:
            with _threads_for_models(request.inference_threads):  # the ONNX exports open here
                predictors = _accelerated(request.models, predictors, notes)
        if request.cache.use:
            predictors = _cached(predictors, request.cache)
    except BaseException:
        close_all(predictors)
        raise
    return predictors, memory, notes


def _ground_truth(
    request: EvaluationRequest, dataset: Dataset, refs: Sequence[SampleRef], notes: list[str]
) -> tuple[Dataset, GroundTruth, Project | None]:
    """The dataset as the request wants its labels: original, or seen through a project's edits. With
    original labels, a note when the dataset's project holds edits the run does not use."""
    from app.core.storage.edited import EditedDataset, find_project

    path = request.project or find_project(dataset.root)
    if path is None and request.ground_truth == "original":
        return dataset, GroundTruth(), None
    from app.core.storage.project import Project  # only when there is a project to read

    if request.ground_truth == "original":
        if path is not None and request.project is None:
            try:
                with contextlib.closing(Project.open(path)) as project:
                    edited = EditedDataset(dataset, project).edited_keys(list(refs))
            except (SegLensError, OSError, sqlite3.Error) as exc:
                notes.append(f"note: the dataset's project {path} could not be read ({exc})")
                edited = []
            if edited:
                notes.append(
                    f"note: {path} holds edited labels for {len(edited)} of these images; they are NOT "
                    "used (original labels). Evaluate them with --ground-truth edited."
                )
        return dataset, GroundTruth(), None
    if path is None:
        raise InputError(dataset.root, "no project with edited labels for this dataset (give --project)")
    project = Project.open(path)
    view = EditedDataset(dataset, project)
    count = len(view.edited_keys(list(refs)))
    notes.append(f"ground truth: edited labels from {path} ({count} of {len(refs)} images edited)")
    return view, GroundTruth("edited", path, count), project


def evaluate(
    request: EvaluationRequest,
    *,
    on_image: ImageCallback | None = None,
    cancel: threading.Event | None = None,
    loader: ModelLoader | None = None,
) -> EvaluationResult:
    """Open, run and close in one call."""
    with open_session(request, loader=loader) as session:
        return session.run(on_image, cancel)


_ENGINES = {"local": "", "ray": "app.evaluation.engine_ray:RayEngine"}
"""Engines by name: the local one, and those of optional extras (imported only when named)."""


@contextlib.contextmanager
def _threads_for_models(threads: int | None) -> Iterator[None]:
    """Models opened inside get `threads` per call (the ONNX backend reads $SEGLENS_INFERENCE_THREADS when
    it creates a session); a value the user set is never overridden."""
    from app.inference.backends.onnx_backend import THREADS_ENV

    if threads is None or os.environ.get(THREADS_ENV, "").strip():
        yield
        return
    os.environ[THREADS_ENV] = str(threads)
    try:
        yield
    finally:
        os.environ.pop(THREADS_ENV, None)


def spare_core_threads() -> int | None:
    """Inference threads that leave one core to an evaluation's decoding and counting (None with one core).
    On 2 cores the demo evaluation takes 0.59x the time of a bare decode-and-run script this way, 1.16x
    with both cores on inference (benchmarks/bench_evaluate.py)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, cores - 1) if cores > 1 else None


def engine_by_name(name: str, request: EvaluationRequest | None = None) -> Engine:
    """The engine a request names; an engine of an optional extra is built from the request."""
    if name == "local":
        return LocalEngine()
    target = _ENGINES.get(name)
    if not target or request is None:
        raise InputError(Path(name), f"unknown evaluation engine {name!r} (known: {', '.join(_ENGINES)})")
    module, _, attr = target.partition(":")
    engine: Engine = getattr(importlib.import_module(module), attr)(request)
    return engine


# --- models ---------------------------------------------------------------------------------------------


def rss_bytes() -> int | None:
    """This process's resident memory (Linux /proc); None where it cannot be read cheaply."""
    try:
        with Path("/proc/self/statm").open() as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _preimport_backends(models: Sequence[str]) -> None:
    # The first model would otherwise be charged for importing its framework (onnxruntime ~40 MB).
    from app.inference.registry import backend_for_suffix

    for model in models:
        backend = backend_for_suffix(Path(model).suffix)
        if backend is not None:
            with contextlib.suppress(ImportError):
                importlib.import_module(backend.loader.partition(":")[0])


def load_predictors(
    models: Sequence[str],
    predictions: Sequence[str],
    dataset: Dataset,
    loader: ModelLoader | None = None,
    *,
    measure_memory: bool = False,
) -> tuple[list[SamplePredictor], list[int | None]]:
    """Open each model (then each saved-prediction folder); also returns each one's RSS growth on load
    (bytes; None when not measured). On an error every model opened so far is closed."""
    if loader is None and models:
        from app.inference.registry import load_model

        loader = load_model
        if measure_memory:
            _preimport_backends(models)
    predictors: list[SamplePredictor] = []
    memory: list[int | None] = []
    try:
        for model in models:
            assert loader is not None
            before = rss_bytes() if measure_memory else None
            segmenter = loader(model)
            after = rss_bytes() if measure_memory else None
            predictors.append(SegmenterPredictor(segmenter))
            memory.append(max(0, after - before) if before is not None and after is not None else None)
        for folder in predictions:
            predictors.append(FolderPredictions(folder, dataset.gt_scheme))
            memory.append(None)
    except BaseException:
        close_all(predictors)
        raise
    return predictors, memory


def close_all(predictors: Sequence[SamplePredictor]) -> None:
    """Close the models among `predictors` (wrapped ones too). Idempotent."""
    for predictor in predictors:
        inner = getattr(predictor, "predictor", predictor)  # CachedPredictor wraps one
        if isinstance(inner, SegmenterPredictor):
            inner.close()


def _accelerated(
    sources: Sequence[str], predictors: list[SamplePredictor], notes: list[str]
) -> list[SamplePredictor]:
    from app.inference.tools.accelerate import accelerated

    out = list(predictors)
    for i, source in enumerate(sources):
        predictor = out[i]
        if isinstance(predictor, SegmenterPredictor):
            segmenter, note = accelerated(source, predictor.segmenter)
            out[i] = SegmenterPredictor(segmenter)
            notes.append(note)
    return out


def _cached(predictors: list[SamplePredictor], policy: CachePolicy) -> list[SamplePredictor]:
    from app.core.io.paths import cache_dir
    from app.core.storage.prediction_cache import PredictionCache
    from app.evaluation.store import CachedPredictor

    cache = PredictionCache(policy.folder or cache_dir() / "predictions", policy.max_bytes)
    return [CachedPredictor(p, cache) for p in predictors]
