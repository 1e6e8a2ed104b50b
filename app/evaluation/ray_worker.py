"""What runs on a Ray worker: an actor holding the request's models, evaluating one image per task with
the per-image steps every engine shares (see engine_ray for the driver's side)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import socket
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.core.domain.errors import InputError, SegLensError
from app.core.domain.labels import EvalScheme
from app.core.io.datasets import Dataset, Sample, SampleRef
from app.evaluation.engine import Evaluator, error_text
from app.evaluation.results import SampleOutcome
from app.inference.backends.onnx_backend import THREADS_ENV, inference_threads
from app.inference.base import PendingPrediction

if TYPE_CHECKING:
    from app.evaluation.service import EvaluationRequest

PATH_FIELDS = ("image_path", "gt_path", "instance_path")

Packed = tuple[tuple[int, ...], str, bytes]  # shape, dtype, zlib bytes
Shipped = tuple[str, bytes]  # ("file", bytes) | ("dir", b"") | ("missing", b"")


def pack(array: np.ndarray) -> Packed:
    """A label map for the trip back to the driver (label maps are long runs: zlib level 1, ~20-40x)."""
    data = np.ascontiguousarray(array)
    return tuple(data.shape), data.dtype.str, zlib.compress(data.tobytes(), 1)


def unpack(packed: Packed) -> np.ndarray:
    """The label map `pack` packed; writable, as a local run's predictions are."""
    shape, dtype, data = packed
    return np.frombuffer(bytearray(zlib.decompress(data)), dtype=np.dtype(dtype)).reshape(shape)


@dataclass(frozen=True)
class WorkerSpec:
    """What one actor needs to build its Evaluator: the request (as workers open it: original labels, no
    saving: the driver writes), the dataset without its listing, the run's scheme, its threads."""

    request: EvaluationRequest
    dataset: Dataset  # refs empty: a worker loads the refs it is sent
    scheme: EvalScheme
    threads: int  # onnxruntime intra-op threads: the actor's CPUs
    in_process: bool  # model calls use the CPU: one at a time per actor, decoding beside them
    probe: tuple[str, int] | None  # a dataset file and its size: does this worker see the data?
    order: tuple[int, ...] | None = None  # the driver's predictor i is the request's order[i]
    # --ray-data ship: the models' files (absolute path -> bytes, in the object store) and a key naming
    # that set, so the actors of a node write them once into a folder mirroring the driver's paths.
    model_files: Any = None
    model_key: str = ""
    analyze: bool = False  # per-image statistics (boundary, label errors, instances), as the driver's run


@dataclass(frozen=True)
class TaskResult:
    """One image's outcome as it travels back: predictions packed (or left behind), cache use per model."""

    outcome: SampleOutcome  # predictions ()
    predictions: tuple[Packed | None, ...] | None
    cache: tuple[tuple[int, int], ...]  # per model: this task's (hits, misses) of the prediction cache


