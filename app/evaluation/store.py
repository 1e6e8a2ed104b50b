"""The prediction store: recent predictions in memory in front of the on-disk cache, under one key (model
digest, image pixels, preprocessing); and a SamplePredictor that answers from it and predicts only on a
miss."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np

from app.core.io.datasets import Sample
from app.core.runtime.lru import LruCache
from app.core.storage.prediction_cache import CachedMask, CacheKey, PredictionCache
from app.evaluation.predictors import SamplePredictor, begin_prediction
from app.inference.base import ModelInfo, PendingPrediction, Prediction, Timings


def preprocessing_key(info: ModelInfo) -> str:
    """Everything besides the model file that changes what a prediction is: the input handling (a manifest
    beside the same file may change size or normalization), the output kind and the class list."""
    text = repr((info.backend, asdict(info.input), info.output, info.class_names, info.scheme))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_MAX_DIGESTS = 200_000  # ~40 MB of remembered image digests at most


class PredictionStore:
    """One store for the window and every command: a bytes-bounded LRU of recent predictions in memory in
    front of the disk cache (optional), both under the same CacheKey. Same `get`/`put` as PredictionCache,
    so a CachedPredictor takes either. Safe to share between worker threads."""

    def __init__(self, disk: PredictionCache | None, memory_bytes: int = 48 * 1024 * 1024) -> None:
        self.disk = disk
        # Image file -> its pixels' digest: the key needs it, and hashing 6 MB of pixels again each time an
        # image is shown costs more than the lookup. Keyed by path, size and mtime, so a changed file misses.
        self._digests: dict[tuple[str, int, int], str] = {}
        self._digest_lock = threading.Lock()
        # Tuples, not CachedMask: the LRU measures arrays inside tuples, so the bound is in real bytes.
        self.memory: LruCache[tuple[np.ndarray, tuple[float, float, float]]] = LruCache(memory_bytes)

    def get(self, key: CacheKey) -> CachedMask | None:
        """From memory, else from disk (then kept in memory: it is likely asked for again soon)."""
        held = self.memory.get(key)
        if held is not None:
            return CachedMask(*held)
        entry = self.disk.get(key) if self.disk is not None else None
        if entry is not None:
            self.memory.put(key, (entry.labels, entry.timings))
        return entry

    def put(self, key: CacheKey, labels: np.ndarray, timings: tuple[float, float, float]) -> None:
        """Keep a prediction in memory and on disk."""
        self.memory.put(key, (labels, timings))
        if self.disk is not None:
            self.disk.put(key, labels, timings)

    def clear_memory(self) -> None:
        """Forget the in-memory copies (the disk keeps them)."""
        self.memory.clear()

    def digest_of(self, sample: Sample) -> str:
        """The sample's image digest, computed once per image file (while the file is unchanged)."""
        try:
            stat = Path(sample.ref.image_path).stat()
        except OSError:
            return sample.image_digest
        key = (str(sample.ref.image_path), stat.st_size, stat.st_mtime_ns)
        with self._digest_lock:
            known = self._digests.get(key)
        if known is not None:
            return known
        digest = sample.image_digest
        with self._digest_lock:
            if len(self._digests) >= _MAX_DIGESTS:
                self._digests.clear()  # rare (that many images in one session): start again
            self._digests[key] = digest
        return digest


class CachedPredictor:
    """Wraps a predictor; predictions of models without a digest (saved-mask folders) are not cached,
    since reading the file again is as cheap as reading the cache."""

    def __init__(self, predictor: SamplePredictor, cache: PredictionCache | PredictionStore) -> None:
        self.predictor = predictor
        self.cache = cache
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()
        self._preprocessing = preprocessing_key(predictor.info)
        self.on_count: Callable[[bool], None] | None = None  # told of each hit (True) or miss (False)

    @property
    def info(self) -> ModelInfo:
        return self.predictor.info

    @property
    def enabled(self) -> bool:
        """False when the model has no digest to key on."""
        return bool(self.predictor.info.digest)

    def predict_sample(self, sample: Sample) -> Prediction:
        """The cached prediction of `sample` (with the timings measured when it was made), or a new one."""
        begun = self.begin_sample(sample)
        return begun if isinstance(begun, Prediction) else begun.finish(begun.infer())

    def lookup(self, sample: Sample) -> Prediction | None:
        """The stored prediction of `sample`, or None: never runs the model. Predictors without a digest
        (saved-mask folders) are read directly, which is as cheap as a lookup."""
        if not self.enabled:
            return self.predictor.predict_sample(sample)
        entry = self.cache.get(self._key(sample))
        if entry is None or entry.labels.shape != sample.image.shape[:2]:
            return None
        self._count(hit=True)
        return Prediction(labels=entry.labels, timings=Timings(*entry.timings))

    def begin_sample(self, sample: Sample) -> Prediction | PendingPrediction:
        """A cache hit, or the wrapped predictor's pending prediction, stored in the cache when finished."""
        if not self.enabled:
            return begin_prediction(self.predictor, sample)
        found = self.lookup(sample)
        if found is not None:
            return found
        key = self._key(sample)
        begun = begin_prediction(self.predictor, sample)
        if isinstance(begun, Prediction):
            self._store(key, begun)
            return begun
        inner = begun

        def finish(raw: object) -> Prediction:
            prediction = inner.finish(raw)
            self._store(key, prediction)
            return prediction

        return PendingPrediction(infer=inner.infer, finish=finish)

    def _key(self, sample: Sample) -> CacheKey:
        digest_of = getattr(self.cache, "digest_of", None)  # the store remembers digests per file
        image = digest_of(sample) if digest_of is not None else sample.image_digest
        return CacheKey(self.info.digest, image, self._preprocessing)

    def _store(self, key: CacheKey, prediction: Prediction) -> None:
        self._count(hit=False)
        t = prediction.timings
        if prediction.labels.ndim == 2 and prediction.labels.dtype.name == "uint8":
            self.cache.put(key, prediction.labels, (t.preprocess_ms, t.inference_ms, t.postprocess_ms))

    def _count(self, *, hit: bool) -> None:
        with self._lock:
            if hit:
                self.hits += 1
            else:
                self.misses += 1
        if self.on_count is not None:
            self.on_count(hit)
