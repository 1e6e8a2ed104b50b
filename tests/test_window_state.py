"""The window's state and stores without the window: the evented view state, the frozen frame request,
the one prediction store (memory in front of disk) and re-scoring one image in an accumulator."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.storage.prediction_cache import CacheKey, PredictionCache
from app.evaluation.store import PredictionStore


def test_view_state_emits_once_with_the_changed_fields(qtbot) -> None:
    from app.controllers.view_state import FrameRequest, ViewState
    from app.core.domain.labels import eval_scheme_by_key

    state = ViewState()
    seen: list[frozenset[str]] = []
    state.changed.connect(seen.append)
    assert state.update(display_mode="errors", show_gt=False) == frozenset({"display_mode"})
    assert state.update(display_mode="errors") == frozenset()  # no change: no signal
    state.update(scheme=eval_scheme_by_key("categories"), hidden=frozenset({1}))
    assert seen == [frozenset({"display_mode"}), frozenset({"scheme", "hidden"})]
    with pytest.raises(TypeError, match="unknown view fields"):
        state.update(colour="red")
    view = state.view
    a = FrameRequest.of(view, 3, ["d1", "d2"], [0, 1], ("filled",) * 3)
    b = FrameRequest.of(view, 3, ["d1", "d2"], [0, 1], ("filled",) * 3)
    assert a == b and hash(a) == hash(b)  # the request is the frame's cache key
    assert FrameRequest.of(view, 3, ["d1", "d2"], [0, 1], ("filled",) * 3, labels_version=1) != a


def test_prediction_store_answers_from_memory_first_then_disk(tmp_path) -> None:
    disk = PredictionCache(tmp_path / "disk")
    store = PredictionStore(disk, memory_bytes=3 * (64 * 64 + 200))  # three masks and their timings
    keys = [CacheKey("model", f"image{i}", "pre") for i in range(4)]
    labels = [np.full((64, 64), i, np.uint8) for i in range(4)]
    for key, value in zip(keys, labels, strict=True):
        store.put(key, value, (1.0, 2.0, 3.0))
    assert len(store.memory) == 3 and store.memory.size_bytes <= 3 * (64 * 64 + 200)  # real bytes
    assert len(disk) == 4
    got = store.get(keys[0])  # evicted from memory: read from disk, then held in memory again
    assert got is not None and int(got.labels[0, 0]) == 0 and got.timings == (1.0, 2.0, 3.0)
    assert store.memory.get(keys[0]) is not None
    disk.clear()
    assert store.get(keys[0]) is not None  # memory answers without the disk
    assert store.get(CacheKey("model", "never", "pre")) is None
    store.clear_memory()
    assert store.get(keys[0]) is None


def test_replacing_one_image_recomputes_the_sums(tmp_path) -> None:
    from modelzoo import make_onnx_segmenter

    from app.core.domain.labels import TRAINIDS, eval_scheme_by_key
    from app.core.io.datasets import open_dataset
    from app.core.scenes.generator import generate
    from app.evaluation.engine import Evaluator
    from app.evaluation.predictors import SegmenterPredictor, mapping_for
    from app.evaluation.results import count_prediction
    from app.inference.registry import load_model

    dataset = open_dataset(generate(tmp_path / "d", 3, size=(48, 96), seed=5))
    predictor = SegmenterPredictor(
        load_model(make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names, seed=2))
    )
    scheme = eval_scheme_by_key("trainids")
    evaluator = Evaluator(dataset, [predictor], scheme)
    result = evaluator.run()
    live = evaluator.accumulators()[0]
    for image in result.models[0].images.values():
        live.add(image)
    ref = dataset.refs[1]
    sample = dataset.load(ref)
    edited = sample.gt.copy()
    edited[:10] = 26  # car
    import dataclasses

    again, _ = count_prediction(
        dataclasses.replace(sample, gt=edited),
        predictor.predict_sample(sample),
        predictor.info.name,
        mapping_for(predictor.info, dataset.gt_scheme),
        scheme,
    )
    assert live.replace(again)
    expected = np.zeros_like(live.matrix)
    for key, image in live.images.items():
        (again if key == ref.key else image).counts.add_to(expected)
    np.testing.assert_array_equal(live.matrix, expected)
    assert not np.array_equal(live.matrix, result.models[0].matrix)
    missing = dataclasses.replace(again, key="not/scored/yet")
    assert not live.replace(missing)  # never adds: an image not scored yet is left to the evaluation
    predictor.segmenter.close()


def test_the_store_hashes_an_image_file_once_until_it_changes(tmp_path) -> None:
    import os

    from app.core.io.datasets import open_dataset
    from app.core.scenes.generator import generate

    dataset = open_dataset(generate(tmp_path / "d", 1, size=(32, 64), seed=1))
    store = PredictionStore(None)
    ref = dataset.refs[0]
    first = dataset.load(ref)
    assert store.digest_of(first) == first.image_digest
    again = dataset.load(ref)
    assert store.digest_of(again) == first.image_digest and "image_digest" not in again.__dict__  # not hashed
    from PIL import Image

    Image.fromarray(255 - first.image).save(ref.image_path)  # the file changes: hashed anew
    os.utime(ref.image_path, ns=(1, 1))
    changed = dataset.load(ref)
    assert store.digest_of(changed) == changed.image_digest != first.image_digest
