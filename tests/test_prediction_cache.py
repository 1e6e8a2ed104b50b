"""The on-disk prediction cache and the CachedPredictor that wraps a model with it."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.core.io.datasets import Sample, SampleRef
from app.core.storage.prediction_cache import CacheKey, PredictionCache, image_digest
from app.evaluation.store import CachedPredictor
from app.inference.base import InputSpec, ModelInfo, Prediction, Timings


def _labels(seed: int, shape: tuple[int, int] = (24, 40)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 19, shape, dtype=np.uint8)


def _key(n: int) -> CacheKey:
    return CacheKey("model", f"image{n}", "pre")


def test_put_get_roundtrip_keeps_labels_and_timings(tmp_path) -> None:
    cache = PredictionCache(tmp_path)
    labels = _labels(1)
    assert cache.get(_key(1)) is None
    cache.put(_key(1), labels, (1.5, 20.25, 0.125))
    entry = cache.get(_key(1))
    assert entry is not None
    np.testing.assert_array_equal(entry.labels, labels)
    assert entry.timings == (1.5, 20.25, 0.125)
    assert cache.get(CacheKey("model", "image1", "other preprocessing")) is None
    # A second cache object on the same folder (the next run) sees the entry and its size.
    again = PredictionCache(tmp_path)
    assert again.get(_key(1)) is not None
    assert again.size_bytes == cache.size_bytes == cache.path_for(_key(1)).stat().st_size


def test_corrupt_entry_is_a_miss_and_removed(tmp_path) -> None:
    cache = PredictionCache(tmp_path)
    cache.put(_key(1), _labels(1), (0.0, 1.0, 0.0))
    path = cache.path_for(_key(1))
    good = path.read_bytes()
    for bad in (b"\x89PNG\r\n\x1a\n truncated", good[:20], good[:-5], b"XXXX" + good[4:]):
        path.write_bytes(bad)
        assert cache.get(_key(1)) is None
        assert not path.exists()


def test_put_refuses_non_label_arrays(tmp_path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        PredictionCache(tmp_path).put(_key(1), np.zeros((4, 4), np.int32), (0.0, 0.0, 0.0))


def test_bounded_size_evicts_least_recently_used(tmp_path) -> None:
    probe = PredictionCache(tmp_path / "probe")
    probe.put(_key(0), _labels(0), (0.0, 0.0, 0.0))
    entry_size = probe.size_bytes
    # Room for three entries (plus slack below the 90% low-water mark), not four.
    cache = PredictionCache(tmp_path / "cache", max_bytes=int(entry_size * 3.5))
    for n in (1, 2, 3):
        cache.put(_key(n), _labels(n), (0.0, 0.0, 0.0))
    base = 1_000_000_000
    for n in (1, 2, 3):  # explicit ages: 1 oldest, 3 newest
        os.utime(cache.path_for(_key(n)), (base + n, base + n))
    assert cache.get(_key(1)) is not None  # using entry 1 makes entry 2 the least recently used
    cache.put(_key(4), _labels(4), (0.0, 0.0, 0.0))
    assert cache.size_bytes <= cache.max_bytes
    assert cache.get(_key(2)) is None
    assert all(cache.get(_key(n)) is not None for n in (1, 4))
    assert len(cache) == 3
    assert cache.size_bytes == sum(cache.path_for(_key(n)).stat().st_size for n in (1, 3, 4))


def test_image_digest_depends_on_pixels_and_shape() -> None:
    image = np.random.default_rng(0).integers(0, 255, (8, 12, 3), dtype=np.uint8)
    assert image_digest(image) == image_digest(image.copy())
    changed = image.copy()
    changed[0, 0, 0] ^= 1
    assert image_digest(changed) != image_digest(image)
    assert image_digest(image.reshape(12, 8, 3)) != image_digest(image)
    assert image_digest(image[:, ::-1]) == image_digest(np.ascontiguousarray(image[:, ::-1]))


class _Counting:
    """A real predictor-like object: labels from the image, counting its calls."""

    def __init__(self, digest: str = "abc", resize: str = "any") -> None:
        self.calls = 0
        self._info = ModelInfo(
            name="m", backend="onnx", source="m.onnx", class_names=("a", "b"), scheme="custom:x",
            input=InputSpec(None, None, resize=resize),  # type: ignore[arg-type]
            output="labels", file_size=1, digest=digest,
        )  # fmt: skip

    @property
    def info(self) -> ModelInfo:
        return self._info

    def predict_sample(self, sample: Sample) -> Prediction:
        self.calls += 1
        labels = (sample.image[..., 0] > 127).astype(np.uint8)
        return Prediction(labels, Timings(1.0, 10.0 + self.calls, 2.0))


def _sample(seed: int) -> Sample:
    image = np.random.default_rng(seed).integers(0, 255, (16, 20, 3), dtype=np.uint8)
    ref = SampleRef(f"k{seed}", Path(f"{seed}.png"), None, None, None, None, f"k{seed}")
    return Sample(ref, image, None, None)


def test_cached_predictor_predicts_once_per_image(tmp_path) -> None:
    inner = _Counting()
    cached = CachedPredictor(inner, PredictionCache(tmp_path))
    first = cached.predict_sample(_sample(1))
    second = cached.predict_sample(_sample(1))
    cached.predict_sample(_sample(2))
    assert inner.calls == 2 and (cached.hits, cached.misses) == (1, 2)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert second.timings == first.timings  # the latency measured then, not the cache read time
    # Another wrapper over the same folder (a re-run) needs no inference at all.
    again = CachedPredictor(_Counting(), PredictionCache(tmp_path))
    again.predict_sample(_sample(1))
    assert again.predictor.calls == 0 and again.hits == 1  # type: ignore[attr-defined]


def test_other_preprocessing_or_model_is_a_miss(tmp_path) -> None:
    cache = PredictionCache(tmp_path)
    CachedPredictor(_Counting(), cache).predict_sample(_sample(1))
    for other in (_Counting(digest="different"), _Counting(resize="fixed")):
        wrapper = CachedPredictor(other, cache)
        wrapper.predict_sample(_sample(1))
        assert other.calls == 1 and wrapper.hits == 0


def test_models_without_digest_are_not_cached(tmp_path) -> None:
    inner = _Counting(digest="")
    cached = CachedPredictor(inner, PredictionCache(tmp_path))
    cached.predict_sample(_sample(1))
    cached.predict_sample(_sample(1))
    assert inner.calls == 2 and not cached.enabled
    assert len(PredictionCache(tmp_path)) == 0


def test_info_passes_through(tmp_path) -> None:
    inner = _Counting()
    assert CachedPredictor(inner, PredictionCache(tmp_path)).info == replace(inner.info)
