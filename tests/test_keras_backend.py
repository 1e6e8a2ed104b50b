"""The keras backend and the Keras -> ONNX exporter, on real VGG16-UNets (weights=None) in real files."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import require

tf = require("tensorflow")
keras = require("keras")
require("tf2onnx")

import onnx  # noqa: E402
from keras_models import build_vgg16_unet, dice_loss, iou_metric  # noqa: E402

from app.core.domain.errors import ModelLoadError  # noqa: E402
from app.core.domain.labels import CATEGORIES, TRAINIDS  # noqa: E402
from app.core.scenes.generator import render_scene  # noqa: E402
from app.inference.backends.keras_backend import KerasSegmenter, parse_options  # noqa: E402
from app.inference.manifest import load_manifest  # noqa: E402
from app.inference.registry import load_model  # noqa: E402
from app.inference.tools.export_keras import export_keras  # noqa: E402

# Keras' own variable -> numpy conversion on save (keras/src/backend/tensorflow/core.py), not ours.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept:DeprecationWarning")

SIZE = (64, 128)
CAFFE_MEAN = (103.939, 116.779, 123.68)


def write_manifest(path: Path, model: Path, **fields: object) -> Path:
    data = {"name": path.stem, "kind": "keras", "path": str(model), **fields}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def scene(index: int = 0, size: tuple[int, int] = SIZE) -> np.ndarray:
    return render_scene(index, size=size).image


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("keras")


@pytest.fixture(scope="module")
def unet(folder: Path):
    """The baseline VGG16-UNet (8 classes, softmax) at 64x128, saved as .keras and as a compiled .h5."""
    keras.utils.set_random_seed(0)
    model = build_vgg16_unet((*SIZE, 3), 8, width=0.25)
    model.save(folder / "unet.keras")
    # Compiled with custom loss/metric functions, as teams train it: this file only opens with compile=False.
    model.compile(optimizer="adam", loss=dice_loss, metrics=[iou_metric])
    model.save(folder / "unet.h5")
    return model


@pytest.fixture(scope="module")
def segmenter(unet, folder: Path) -> KerasSegmenter:
    model = load_model(folder / "unet.keras")
    assert isinstance(model, KerasSegmenter)
    return model


def reference_scores(model, tensor: np.ndarray) -> np.ndarray:
    return model(tf.constant(tensor), training=False).numpy()


def assert_labels_match(labels: np.ndarray, scores: np.ndarray) -> None:
    """labels == argmax(scores) wherever the top two classes are not within float noise of each other."""
    top2 = np.sort(scores, axis=-1)[..., -2:]
    clear = (top2[..., 1] - top2[..., 0]) > 1e-6
    assert clear.mean() > 0.95  # random weights leave some near-ties; most pixels must be decided
    np.testing.assert_array_equal(labels[clear], np.argmax(scores, axis=-1)[clear])


# --- loading and predicting -------------------------------------------------------------------------------


def test_keras_file_reads_model_facts(segmenter: KerasSegmenter, folder: Path) -> None:
    info = segmenter.info
    path = folder / "unet.keras"
    assert info.backend == "keras" and info.name == "unet"
    assert (info.input.height, info.input.width, info.input.layout) == (*SIZE, "NHWC")
    assert info.input.resize == "fixed"
    assert info.output == "probabilities"  # the softmax head
    assert info.class_names == CATEGORIES.names and info.scheme == "categories"
    assert info.digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.file_size == path.stat().st_size
    # No manifest: plain /255.
    assert (info.input.scale, info.input.mean, info.input.std) == (1 / 255, (0, 0, 0), (1, 1, 1))


def test_predict_gives_labels_at_image_size(segmenter: KerasSegmenter, unet) -> None:
    image = scene(0)
    prediction = segmenter.predict(image)
    assert prediction.labels.shape == SIZE and prediction.labels.dtype == np.uint8
    assert prediction.labels.max() < 8
    scores = reference_scores(unet, image[None].astype(np.float32) / 255.0)[0]
    assert_labels_match(prediction.labels, scores)
    # Another size is resized to the model's input, and the labels come back at the image's size.
    other = segmenter.predict(scene(1, (96, 200))).labels
    assert other.shape == (96, 200) and other.max() < 8


def test_h5_with_custom_loss_opens_with_compile_false(unet, segmenter: KerasSegmenter, folder: Path) -> None:
    path = folder / "unet.h5"
    with pytest.raises(Exception):  # noqa: B017  (Keras' own error for the unknown dice_loss varies)
        keras.models.load_model(str(path))
    model = load_model(path)
    image = scene(2)
    np.testing.assert_array_equal(model.predict(image).labels, segmenter.predict(image).labels)
    assert model.info.digest == hashlib.sha256(path.read_bytes()).hexdigest() != segmenter.info.digest


def test_predict_from_two_threads(segmenter: KerasSegmenter) -> None:
    images = [scene(i) for i in range(4)]
    expected = [segmenter.predict(image).labels for image in images]
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda im: segmenter.predict(im).labels, images * 2))
    for i, labels in enumerate(got):
        np.testing.assert_array_equal(labels, expected[i % 4])


# --- normalization --------------------------------------------------------------------------------------


def test_caffe_normalization_is_vgg_preprocess_input(unet, segmenter: KerasSegmenter, folder: Path) -> None:
    manifest = write_manifest(
        folder / "caffe.json", folder / "unet.keras", options={"normalization": "caffe"}
    )
    caffe = load_model(manifest)
    spec = caffe.info.input
    assert (spec.channel_order, spec.scale, spec.mean, spec.std) == ("BGR", 1.0, CAFFE_MEAN, (1, 1, 1))
    image = scene(3)
    # Keras' own VGG16 preprocessing (RGB -> BGR, minus the ImageNet mean) is the oracle.
    oracle = keras.applications.vgg16.preprocess_input(image[None].astype(np.float32))
    assert isinstance(caffe, KerasSegmenter)
    tensor = caffe.prepare(image)
    np.testing.assert_allclose(tensor, oracle, atol=1e-4)
    caffe_scores = reference_scores(unet, oracle)[0]
    np.testing.assert_allclose(caffe.run(tensor)[0], caffe_scores, atol=1e-5)
    assert_labels_match(caffe.predict(image).labels, caffe_scores)
    # The same weights fed /255 inputs answer differently: the normalization really reaches the model.
    unit_scores = reference_scores(unet, image[None].astype(np.float32) / 255.0)[0]
    assert np.abs(unit_scores - caffe_scores).max() > 0.05
    assert caffe.info.extra["normalization"] == "caffe"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("tf", (np.float32(2 / 127.5 - 1), -1.0)), ("torch", ((2 / 255 - 0.485) / 0.229, -0.485 / 0.229))],
)
def test_other_presets(name: str, expected: tuple[float, float], segmenter, folder: Path) -> None:
    manifest = write_manifest(folder / f"{name}.json", folder / "unet.keras", options={"normalization": name})
    model = load_model(manifest)
    assert isinstance(model, KerasSegmenter)
    image = np.zeros((*SIZE, 3), dtype=np.uint8)
    image[0, 0] = 2
    tensor = model.prepare(image)
    assert tensor[0, 0, 0, 0] == pytest.approx(expected[0], abs=1e-6)
    assert tensor[0, 1, 1, 0] == pytest.approx(expected[1], abs=1e-6)


def test_bad_options_name_the_manifest(folder: Path) -> None:
    source = folder / "m.json"
    with pytest.raises(ModelLoadError, match="normalization") as bad:
        parse_options({"normalization": "imagenet"}, source)
    assert bad.value.path == source
    with pytest.raises(ModelLoadError, match="trust_lamda"):
        parse_options({"trust_lamda": True}, source)
    assert parse_options({"safe_mode": False}, source).trust_code


# --- class names ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def logits_files(folder: Path) -> dict[int, Path]:
    """VGG16-UNets without softmax (logits) with 19 and 5 classes."""
    files = {}
    for classes in (19, 5):
        keras.utils.set_random_seed(classes)
        model = build_vgg16_unet((32, 64, 3), classes, width=0.125, activation=None)
        files[classes] = folder / f"logits{classes}.keras"
        model.save(files[classes])
    return files


def test_class_names_from_count_or_manifest(logits_files: dict[int, Path], folder: Path) -> None:
    nineteen = load_model(logits_files[19])
    assert nineteen.info.output == "logits"
    assert nineteen.info.class_names == TRAINIDS.names and nineteen.info.scheme == "trainids"
    assert nineteen.predict(scene(0)).labels.max() < 19
    with pytest.raises(ModelLoadError, match="5 classes and names none") as err:
        load_model(logits_files[5])
    assert err.value.path == logits_files[5]
    names = ["road", "building", "tree", "sky", "car"]
    named = load_model(write_manifest(folder / "five.json", logits_files[5], class_names=names))
    assert named.info.class_names == tuple(names) and named.info.scheme == "custom:five"
    with pytest.raises(ModelLoadError, match="5 classes but 4 class names"):
        load_model(write_manifest(folder / "four.json", logits_files[5], class_names=names[:4]))


# --- code in model files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layer_refused_until_manifest_trusts_it(suffix: str, tmp_path: Path) -> None:
    keras.utils.set_random_seed(1)
    model = build_vgg16_unet((32, 64, 3), 8, width=0.125, input_lambda=True)
    path = tmp_path / f"lambda{suffix}"
    model.save(path)
    with pytest.raises(ModelLoadError, match="trust_lambda") as refused:
        load_model(path)
    assert refused.value.path == path and "Lambda" in str(refused.value)
    # The Lambda divides by 255 itself, so the trusted manifest feeds raw pixels.
    write_manifest(tmp_path / "lambda.json", path, options={"trust_lambda": True, "normalization": "raw"})
    trusted = load_model(path)
    assert trusted.info.extra["safe_mode"] == "false"
    image = scene(4, (32, 64))
    scores = reference_scores(model, image[None].astype(np.float32))[0]
    assert_labels_match(trusted.predict(image).labels, scores)


def test_unknown_custom_layer_needs_custom_modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "seglens_test_layers.py"
    module.write_text(
        textwrap.dedent(
            """
            import keras

            @keras.saving.register_keras_serializable(package="seglens_test")
            class PixelScale(keras.layers.Layer):
                def call(self, x):
                    return x / 255.0
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import seglens_test_layers

    inputs = keras.Input((32, 64, 3))
    x = seglens_test_layers.PixelScale()(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    outputs = keras.layers.Conv2D(8, 1, activation="softmax")(x)
    path = tmp_path / "custom.keras"
    keras.Model(inputs, outputs).save(path)
    # Forget the class, as a fresh process that never imported the module would.
    del keras.saving.get_custom_objects()["seglens_test>PixelScale"]
    monkeypatch.delitem(sys.modules, "seglens_test_layers")
    with pytest.raises(ModelLoadError, match="custom_modules") as refused:
        load_model(path)
    assert "PixelScale" in str(refused.value) and refused.value.path == path
    write_manifest(tmp_path / "custom.json", path, options={"custom_modules": ["seglens_test_layers"]})
    assert load_model(path).predict(scene(5, (32, 64))).labels.shape == (32, 64)


# --- broken files and missing extras ---------------------------------------------------------------------


def test_missing_and_corrupt_files_are_named(unet, folder: Path, tmp_path: Path) -> None:
    missing = tmp_path / "gone.keras"
    for call in (load_model, KerasSegmenter):
        with pytest.raises(ModelLoadError) as err:
            call(missing)
        assert err.value.path == missing and str(missing) in str(err.value)
    text = tmp_path / "notes.keras"
    text.write_text("not a model", encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"not a Keras \.keras archive") as err:
        load_model(text)
    assert err.value.path == text
    truncated = tmp_path / "half.h5"
    data = (folder / "unet.h5").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="HDF5") as err:
        load_model(truncated)
    assert err.value.path == truncated


