"""Keras (tf.function) vs the tf2onnx export (onnxruntime) of the baseline VGG16-UNet, same process.

    /work/venv/bin/python benchmarks/bench_keras.py [--size 256x512] [--repeats 10] [--width 1.0]

Builds the teams' baseline (VGG16 encoder, weights=None; U-Net decoder; softmax over 8 classes) at the
given input size, saves it as .keras, exports it with app.inference.tools.export_keras and times predict() on
a synthetic street scene of the input size through both backends (median of `repeats` calls after a
warm-up). Prints the medians and the Keras / ONNX ratio; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from keras_models import build_vgg16_unet  # noqa: E402

from app.core.scenes.generator import render_scene  # noqa: E402
from app.inference.base import Segmenter  # noqa: E402
from app.inference.registry import load_model  # noqa: E402
from app.inference.tools.export_keras import export_keras  # noqa: E402


def median_ms(model: Segmenter, image, repeats: int) -> float:
    model.predict(image)  # warm-up: first-run allocations and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(image)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", default="256x512", help="model input HxW (multiples of 16)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--width", type=float, default=1.0, help="decoder filter scale")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    image = render_scene(0, size=(height, width)).image
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "vgg16_unet.keras"
        build_vgg16_unet((height, width, 3), 8, width=args.width).save(source)
        start = time.perf_counter()
        report = export_keras(source, Path(tmp) / "vgg16_unet.onnx", sample_images=[image])
        print(f"export {time.perf_counter() - start:.1f} s; {report.describe()}")
        keras_model, onnx_model = load_model(source), load_model(Path(tmp) / "vgg16_unet.onnx")
        keras_ms = median_ms(keras_model, image, args.repeats)
        onnx_ms = median_ms(onnx_model, image, args.repeats)
        keras_model.close()
        onnx_model.close()
    print(
        f"VGG16-UNet {height}x{width}: Keras tf.function {keras_ms:.0f} ms, ONNX Runtime {onnx_ms:.0f} ms, "
        f"Keras/ONNX {keras_ms / onnx_ms:.2f}x (median of {args.repeats})"
    )


if __name__ == "__main__":
    main()
