"""Native models run through a cached, fidelity-checked ONNX export (`seglens evaluate --onnx-runtime`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import require

from app.core.scenes.generator import render_scene
from app.inference.tools.export_common import FidelityReport

keras = require("keras")
require("tf2onnx")

from keras_models import build_vgg16_unet  # noqa: E402

from app.inference.registry import load_model  # noqa: E402
from app.inference.tools.accelerate import accelerated  # noqa: E402


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    keras.utils.set_random_seed(1)
    path = tmp_path_factory.mktemp("accel") / "baseline.keras"
    build_vgg16_unet((32, 64, 3), 8, width=0.25).save(path)
    return path


class CountingExporter:
    """The real exporter, counted (so the test can see the cache at work without timing anything)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, source: Path, out: Path) -> FidelityReport:
        from app.inference.tools.export import export_model

        self.calls += 1
        image = render_scene(0, size=(32, 64)).image
        return export_model(source, out, samples=[image])


def test_export_once_then_cached_and_equal_labels(keras_file, tmp_path) -> None:
    exporter = CountingExporter()
    image = render_scene(1, size=(48, 96)).image
    native = load_model(keras_file)
    expected = native.predict(image).labels
    fast, note = accelerated(keras_file, native, cache=tmp_path, exporter=exporter)
    assert fast.info.backend == "onnx" and fast.info.name == "baseline"
    assert "ONNX Runtime" in note and exporter.calls == 1
    np.testing.assert_array_equal(fast.predict(image).labels, expected)
    fast.close()
    again, _ = accelerated(keras_file, load_model(keras_file), cache=tmp_path, exporter=exporter)
    assert again.info.backend == "onnx" and exporter.calls == 1
    again.close()


def test_unfaithful_export_keeps_the_native_model(keras_file, tmp_path) -> None:
    def bad_exporter(source: Path, out: Path) -> FidelityReport:
        out.write_bytes(b"not used")
        return FidelityReport(images=1, max_abs_diff=0.5, argmax_agreement=0.9)

    native = load_model(keras_file)
    kept, note = accelerated(keras_file, native, cache=tmp_path, exporter=bad_exporter)
    assert kept is native and "kept on keras" in note and "BELOW GOAL" in note
    assert not list(tmp_path.glob("*.onnx"))
    native.close()