def test_missing_tensorflow_says_how_to_install(unet, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # `import tensorflow` now raises ImportError
    with pytest.raises(ModelLoadError, match=r"pip install 'seglens\[keras\]'") as err:
        load_model(folder / "unet.keras")
    assert err.value.path == folder / "unet.keras"


def test_importing_the_registry_does_not_import_tensorflow() -> None:
    code = (
        "import sys, app.inference.registry, app.inference.backends.keras_backend,"
        " app.inference.tools.export_keras\n"
        "print(sorted(m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- export ------------------------------------------------------------------------------------------------


def test_export_to_onnx_keeps_labels_and_normalization(unet, folder: Path) -> None:
    manifest = load_manifest(
        write_manifest(folder / "export.json", folder / "unet.h5", options={"normalization": "caffe"})
    )
    out = folder / "exported" / "unet.onnx"
    samples = [scene(i) for i in range(2)]
    report = export_keras(folder / "unet.h5", out, sample_images=samples, manifest=manifest)
    assert report.ok and report.images == 2, report.describe()
    props = {p.key: p.value for p in onnx.load(str(out), load_external_data=False).metadata_props}
    assert props["seglens.source_kind"] == "keras"
    assert props["seglens.source_digest"] == hashlib.sha256((folder / "unet.h5").read_bytes()).hexdigest()
    assert props["seglens.channel_order"] == "BGR" and json.loads(props["seglens.mean"]) == list(CAFFE_MEAN)
    exported = load_model(out)
    source = KerasSegmenter(folder / "unet.h5", manifest)
    assert exported.info.backend == "onnx" and exported.info.output == "probabilities"
    assert exported.info.class_names == source.info.class_names
    assert exported.info.input.scale == 1.0 and exported.info.input.std == (1, 1, 1)
    for image in (scene(6), scene(7, (100, 180))):
        np.testing.assert_array_equal(exported.predict(image).labels, source.predict(image).labels)
    exported.close()
    source.close()
