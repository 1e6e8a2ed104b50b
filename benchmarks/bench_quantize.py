"""FP32 vs INT8 (static QDQ) latency of a conv-heavy model on this machine, for a few configurations.

    /work/venv/bin/python benchmarks/bench_quantize.py [--hidden 64] [--depth 8] [--size 256x512]
        [--count 16] [--runs 30] [--search]

The model: random-weight 3x3 convs (modelzoo: two stride-2 convs to 1/4 resolution, then `depth` more at
`hidden` channels), a 1x1 classifier to 19 classes, input 256x512. Calibration and validation images are
synthetic street scenes at the input size. Each configuration's INT8 model is timed against the FP32 model
in the same run on the same tensors (bare session.run, median, FP32 and INT8 alternating in blocks):
the ratio INT8/FP32 is what to read (below 1 = INT8 faster). With random weights mIoU itself is
meaningless, but its change measures how often INT8 flips the FP32 argmax.
Also prints the full predict() latency of FP32 vs the default INT8 model through benchmark_model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import modelzoo  # noqa: E402

from app.core.domain.labels import TRAINIDS  # noqa: E402
from app.core.io.datasets import open_dataset  # noqa: E402
from app.core.scenes.generator import generate  # noqa: E402
from app.tools.benchmark import benchmark_model, format_table, parse_size  # noqa: E402
from app.tools.quantize import quantize  # noqa: E402
from app.tools.quantize_search import search  # noqa: E402
from app.tools.quantize_types import QuantizeConfig  # noqa: E402

CONFIGS = (
    QuantizeConfig(op_types=("Conv",)),
    QuantizeConfig(op_types=("Conv",), per_channel=False),
    QuantizeConfig(op_types=None),
    QuantizeConfig(op_types=None, method="percentile"),
    QuantizeConfig(op_types=("Conv",), exclude_nodes=("Conv_last",)),  # placeholder, resolved below
    QuantizeConfig(op_types=("Conv",), reduce_range=True),
)


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    return ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "amx_int8") if f" {f}" in text) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, default=64, help="conv channels")
    parser.add_argument("--depth", type=int, default=8, help="extra 3x3 convs at 1/4 resolution")
    parser.add_argument("--size", type=parse_size, default=(256, 512), help="input HxW")
    parser.add_argument("--count", type=int, default=16, help="calibration (and validation) images")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per model and configuration")
    parser.add_argument("--search", action="store_true", help="also run search() with a 1-point budget")
    args = parser.parse_args()
    print(f"onnxruntime {ort.__version__}; CPU flags: {cpu_flags()}")
    print(f"model hidden={args.hidden} depth={args.depth} input {args.size[0]}x{args.size[1]}, 19 classes")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        generate(tmp / "data", args.count, args.size, seed=1, split="train")
        generate(tmp / "data", args.count, args.size, seed=2, split="val")
        print(f"data: {args.count} + {args.count} synthetic scenes in {time.perf_counter() - start:.1f} s")
        calibration = open_dataset(tmp / "data", split="train")
        validation = open_dataset(tmp / "data", split="val")
        fp32 = modelzoo.make_onnx_segmenter(
            tmp / "convnet.onnx", TRAINIDS.names, input_size=args.size, hidden=args.hidden, depth=args.depth
        )
        last_conv = f"Conv_{args.depth + 2}"  # 2 stride-2 convs + depth convs + the 1x1 classifier
        header = f"{'configuration':<40}{'FP32 ms':>9}{'INT8 ms':>9}{'ratio':>7}{'MB':>7}{'dmIoU':>8}"
        print(header)
        print("-" * len(header))
        for config in CONFIGS:
            if config.exclude_nodes:
                config = QuantizeConfig(op_types=config.op_types, exclude_nodes=(last_conv,))
            out = tmp / "int8.onnx"
            result = quantize(
                fp32, out, calibration=calibration, count=args.count, op_types=config.op_types,
                per_channel=config.per_channel, method=config.method, exclude_nodes=config.exclude_nodes,
                reduce_range=config.reduce_range, validation=validation, runs=args.runs,
            )
            print(
                f"{config.label()[:39]:<40}{result.fp32_ms:>9.2f}{result.int8_ms:>9.2f}"
                f"{result.latency_ratio:>7.2f}{result.int8_bytes / 2**20:>7.2f}"
                f"{result.miou_delta_points or 0.0:>+8.2f}"
            )
        print(f"FP32 file {fp32.stat().st_size / 2**20:.2f} MB")
        default = tmp / "int8_default.onnx"
        quantize(fp32, default, calibration=calibration, count=args.count, runs=3)
        rows = [benchmark_model(p, runs=args.runs, dataset=validation) for p in (fp32, default)]
        print("\nfull predict() on 1 image at a time (benchmark_model):")
        print(format_table(rows))
        print(f"predict() P50 ratio INT8/FP32: {rows[1].predict_ms.p50 / rows[0].predict_ms.p50:.2f}")
        if args.search:
            found = search(
                fp32, tmp / "best.onnx", calibration=calibration, validation=validation, count=args.count,
                runs=args.runs,
            )
            print("\nsearch():")
            print(found.table())


if __name__ == "__main__":
    main()
