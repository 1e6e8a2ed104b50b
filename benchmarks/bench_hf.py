"""PyTorch eager vs exported ONNX for a SegFormer-B0-sized model, measured in the same run.

    /work/venv/bin/python benchmarks/bench_hf.py [--repeats 5] [--size 512x1024]

The model: SegformerConfig defaults (= B0: hidden sizes 32/64/160/256, depths 2/2/2/2, decoder 256) with 19
Cityscapes labels and random weights, saved as a checkpoint directory whose processor resizes to --size. The
image has the same size, so both paths feed the model the same tensor and upsample the same logits.
Measured: HfSegmenter.predict vs OnnxSegmenter.predict (end to end), and the bare model forward vs the bare
InferenceSession.run on the same prepared tensor. DESIGN.md measured 788 ms vs 185 ms (4.3x) at 512x1024.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import hf_models  # noqa: E402

from app.core.scenes.generator import render_scene  # noqa: E402
from app.inference.backends.hf_backend import HfSegmenter  # noqa: E402
from app.inference.backends.onnx_backend import OnnxSegmenter  # noqa: E402
from app.inference.tools.export_hf import export_hf  # noqa: E402


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: allocations, kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", default="512x1024", help="image and model input size, HxW")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))

    import onnxruntime as ort
    import torch

    with tempfile.TemporaryDirectory(prefix="bench-hf-") as scratch:
        directory = hf_models.save_segformer(Path(scratch) / "b0", size=(height, width), tiny=False)
        image = render_scene(0, size=(height, width)).image
        onnx_path = Path(scratch) / "b0.onnx"
        started = time.perf_counter()
        report = export_hf(directory, onnx_path, sample_images=[image])
        print(f"export: {time.perf_counter() - started:.1f} s; {report.describe()}")

        hf = HfSegmenter(directory)
        onnx = OnnxSegmenter(onnx_path)
        same = np.mean(hf.predict(image).labels == onnx.predict(image).labels)
        print(f"torch threads {torch.get_num_threads()}, image {height}x{width}, labels agree {same:.4%}")

        # Blocks, not interleaving (an ORT session's threads spin for a while after run()).
        torch_ms = median_ms(lambda: hf.predict(image), args.repeats)
        onnx_ms = median_ms(lambda: onnx.predict(image), args.repeats)
        pixels = hf.prepare(image)
        tensor = torch.from_numpy(pixels)
        model = hf.torch_model

        def forward() -> object:
            with torch.inference_mode():
                return model(pixel_values=tensor).logits

        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        forward_ms = median_ms(forward, args.repeats)
        run_ms = median_ms(lambda: session.run(None, {"pixel_values": pixels}), args.repeats)
        print(
            f"predict  torch eager {torch_ms:8.1f} ms   onnx    {onnx_ms:8.1f} ms   "
            f"ratio {torch_ms / onnx_ms:.2f}x"
        )
        print(
            f"forward  torch eager {forward_ms:8.1f} ms   ort run {run_ms:8.1f} ms   "
            f"ratio {forward_ms / run_ms:.2f}x"
        )
        hf.close()
        onnx.close()


if __name__ == "__main__":
    main()
