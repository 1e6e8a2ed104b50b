"""The Ray engine: the same per-image steps as the local engine, run by Ray actors on a cluster.

Each actor opens the request's models once (`open_predictors` on the worker, onnxruntime sized to the
actor's CPUs: Ray sets OMP_NUM_THREADS=1 while onnxruntime would size its pool to the whole node) and
evaluates one image per task: decode, predict, count. The driver keeps a bounded number of tasks in flight
per actor and yields each SampleOutcome as it finishes, so progress moves and memory stays bounded; it
sums the integer confusion matrices exactly as a local run does (the same numbers, bit for bit).

Data reach the workers one of two ways: the workers read the dataset's files from a path every node sees,
or the driver ships each image's encoded bytes through the object store (when the path is not visible on
a worker: probed per actor, or forced). Edited ground truth always comes from the driver, which holds the
project. A worker that dies is restarted by Ray and its tasks retried; an image whose tasks keep killing
workers is reported as skipped and the run goes on. Cancelling kills the actors: cluster work stops.

Ray is an optional extra (`pip install -e '.[ray]'`), imported only when this engine runs.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import importlib.util
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from app.core.domain.errors import InputError, SegLensError
from app.core.domain.labels import EvalScheme
from app.core.io.datasets import Dataset, SampleRef
from app.core.io.imageio import write_label_png
from app.core.storage.prediction_cache import PredictionCache
from app.evaluation.engine import Evaluator, error_text
from app.evaluation.outputs import prediction_path
from app.evaluation.predictors import SamplePredictor
from app.evaluation.ray_worker import (
    PATH_FIELDS,
    EvalWorker,
    Packed,
    Shipped,
    TaskResult,
    WorkerSpec,
    pack,
    unpack,
)
from app.evaluation.results import SampleOutcome

if TYPE_CHECKING:
    import threading

    from app.evaluation.service import EvaluationRequest

RAY_INSTALL = "pip install -e '.[ray]'"
DATA_MODES = ("auto", "shared", "ship")
LOCAL_OBJECT_STORE_BYTES = 300 * 1024**2
"""Object store of a Ray that SegLens starts itself: tasks in flight are bounded, so this is plenty."""

_ATTEMPTS = 3  # an image whose task killed its worker this many times is reported, not retried again
_START_TIMEOUT_S = 300.0  # workers waiting for CPUs on a busy cluster


def require_ray() -> ModuleType:
    """The `ray` module, or InputError naming the install command (checked before any model opens)."""
    if importlib.util.find_spec("ray") is None:
        raise InputError(None, f"--engine ray needs Ray, an optional extra: {RAY_INSTALL}")
    import ray

    return ray


def connect(address: str | None) -> ModuleType:
    """Ray, connected: to `address`, else $RAY_ADDRESS, else a Ray started here with this machine's cores.
    An already initialized Ray (a test's, a notebook's) is used as it is."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    target = address or os.environ.get("RAY_ADDRESS") or None
    try:
        if target:
            ray.init(address=target, log_to_driver=False)
        else:
            ray.init(
                address="local",  # a new Ray, never one a `ray start` left on this machine
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                log_to_driver=False,
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise InputError(
            None, f"cannot connect to the Ray cluster at {target or 'a local Ray'}: {exc}"
        ) from exc
    return ray


@dataclass(frozen=True)
class Plan:
    """How many actors, each with how many CPUs (= onnxruntime threads) and tasks side by side."""

    actors: int
    cpus: int
    concurrency: int  # tasks an actor runs at once: decoding beside one model call, or remote lanes
    depth: int  # tasks queued per actor, so it never waits for the driver


@dataclass
class _Slot:
    """One actor of the pool (replaced when it dies for good)."""

    actor: Any
    ship: bool = False  # this worker does not see the dataset: send it the files' bytes
    load: int = 0  # tasks in flight
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


class RayEngine:
    """Evaluates on a Ray cluster: actors each holding the models once, outcomes streamed back as they
    finish (see the module docstring). `workers` lists each actor's pid, node and data route once the
    run has started."""

    name = "ray"

    def __init__(self, request: EvaluationRequest, *, order: tuple[int, ...] | None = None) -> None:
        require_ray()  # a missing extra is reported before any model opens
        if request.ray.data not in DATA_MODES:
            raise InputError(
                None, f"--ray-data must be one of {', '.join(DATA_MODES)}, not {request.ray.data!r}"
            )
        self.request = request
        self.order = order  # the driver's predictor i is the worker's order[i] (default: the same)
        self.workers: list[dict[str, Any]] = []
        self.pool: _Pool | None = None  # the running run's actors

    def outcomes(
        self, evaluator: Evaluator, refs: Sequence[SampleRef], cancel: threading.Event | None
    ) -> Iterator[SampleOutcome]:
        if not refs:
            return
        ray = connect(self.request.ray.address)
        pool = self.pool = _Pool(ray, self._spec(evaluator, refs, ray), self.request.ray.data)
        try:
            self.workers = pool.start(cancel)
            yield from self._stream(ray, pool, evaluator, refs, cancel)
        finally:
            pool.shutdown()

    def plan(self, evaluator: Evaluator, cluster_cpus: int, images: int) -> Plan:
        """In-process models get actors of `cpus_per_worker` CPUs (default up to 4: onnxruntime scales
        well to a few threads, and smaller actors pack nodes evenly); remote models wait on the network,
        so one CPU per actor with the request's lanes."""
        total = max(1, cluster_cpus)
        chosen = self.request.ray.cpus_per_worker
        if evaluator.local:
            cpus = min(chosen or 4, total)
            concurrency = 2
        else:
            cpus = chosen or 1
            concurrency = max(1, self.request.workers)
        actors = max(1, min(total // cpus, images))
        return Plan(actors, cpus, concurrency, concurrency + 1)

    def _spec(
        self, evaluator: Evaluator, refs: Sequence[SampleRef], ray: ModuleType
    ) -> tuple[WorkerSpec, Plan]:
        cpus = int(ray.cluster_resources().get("CPU", 1))
        plan = self.plan(evaluator, cpus, len(refs))
        # Workers count against the original files; edits and saving stay with the driver.
        request = dataclasses.replace(
            self.request,
            engine="local",
            ground_truth="original",
            project=None,
            save_predictions=None,
            measure_memory=False,
        )
        files, key = None, ""
        if self.request.ray.data == "ship":  # no shared filesystem: the models travel too
            request = dataclasses.replace(request, models=tuple(_absolute(m) for m in request.models))
            shipped = model_files(request.models)
            files, key = ray.put(shipped), _files_key(shipped)
        spec = WorkerSpec(
            request=request,
            dataset=_template(evaluator.dataset),
            scheme=evaluator.scheme,
            threads=plan.cpus,
            in_process=evaluator.local,
            probe=_probe(refs),
            order=self.order,
            model_files=files,
            model_key=key,
            analyze=evaluator.analyze,
        )
        return spec, plan

    def _stream(
        self,
        ray: ModuleType,
        pool: _Pool,
        evaluator: Evaluator,
        refs: Sequence[SampleRef],
        cancel: threading.Event | None,
    ) -> Iterator[SampleOutcome]:
        todo = deque(enumerate(refs))
        edited = _Edited(evaluator.dataset, refs)
        want = self.request.outcome_predictions or evaluator.save_predictions is not None
        inflight: dict[Any, tuple[_Slot, Any, int, SampleRef]] = {}
        attempts: dict[int, int] = {}
        while todo or inflight:
            if cancel is not None and cancel.is_set():
                return
            for slot in pool.slots:
                while todo and slot.load < pool.plan.depth:
                    index, ref = todo.popleft()
                    try:
                        gt = edited.packed(ref)
                    except SegLensError as exc:
                        yield SampleOutcome(index, ref, (), (), (), str(exc))
                        continue
                    files = _read_files(ref) if slot.ship else None
                    task = slot.actor.evaluate.remote(index, ref, files, gt, want)
                    inflight[task] = (slot, slot.actor, index, ref)
                    slot.load += 1
            if not inflight:
                continue
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.2)
            for task in ready:
                slot, actor, index, ref = inflight.pop(task)
                slot.load -= 1
                try:
                    result: TaskResult = ray.get(task)
                except ray.exceptions.RayActorError as exc:  # died, and Ray's restarts/retries used up
                    pool.replace(slot, actor, exc)
                    attempts[index] = attempts.get(index, 0) + 1
                    if attempts[index] < _ATTEMPTS:
                        todo.appendleft((index, ref))
                    else:
                        message = (
                            f"{ref.image_path}: the Ray worker evaluating this image died {_ATTEMPTS} times"
                        )
                        yield SampleOutcome(index, ref, (), (), (), message)
                    continue
                yield _rebuild(evaluator, result)


class _Pool:
    """The run's actors: started, probed, replaced when one dies for good, killed at the end."""

    def __init__(self, ray: ModuleType, spec_plan: tuple[WorkerSpec, Plan], data: str) -> None:
        self.ray = ray
        self.spec, self.plan = spec_plan
        self.data = data
        self.slots: list[_Slot] = []
        self.replaced = 0
        self._cls = ray.remote(
            num_cpus=self.plan.cpus,
            max_restarts=2,
            max_task_retries=2,
            max_concurrency=self.plan.concurrency,
        )(EvalWorker)

    def start(self, cancel: threading.Event | None) -> list[dict[str, Any]]:
        """Start the actors and wait until their models are open; raises SegLensError naming the node
        where they could not be."""
        self.slots = [_Slot(self._cls.remote(self.spec)) for _ in range(self.plan.actors)]
        waiting = {slot.actor.describe.remote(): slot for slot in self.slots}
        deadline = time.monotonic() + _START_TIMEOUT_S
        while waiting:
            if cancel is not None and cancel.is_set():
                return []
            ready, _ = self.ray.wait(list(waiting), num_returns=len(waiting), timeout=0.5)
            for task in ready:
                slot = waiting.pop(task)
                slot.info = self.ray.get(task)
                if slot.info["error"]:
                    raise SegLensError(f"Ray worker on {slot.info['node']}: {slot.info['error']}")
                slot.ship = self.data == "ship" or (self.data == "auto" and not slot.info["sees_data"])
                slot.info["ships"] = slot.ship
            if waiting and time.monotonic() > deadline:
                raise SegLensError(
                    f"Ray could not start {len(waiting)} of {len(self.slots)} workers of {self.plan.cpus} "
                    f"CPUs in {_START_TIMEOUT_S:.0f} s: the cluster's CPUs are busy "
                    "(try --ray-cpus-per-worker)"
                )
        return [slot.info for slot in self.slots]

    def replace(self, slot: _Slot, actor: Any, exc: BaseException) -> None:
        """A new actor in the place of one that died for good (once, however many tasks it held)."""
        if slot.actor is not actor:
            return
        self.replaced += 1
        if self.replaced > 2 * len(self.slots) + 2:
            raise SegLensError(f"Ray workers keep dying ({self.replaced} replaced; last: {exc})")
        self._kill(actor)
        slot.actor = self._cls.remote(self.spec)  # its dead twin's tasks each fail and are counted off

    def shutdown(self) -> None:
        """Kill every actor: nothing of this run keeps running on the cluster (cancel, error or end)."""
        for slot in self.slots:
            self._kill(slot.actor)
        self.slots = []

    def _kill(self, actor: Any) -> None:
        with contextlib.suppress(Exception):  # already gone, or the cluster with it
            self.ray.kill(actor, no_restart=True)


class _Edited:
    """Edited ground truth, read by the driver (which holds the project) and sent with each edited image."""

    def __init__(self, dataset: Dataset, refs: Sequence[SampleRef]) -> None:
        from app.core.storage.edited import EditedDataset

        self.dataset = dataset if isinstance(dataset, EditedDataset) else None
        self.keys = set(self.dataset.edited_keys(list(refs))) if self.dataset is not None else set()

    def packed(self, ref: SampleRef) -> Packed | None:
        if self.dataset is None or ref.key not in self.keys:
            return None
        gt = self.dataset.project.load_gt(ref, self.dataset.gt_scheme, use_edited=True)
        return None if gt is None else pack(gt)


def _template(dataset: Dataset) -> Dataset:
    """The dataset as a worker needs it: its class and label scheme, without the listing (and without a
    project's edits, which the driver sends)."""
    base = dataset
    while getattr(base, "base", None) is not None:
        base = base.base  # type: ignore[attr-defined]
    template = copy.copy(base)
    template.refs = []
    vars(template)["_by_key"] = None
    return template


def _absolute(model: str) -> str:
    path = Path(model)
    # absolute(), not resolve(): a symlinked model keeps its name and the manifest beside it
    return str(path.absolute()) if path.exists() else model  # a URL or a missing file: as given


def model_files(models: Sequence[str]) -> list[tuple[str, bytes]]:
    """The files the models are read from (absolute path, bytes): a model file and the manifest beside
    it, a manifest and the model file it names, or every file of a model folder."""
    from app.inference.manifest import MANIFEST_SUFFIXES, find_manifest, load_manifest

    paths: list[Path] = []
    for model in models:
        path = Path(model)
        if path.is_dir():
            paths += [p for p in sorted(path.rglob("*")) if p.is_file()]
        elif path.is_file():
            paths.append(path)
            beside = find_manifest(path)
            if beside is not None:
                paths.append(beside)
            if path.name.lower().endswith(MANIFEST_SUFFIXES):
                target = load_manifest(path).path
                if target is not None and target.is_file():
                    paths.append(target)
    files: dict[str, bytes] = {}
    for path in paths:
        try:
            files[str(path.absolute())] = path.read_bytes()
        except OSError as exc:
            raise InputError(path, f"cannot read the model file to send to the Ray workers: {exc}") from exc
    return sorted(files.items())


def _files_key(files: Sequence[tuple[str, bytes]]) -> str:
    digest = hashlib.sha256()
    for name, data in files:
        digest.update(name.encode())
        digest.update(hashlib.sha256(data).digest())
    return digest.hexdigest()[:20]


def _probe(refs: Sequence[SampleRef]) -> tuple[str, int] | None:
    """A file of the dataset and its size, as the driver sees it: a worker seeing the same is on a shared
    filesystem."""
    for ref in refs[:1]:
        try:
            return str(ref.image_path), ref.image_path.stat().st_size
        except OSError:
            return None
    return None


def _read_files(ref: SampleRef) -> dict[str, Shipped]:
    """The encoded bytes of a sample's files, for a worker that cannot see them; a missing file or a
    folder is sent as such, so the worker's message is a local run's."""
    files: dict[str, Shipped] = {}
    for name in PATH_FIELDS:
        path = getattr(ref, name)
        if path is None:
            continue
        try:
            files[name] = ("file", path.read_bytes())
        except IsADirectoryError:
            files[name] = ("dir", b"")
        except OSError:
            files[name] = ("missing", b"")
    return files


def _rebuild(evaluator: Evaluator, result: TaskResult) -> SampleOutcome:
    """The outcome as a local run gives it: predictions unpacked, saved by the driver, cache use added."""
    outcome = result.outcome
    for predictor, (hits, misses) in zip(evaluator.predictors, result.cache, strict=False):
        if hasattr(predictor, "hits") and hasattr(predictor, "misses"):
            predictor.hits += hits
            predictor.misses += misses
    if result.predictions is None:
        return outcome
    predictions = tuple(None if p is None else unpack(p) for p in result.predictions)
    errors = list(outcome.errors)
    if evaluator.save_predictions is not None:
        for i, (predictor, ids) in enumerate(zip(evaluator.predictors, predictions, strict=True)):
            if ids is not None:
                try:
                    write_label_png(
                        prediction_path(evaluator.save_predictions, predictor.info.name, outcome.ref), ids
                    )
                except Exception as exc:  # as in a local run: this model's error on this image
                    errors[i] = error_text(outcome.ref, exc)
    return dataclasses.replace(outcome, predictions=predictions, errors=tuple(errors))


def engine_for_window(
    address: str, dataset: Dataset, predictors: Sequence[SamplePredictor], scheme: EvalScheme
) -> RayEngine:
    """A Ray engine for models the window has open: workers open the same sources (model files,
    manifests, prediction folders) and use the same prediction cache folder. `address` 'local': $RAY_ADDRESS
    or a Ray started here."""
    from app.evaluation.service import CachePolicy, EvaluationRequest, RayOptions

    models: list[str] = []
    folders: list[str] = []
    slots: list[tuple[bool, int]] = []  # (is a folder, its index among its kind), per predictor
    cache = CachePolicy()
    for predictor in predictors:
        store = getattr(predictor, "cache", None)
        if isinstance(store, PredictionCache):
            cache = CachePolicy(use=True, folder=store.root, max_bytes=store.max_bytes)
        kind = folders if predictor.info.backend == "files" else models
        slots.append((kind is folders, len(kind)))
        kind.append(predictor.info.source)
    request = EvaluationRequest(
        dataset=dataset.root,
        models=tuple(models),
        predictions=tuple(folders),
        gt_scheme=dataset.gt_scheme,
        scheme=scheme.key if scheme.is_cityscapes else None,
        cache=cache,
        engine="ray",
        ray=RayOptions(address=None if address == "local" else address),
    )
    # Workers open models first, then folders: map the window's order onto theirs.
    order = tuple(index + (len(models) if is_folder else 0) for is_folder, index in slots)
    return RayEngine(request, order=order)
