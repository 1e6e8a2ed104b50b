"""ONNX backend overhead and the exact boundary upsampling, measured against references in the same run.

    /work/venv/bin/python benchmarks/bench_onnx.py [--repeats 10] [--hidden 48] [--depth 6]

1. predict() end to end on a 1024x2048 RGB image vs the bare InferenceSession.run on the same prepared
   tensor (goal: <= 1.10x). The model: random-weight convs, `hidden` channels, input 256x512, 19 classes,
   logits at 1/4 (64x128), upsampled x16 to the image.
2. The exact boundary-only bilinear upsampling + argmax vs the naive full bilinear + argmax at 1024x2048,
   on the model's own logits for that image, on smooth synthetic logits and on white-noise logits (the
   worst case: almost every pixel is a boundary).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import modelzoo  # noqa: E402

from app.core.domain.labels import TRAINIDS  # noqa: E402
from app.inference.backends.onnx_backend import OnnxSegmenter  # noqa: E402
from app.inference.postprocess import upsample_argmax, upsample_argmax_naive  # noqa: E402

IMAGE_SIZE = (1024, 2048)
INPUT_SIZE = (256, 512)


def street_scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A crude street: sky, buildings, road, sidewalk bands and some cars/people boxes, mild noise."""
    rng = np.random.default_rng(seed)
    colors = np.asarray(TRAINIDS.colors, dtype=np.int16)
    image = np.empty((height, width, 3), dtype=np.int16)
    image[: height // 3] = colors[10]  # sky
    image[height // 3 : height // 2] = colors[2]  # building
    image[height // 2 : 2 * height // 3] = colors[1]  # sidewalk
    image[2 * height // 3 :] = colors[0]  # road
    for _ in range(12):
        cls = rng.choice([5, 8, 11, 13, 14])
        h, w = rng.integers(height // 20, height // 5), rng.integers(width // 30, width // 6)
        y, x = rng.integers(height // 4, height - h), rng.integers(0, width - w)
        image[y : y + h, x : x + w] = colors[cls]
    image += rng.integers(-6, 7, size=image.shape, dtype=np.int16)
    return np.clip(image, 0, 255).astype(np.uint8)


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first-run allocations and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench_end_to_end(model_path: Path, image: np.ndarray, repeats: int) -> np.ndarray:
    segmenter = OnnxSegmenter(model_path)
    # A separate session with the same (default) options as the backend's.
    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    tensor = segmenter.prepare(image).copy()
    out_name = session.get_outputs()[0].name

    def raw() -> object:
        return session.run([out_name], {"image": tensor})

    # Blocks, not interleaving: right after run() a session's intra-op threads spin for a while, and two
    # sessions taking turns would slow each other down. Raw runs before and after bracket any drift.
    raw_ms = [median_ms(raw, 1) for _ in range(repeats)]
    segmenter.predict(image)
    predict_ms, stages = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        prediction = segmenter.predict(image)
        predict_ms.append((time.perf_counter() - start) * 1e3)
        stages.append(prediction.timings)
    raw_ms += [median_ms(raw, 1) for _ in range(repeats)]
    r, p = statistics.median(raw_ms), statistics.median(predict_ms)
    pre = statistics.median(t.preprocess_ms for t in stages)
    inf = statistics.median(t.inference_ms for t in stages)
    post = statistics.median(t.postprocess_ms for t in stages)
    in_h, in_w = INPUT_SIZE
    print(f"model {in_h}x{in_w} -> logits 19x{in_h // 4}x{in_w // 4}, image 1024x2048")
    print(f"  raw session.run       {r:8.1f} ms")
    print(f"  predict() end to end  {p:8.1f} ms   ratio {p / r:.3f}x (goal <= 1.10x)")
    print(f"    stages: preprocess {pre:.1f} ms, inference {inf:.1f} ms, postprocess {post:.1f} ms")
    logits = session.run([out_name], {"image": tensor})[0][0]
    segmenter.close()
    return logits


def bench_upsampling(name: str, logits: np.ndarray, repeats: int) -> None:
    exact = upsample_argmax(logits, IMAGE_SIZE)
    naive = upsample_argmax_naive(logits, IMAGE_SIZE)
    assert np.array_equal(exact, naive), "exact upsampling differs from the full computation"
    fast_ms = median_ms(lambda: upsample_argmax(logits, IMAGE_SIZE), repeats)
    full_ms = median_ms(lambda: upsample_argmax_naive(logits, IMAGE_SIZE), max(2, repeats // 3))
    print(f"  {name:<22} exact {fast_ms:7.1f} ms   naive {full_ms:7.1f} ms   ratio {fast_ms / full_ms:.3f}x")


def smooth_logits(num_classes: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = [
        np.sin(xx / rng.uniform(8, 24) + rng.uniform(0, 6))
        * np.cos(yy / rng.uniform(8, 24) + rng.uniform(0, 6))
        for _ in range(num_classes)
    ]
    return np.stack(planes).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--hidden", type=int, default=48, help="conv channels")
    parser.add_argument("--depth", type=int, default=6, help="extra 3x3 convs at 1/4 resolution")
    args = parser.parse_args()
    image = street_scene(*IMAGE_SIZE)
    with tempfile.TemporaryDirectory() as tmp:
        path = modelzoo.make_onnx_segmenter(
            Path(tmp) / "bench.onnx",
            TRAINIDS.names,
            input_size=INPUT_SIZE,
            hidden=args.hidden,
            depth=args.depth,
        )
        print(
            f"onnxruntime {ort.__version__}, hidden={args.hidden}, depth={args.depth}, repeats={args.repeats}"
        )
        logits = bench_end_to_end(path, image, args.repeats)
    h, w = logits.shape[1:]
    print(f"upsampling 19x{h}x{w} -> 1024x2048 + argmax (bilinear, align_corners=False)")
    bench_upsampling("model logits (scene)", logits, args.repeats)
    bench_upsampling("smooth logits", smooth_logits(19, h, w), args.repeats)
    bench_upsampling(
        "white-noise logits", np.random.default_rng(0).normal(size=(19, h, w)).astype(np.float32), 3
    )


if __name__ == "__main__":
    main()