class EvalWorker:
    """A Ray actor (wrapped by ray.remote at run time): the request's models, opened once."""

    def __init__(self, spec: WorkerSpec) -> None:
        # Ray sets OMP_NUM_THREADS=1 while onnxruntime would size its pool to the whole node: every actor
        # of a node would then oversubscribe its cores.
        os.environ[THREADS_ENV] = str(spec.threads)
        self.spec = spec
        self.error: str | None = None
        self.evaluator: Evaluator | None = None
        self._infer_lock = threading.Lock()
        self._task = threading.local()
        try:
            from app.evaluation.service import open_predictors

            request = spec.request if spec.model_files is None else _shipped_models(spec)
            predictors, _memory, _notes = open_predictors(request, spec.dataset)
            if spec.order is not None:
                predictors = [predictors[i] for i in spec.order]
            self.evaluator = Evaluator(
                spec.dataset, predictors, spec.scheme, workers=1, analyze=spec.analyze
            )
            for i, predictor in enumerate(predictors):
                if hasattr(predictor, "on_count"):  # the prediction cache's hits and misses
                    predictor.on_count = functools.partial(self._tally, i)
        except SegLensError as exc:  # reported by the driver, naming this node
            self.error = str(exc)

    def describe(self) -> dict[str, Any]:
        """pid, node, whether this worker sees the dataset's files, where its models were opened from, and
        why they could not be."""
        sees = False
        if self.spec.probe is not None:
            path, size = self.spec.probe
            with contextlib.suppress(OSError):
                sees = Path(path).stat().st_size == size
        import ray

        node_id = ray.get_runtime_context().get_node_id()
        return {
            "pid": os.getpid(),
            "node": socket.gethostname(),
            "node_id": node_id,
            "sees_data": sees,
            "models": [p.info.source for p in self.evaluator.predictors] if self.evaluator else [],
            "inference_threads": inference_threads(),  # onnxruntime's intra-op pool: the actor's CPUs
            "error": self.error,
        }

    def evaluate(
        self,
        index: int,
        ref: SampleRef,
        files: dict[str, Shipped] | None,
        edited_gt: Packed | None,
        with_predictions: bool,
    ) -> TaskResult:
        """Decode `ref` (from `files` when shipped), predict with every model and count."""
        evaluator = self.evaluator
        if evaluator is None:
            raise SegLensError(self.error or "the worker's models are not open")
        self._task.counts = [[0, 0] for _ in evaluator.predictors]
        try:
            sample = self._load(index, ref, files)
        except SegLensError as exc:
            return TaskResult(SampleOutcome(index, ref, (), (), (), str(exc)), None, self._counts())
        if edited_gt is not None:
            sample = dataclasses.replace(sample, gt=unpack(edited_gt))
        steps = evaluator.begin(sample)
        raw: dict[int, object] = {}
        with self._infer_lock if self.spec.in_process else contextlib.nullcontext():
            for i, step in enumerate(steps):
                if isinstance(step, PendingPrediction):
                    try:
                        raw[i] = step.infer()
                    except Exception as exc:  # one model's failure on one image must not end the run
                        steps[i] = error_text(ref, exc)
        outcome = evaluator.finish(index, sample, steps, raw)
        packed = None
        if with_predictions:
            packed = tuple(None if ids is None else pack(ids) for ids in outcome.predictions)
        return TaskResult(dataclasses.replace(outcome, predictions=()), packed, self._counts())

    def _load(self, index: int, ref: SampleRef, files: dict[str, Shipped] | None) -> Sample:
        assert self.evaluator is not None
        if files is None:
            return self.evaluator.load(ref)
        # The shipped bytes are decoded from files by the very code a local run uses; messages name the
        # driver's paths, as a local run's do.
        folder = Path(tempfile.mkdtemp(prefix=f"seglens-ray-{index}-"))  # removed below: actors get killed
        originals: dict[Path, Path] = {}

        def stage(name: str, source: Path) -> Path:
            target = folder / f"{name}-{source.name}"
            kind, data = files[name]
            if kind == "file":
                target.write_bytes(data)
            elif kind == "dir":
                target.mkdir()
            originals[target] = source
            return target

        here = dataclasses.replace(
            ref,
            image_path=stage("image_path", ref.image_path),
            gt_path=None if ref.gt_path is None else stage("gt_path", ref.gt_path),
            instance_path=None if ref.instance_path is None else stage("instance_path", ref.instance_path),
        )
        try:
            sample = self.evaluator.load(here)
        except InputError as exc:
            path = originals.get(exc.path, exc.path) if exc.path is not None else None
            raise InputError(path, exc.problem) from None
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return dataclasses.replace(sample, ref=ref)

    def _tally(self, model: int, hit: bool) -> None:
        # A task runs in one thread from decode to count, so a thread's tally is exactly its own task's
        # cache use (tasks run side by side on an actor).
        counts = getattr(self._task, "counts", None)
        if counts is not None:
            counts[model][0 if hit else 1] += 1

    def _counts(self) -> tuple[tuple[int, int], ...]:
        return tuple((hits, misses) for hits, misses in self._task.counts)


def _shipped_models(spec: WorkerSpec) -> EvaluationRequest:
    """The request with its models opened from the files the driver shipped, written (atomically, once per
    node and set of files) under a folder that mirrors the driver's absolute paths: a manifest's relative
    path to its model still holds."""
    import ray

    from app.core.io.fileutil import atomic_write_bytes

    root = Path(tempfile.gettempdir()) / "seglens-ray-models" / spec.model_key
    files: list[tuple[str, bytes]] = ray.get(spec.model_files)
    for name, data in files:
        target = root / name.lstrip("/")
        if not target.is_file() or target.stat().st_size != len(data):
            atomic_write_bytes(target, data)
    models = tuple(str(root / m.lstrip("/")) if Path(m).is_absolute() else m for m in spec.request.models)
    return dataclasses.replace(spec.request, models=models)
