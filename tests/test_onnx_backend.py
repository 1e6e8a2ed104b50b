"""The ONNX backend, manifests and the registry, on real ONNX files built by tests/modelzoo.py."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import modelzoo as mz
import numpy as np
import onnxruntime as ort
import pytest

from app.core.domain.errors import InputError, ModelLoadError
from app.core.domain.labels import CATEGORIES, TRAINIDS
from app.inference.backends.onnx_backend import THREADS_ENV, OnnxSegmenter, inference_threads
from app.inference.base import Segmenter
from app.inference.manifest import find_manifest, load_manifest
from app.inference.postprocess import upsample_argmax_naive
from app.inference.registry import load_model, supported_suffixes

BLOCK = 32


def block_scene(rows: int, cols: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An image of BLOCK x BLOCK squares painted with trainId colours, and the trainId of each pixel."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, TRAINIDS.num_classes, size=(rows, cols))
    truth = np.repeat(np.repeat(ids, BLOCK, axis=0), BLOCK, axis=1).astype(np.uint8)
    image = np.asarray(TRAINIDS.colors, dtype=np.uint8)[truth]
    return image, truth


def interior(truth: np.ndarray, margin: int = 10) -> np.ndarray:
    """Pixels at least `margin` away from every block edge (where resizing cannot blur classes)."""
    pos_y = np.arange(truth.shape[0]) % BLOCK
    pos_x = np.arange(truth.shape[1]) % BLOCK
    ok_y = (pos_y >= margin) & (pos_y < BLOCK - margin)
    ok_x = (pos_x >= margin) & (pos_x < BLOCK - margin)
    return ok_y[:, None] & ok_x[None, :]


def centroid_model(path: Path, **kwargs) -> Path:
    order = kwargs.get("channel_order", "RGB")
    kwargs.setdefault("input_size", (64, 128))
    centroids = mz.centroids_from_colors(TRAINIDS.colors, channel_order=order)
    return mz.make_onnx_segmenter(path, TRAINIDS.names, weights="centroid", centroids=centroids, **kwargs)


def assert_segments_scene(model: Segmenter, rows: int = 4, cols: int = 8) -> np.ndarray:
    image, truth = block_scene(rows, cols)
    labels = model.predict(image).labels
    assert labels.shape == truth.shape and labels.dtype == np.uint8
    inside = interior(truth)
    np.testing.assert_array_equal(labels[inside], truth[inside])
    return labels


# --- working models ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"layout": "NHWC"},
        {"channel_order": "BGR"},
        {"output": "probabilities"},
        {"output": "probabilities", "layout": "NHWC"},
        {"output": "labels"},
        {"output": "labels", "labels_keepdims": True},
        {"input_dtype": "uint8"},
        {"input_dtype": "uint8", "layout": "NHWC", "channel_order": "BGR"},
    ],
    ids=lambda kw: "-".join(f"{k}={v}" for k, v in kw.items()) or "default",
)
def test_centroid_model_segments_synthetic_scene(tmp_path, kwargs):
    model = load_model(centroid_model(tmp_path / "m.onnx", **kwargs))
    assert model.info.scheme == "trainids"
    assert model.info.output == kwargs.get("output", "logits")
    assert model.info.input.layout == kwargs.get("layout", "NCHW")
    assert model.info.input.dtype == kwargs.get("input_dtype", "float32")
    assert model.info.input.channel_order == kwargs.get("channel_order", "RGB")
    assert_segments_scene(model)
    model.close()


def test_metadata_is_read(tmp_path):
    path = mz.make_onnx_segmenter(
        tmp_path / "m.onnx", CATEGORIES.names, mean=(0.5, 0.5, 0.5), std=(0.25, 0.5, 1.0), scale=1 / 127.5
    )
    info = load_model(path).info
    assert info.class_names == CATEGORIES.names and info.scheme == "categories"
    assert info.input.mean == (0.5, 0.5, 0.5) and info.input.std == (0.25, 0.5, 1.0)
    assert info.input.scale == pytest.approx(1 / 127.5)
    assert (info.input.height, info.input.width, info.input.resize) == (64, 128, "fixed")
    assert info.name == "m" and info.backend == "onnx" and info.source == str(path)
    assert info.file_size == path.stat().st_size


def test_prepare_normalizes_in_float32(tmp_path):
    path = mz.make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names, channel_order="BGR", layout="NHWC")
    model = OnnxSegmenter(path)
    image = np.random.default_rng(0).integers(0, 256, size=(64, 128, 3), dtype=np.uint8)
    tensor = model.prepare(image)
    assert tensor.dtype == np.float32 and tensor.shape == (1, 64, 128, 3)
    spec = model.info.input
    expected = (image[:, :, ::-1] * spec.scale - np.array(spec.mean)) / np.array(spec.std)
    np.testing.assert_allclose(tensor[0], expected, rtol=1e-6, atol=1e-6)


def test_timings_around_the_model_call_count_work_not_waiting(tmp_path, monkeypatch):
    """Resizing and upsampling are timed in thread CPU time: in an evaluation they wait for a core at low
    priority beside inference, and that wait must not show up as the model's latency. A sleep stands in
    for the wait."""
    import time

    from app.inference import preprocess
    from app.inference.backends import onnx_backend

    model = load_model(mz.make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names, input_size=(64, 128)))
    real_upsample, real_resize = onnx_backend.upsample_argmax, preprocess.resize_rgb

    def waiting(real):
        return lambda *args, **kwargs: (time.sleep(0.3), real(*args, **kwargs))[1]

    monkeypatch.setattr(onnx_backend, "upsample_argmax", waiting(real_upsample))
    monkeypatch.setattr(preprocess, "resize_rgb", waiting(real_resize))
    image, _ = block_scene(4, 8)
    start = time.perf_counter()
    timings = model.predict(image).timings
    assert time.perf_counter() - start >= 0.6
    assert timings.preprocess_ms < 150 and timings.postprocess_ms < 150
    assert timings.inference_ms > 0


def test_predict_equals_session_plus_full_upsampling(tmp_path):
    path = mz.make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names, input_size=(64, 128), seed=3)
    model = OnnxSegmenter(path)
    image = np.random.default_rng(1).integers(0, 256, size=(150, 270, 3), dtype=np.uint8)
    tensor = model.prepare(image).copy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"image": tensor})[0]
    prediction = model.predict(image)
    np.testing.assert_array_equal(prediction.labels, upsample_argmax_naive(logits[0], (150, 270)))
    assert prediction.scores is None
    timings = prediction.timings
    assert min(timings.preprocess_ms, timings.inference_ms, timings.postprocess_ms) >= 0
    assert timings.total_ms == pytest.approx(
        timings.preprocess_ms + timings.inference_ms + timings.postprocess_ms
    )


def test_uint8_model_agrees_with_float_model(tmp_path):
    floating = load_model(centroid_model(tmp_path / "f.onnx", input_size=None))
    raw = load_model(centroid_model(tmp_path / "u.onnx", input_size=None, input_dtype="uint8"))
    image = np.random.default_rng(4).integers(0, 256, size=(61, 93, 3), dtype=np.uint8)
    same = floating.predict(image).labels == raw.predict(image).labels
    assert same.mean() > 0.999  # float rounding inside vs outside the graph may flip exact near-ties


@pytest.mark.parametrize("size", [(96, 160), (77, 133), (128, 256)])
def test_dynamic_input_accepts_any_image_size(tmp_path, size):
    model = load_model(centroid_model(tmp_path / "d.onnx", input_size=None, downsample=3))
    assert model.info.input.resize == "any" and model.info.input.height is None
    image, truth = block_scene(4, 8)
    image, truth = image[: size[0], : size[1]], truth[: size[0], : size[1]]
    labels = model.predict(np.ascontiguousarray(image)).labels
    assert labels.shape == size
    inside = interior(truth)
    np.testing.assert_array_equal(labels[inside], truth[inside])


def test_dynamic_random_model_output_at_image_resolution(tmp_path):
    model = load_model(mz.make_onnx_segmenter(tmp_path / "r.onnx", TRAINIDS.names, input_size=None))
    for shape in [(33, 47, 3), (64, 64, 3), (5, 9, 3)]:
        labels = model.predict(np.full(shape, 100, dtype=np.uint8)).labels
        assert labels.shape == shape[:2] and labels.max() < 19


def test_multiple_policy_from_manifest(tmp_path):
    path = centroid_model(tmp_path / "m.onnx", input_size=None)
    (tmp_path / "m.yaml").write_text(
        "name: multi\nkind: onnx\npath: m.onnx\nresize: multiple\nsize_multiple: 16\n"
    )
    model = load_model(path)
    assert model.info.name == "multi" and model.info.input.resize == "multiple"
    assert isinstance(model, OnnxSegmenter)
    assert model.input_size_for(100, 250) == (96, 256)
    assert model.input_size_for(3, 5) == (16, 16)
    assert_segments_scene(model)


def test_no_metadata_infers_scheme_from_class_count(tmp_path):
    for names, key in [(TRAINIDS.names, "trainids"), (CATEGORIES.names, "categories")]:
        path = mz.make_onnx_segmenter(tmp_path / f"{key}.onnx", names, metadata=False)
        info = load_model(path).info
        assert info.scheme == key and info.class_names == names
        assert info.input.mean == (0.485, 0.456, 0.406)  # defaults when nothing says otherwise


def test_manifest_beside_model_gives_class_names(tmp_path):
    names = ["background", "road", "car", "person", "sky"]
    path = mz.make_onnx_segmenter(tmp_path / "five.onnx", names, metadata=False)
    with pytest.raises(ModelLoadError, match="manifest") as err:
        load_model(path)
    assert str(path) in str(err.value)
    (tmp_path / "five.json").write_text(
        json.dumps({"name": "Five", "path": "five.onnx", "class_names": names})
    )
    info = load_model(path).info
    assert info.class_names == tuple(names) and info.scheme == "custom:Five" and info.name == "Five"


def test_manifest_with_custom_scheme_file(tmp_path):
    classes = [{"name": n, "color": [10 * i, 0, 0]} for i, n in enumerate(["a", "b", "c"])]
    (tmp_path / "scheme.json").write_text(json.dumps({"name": "abc", "classes": classes}))
    mz.make_onnx_segmenter(tmp_path / "abc.onnx", ["x", "y", "z"], metadata=False)
    (tmp_path / "abc.yml").write_text("kind: onnx\npath: abc.onnx\nscheme: scheme.json\n")
    info = load_model(tmp_path / "abc.onnx").info
    assert info.class_names == ("a", "b", "c") and info.scheme == "custom:abc"


def test_loading_manifest_opens_model_and_overrides_metadata(tmp_path):
    # The metadata is wrong about normalization; the manifest corrects it.
    path = centroid_model(tmp_path / "models" / "scene.onnx", metadata={"seglens.mean": "[0.1, 0.9, 0.1]"})
    image, truth = block_scene(4, 8)
    wrong = load_model(path).predict(image).labels
    assert (wrong != truth)[interior(truth)].mean() > 0.2
    manifest = tmp_path / "scene.yaml"
    manifest.write_text("name: scene\nkind: onnx\npath: models/scene.onnx\nmean: [0.485, 0.456, 0.406]\n")
    model = load_model(manifest)
    assert model.info.source == str(path.resolve())
    assert_segments_scene(model)


def test_manifest_scheme_overrides_metadata_class_names(tmp_path):
    path = mz.make_onnx_segmenter(tmp_path / "m.onnx", [f"c{i}" for i in range(8)])
    (tmp_path / "m.manifest.json").write_text(json.dumps({"path": "m.onnx", "scheme": "categories"}))
    assert find_manifest(path) == tmp_path / "m.manifest.json"
    assert load_model(path).info.class_names == CATEGORIES.names


def test_digest_is_sha256_and_stable(tmp_path):
    path = mz.make_onnx_segmenter(tmp_path / "a.onnx", TRAINIDS.names, seed=1)
    other = mz.make_onnx_segmenter(tmp_path / "b.onnx", TRAINIDS.names, seed=2)
    first, second = load_model(path).info.digest, load_model(path).info.digest
    assert first == second == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_model(other).info.digest != first


def test_predict_from_two_threads_gives_identical_results(tmp_path):
    model = load_model(
        mz.make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names, input_size=None, hidden=16)
    )
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, size=(48 + 8 * i, 80 + 4 * i, 3), dtype=np.uint8) for i in range(6)]
    expected = [model.predict(image).labels for image in images]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda i: model.predict(images[i % 6]).labels, range(36)))
    for i, labels in enumerate(results):
        np.testing.assert_array_equal(labels, expected[i % 6])


@pytest.mark.parametrize(("value", "threads"), [(None, 0), ("1", 1), ("3", 3), ("all", 0), ("-2", 0)])
def test_inference_threads_come_from_the_environment(tmp_path, monkeypatch, caplog, value, threads):
    if value is None:
        monkeypatch.delenv(THREADS_ENV, raising=False)
    else:
        monkeypatch.setenv(THREADS_ENV, value)
    model = load_model(mz.make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names))
    assert model._session.get_session_options().intra_op_num_threads == threads
    assert inference_threads() == threads
    # A value that is not a thread count is reported, and the model still opens with all cores.
    assert (THREADS_ENV in caplog.text) == (value in ("all", "-2"))
    image, _ = block_scene(2, 3)
    assert model.predict(image).labels.shape == image.shape[:2]


def test_close_is_idempotent_and_predict_after_close_fails(tmp_path):
    model = load_model(mz.make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names))
    model.close()
    model.close()
    with pytest.raises(Exception, match="closed"):
        model.predict(np.zeros((8, 8, 3), dtype=np.uint8))


def test_bad_image_is_refused(tmp_path):
    model = load_model(mz.make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names))
    for bad in [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 3), np.float32)]:
        with pytest.raises(InputError, match="HxWx3 RGB uint8"):
            model.predict(bad)


# --- load-time errors -------------------------------------------------------------------------------


def _load_error(path: Path) -> str:
    with pytest.raises(ModelLoadError) as err:
        load_model(path)
    message = str(err.value)
    assert str(path) in message, message
    return message


def test_text_file_is_not_an_onnx_model(tmp_path):
    assert "not an ONNX model" in _load_error(mz.make_text_file(tmp_path / "notes.onnx"))


def test_truncated_model_is_refused(tmp_path):
    good = mz.make_onnx_segmenter(tmp_path / "good.onnx", TRAINIDS.names, hidden=32)
    message = _load_error(mz.make_truncated_model(tmp_path / "bad.onnx", good))
    assert "ONNX" in message or "onnxruntime" in message


def test_graph_without_input(tmp_path):
    assert "one image input" in _load_error(mz.make_no_input_model(tmp_path / "m.onnx"))


def test_two_channel_input(tmp_path):
    assert "3 colour channels" in _load_error(mz.make_two_channel_model(tmp_path / "m.onnx"))


def test_rank3_input(tmp_path):
    assert "rank 4" in _load_error(mz.make_rank3_input_model(tmp_path / "m.onnx"))


def test_wrong_output_rank(tmp_path):
    message = _load_error(mz.make_wrong_rank_model(tmp_path / "m.onnx"))
    assert "rank 4" in message and "[1, 19]" in message


def test_class_count_differs_from_class_names(tmp_path):
    path = mz.make_onnx_segmenter(
        tmp_path / "m.onnx",
        TRAINIDS.names,
        metadata={"seglens.class_names": json.dumps(list(CATEGORIES.names))},
    )
    message = _load_error(path)
    assert "19 classes" in message and "8 class names" in message


def test_bad_metadata_value(tmp_path):
    path = mz.make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names, metadata={"seglens.std": "[1, 0, 1]"})
    assert "seglens.std" in _load_error(path)


def test_manifest_input_size_conflicts_with_graph(tmp_path):
    path = mz.make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names, input_size=(64, 128))
    (tmp_path / "m.yaml").write_text("kind: onnx\npath: m.onnx\ninput_size: 512x1024\n")
    assert "input_size 512x1024" in _load_error(path)


def test_fixed_policy_without_size_on_dynamic_model(tmp_path):
    path = mz.make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names, input_size=None)
    (tmp_path / "m.json").write_text(json.dumps({"path": "m.onnx", "resize": "fixed"}))
    assert "input_size" in _load_error(path)


def test_unknown_manifest_key_names_file_and_key(tmp_path):
    mz.make_onnx_segmenter(tmp_path / "m.onnx", TRAINIDS.names)
    manifest = tmp_path / "m.yaml"
    manifest.write_text("kind: onnx\npath: m.onnx\nnormalise: true\n")
    with pytest.raises(InputError, match="normalise") as err:
        load_manifest(manifest)
    assert str(manifest) in str(err.value)
    assert "normalise" in _load_error(manifest)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("kind: onnx\n", "needs 'path'"),
        ("path: m.onnx\nmean: [1, 2]\n", "three numbers"),
        ("path: m.onnx\nlayout: CHW\n", "NCHW, NHWC"),
        ("path: m.onnx\nscheme: cityscapes\n", "scheme"),
        ("path: m.onnx\nclass_names: [a]\nscheme: trainids\n", "not both"),
        ("[1, 2, 3]\n", "mapping"),
        ("path: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_manifests(tmp_path, text, problem):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(text)
    with pytest.raises(InputError, match=problem) as err:
        load_manifest(manifest)
    assert str(manifest) in str(err.value)


def test_manifest_parses_fields(tmp_path):
    manifest = tmp_path / "sub" / "m.json"
    manifest.parent.mkdir()
    manifest.write_text(
        json.dumps(
            {
                "name": "x",
                "kind": "onnx",
                "path": "../model.onnx",
                "input_size": "512x1024",
                "scale": "1/255",
                "channel_order": "bgr",
                "mean": 0.5,
                "options": {"threads": 2},
            }
        )
    )
    m = load_manifest(manifest)
    assert m.path == (tmp_path / "model.onnx").resolve() and m.input_size == (512, 1024)
    assert m.scale == pytest.approx(1 / 255) and m.channel_order == "BGR" and m.mean == (0.5, 0.5, 0.5)
    assert m.options == {"threads": 2} and m.std is None and m.source == manifest


def test_unknown_suffix_lists_supported(tmp_path):
    message = _load_error(mz.make_text_file(tmp_path / "model.pt"))
    assert ".onnx" in message and ".yaml" in message


def test_unknown_kind_and_missing_file(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text("kind: caffe\npath: m.caffemodel\n")
    assert "caffe" in _load_error(manifest)
    assert "no such file" in _load_error(tmp_path / "missing.onnx")


def test_supported_suffixes():
    suffixes = supported_suffixes()
    assert ".onnx" in suffixes and ".json" in suffixes and ".yaml" in suffixes
    assert all(s.startswith(".") and s == s.lower() for s in suffixes)
