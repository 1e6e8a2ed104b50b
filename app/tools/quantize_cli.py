"""Command line of INT8 quantization: `seglens quantize MODEL.onnx --calibration DS --out OUT.onnx [...]`.

`seglens quantize` runs this module's main. The library side (`quantize()`) is app.tools.quantize, the
search (`--search`) app.tools.quantize_search, the value types app.tools.quantize_types.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.core.domain.errors import SegLensError
from app.core.io.datasets import open_dataset
from app.core.io.fileutil import check_output_file
from app.core.runtime.argtypes import positive_int
from app.tools.quantize import quantize
from app.tools.quantize_types import METHODS, QUANT_TYPES


def main(argv: Sequence[str] | None = None) -> int:
    """`seglens quantize MODEL.onnx --calibration DATASET --out OUT.onnx [...]`. Returns the exit code."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.search and args.validation is None:
        print("seglens quantize: --search needs --validation DATASET", file=sys.stderr)
        return 2

    def log(text: str) -> None:
        print(text, file=sys.stderr)

    try:
        check_output_file(args.out, "quantized model")  # before calibration and validation, not after
        if args.json:
            check_output_file(args.json, "JSON file")
        calibration = open_dataset(args.calibration, split=args.split)
        validation = open_dataset(args.validation, split=args.validation_split) if args.validation else None
        common: dict[str, Any] = {
            "calibration": calibration,
            "count": args.count,
            "per_channel": args.per_channel,
            "activation_type": args.activation_type,
            "weight_type": args.weight_type,
            "reduce_range": args.reduce_range,
            "runs": args.runs,
            "pre_process": args.preprocess,
            "log": log,
        }
        if args.search:
            assert validation is not None
            from app.tools.quantize_search import search  # lazy: only --search needs it

            found = search(
                args.model, args.out, validation=validation, budget_miou_points=args.budget, **common
            )
            print(found.table())
            document, code = found.to_dict(), 0 if found.result is not None else 1
        else:
            names = [o.strip() for o in args.ops.split(",") if o.strip()]
            ops = None if args.ops.strip().lower() == "all" else tuple(names)
            result = quantize(
                args.model,
                args.out,
                op_types=ops,
                method=args.method,
                exclude_nodes=args.exclude,
                validation=validation,
                **common,
            )
            print(result.describe())
            document, code = result.to_dict(), 0
    except (SegLensError, ValueError) as exc:
        print(f"seglens quantize: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        from app.core.io.fileutil import atomic_write_text

        atomic_write_text(args.json, json.dumps(document, indent=2, allow_nan=False))
        print(f"wrote {args.json}", file=sys.stderr)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seglens quantize",
        description="INT8 static (QDQ) quantization of an ONNX model, calibrated on real images and measured "
        "against the FP32 model (size, latency, and mIoU with --validation).",
    )
    parser.add_argument("model", help="the FP32 .onnx model (or a manifest pointing to one)")
    parser.add_argument("--calibration", required=True, help="dataset folder of calibration images")
    parser.add_argument("--split", help="Cityscapes split of the calibration set (default: val)")
    parser.add_argument("--count", type=positive_int, default=100, help="calibration images (default 100)")
    parser.add_argument("--out", required=True, type=Path, help="the INT8 .onnx file to write")
    parser.add_argument("--ops", default="Conv,MatMul", help="op types to quantize (comma-separated) or all")
    parser.add_argument("--method", choices=METHODS, default="minmax", help="calibration method")
    parser.add_argument(
        "--per-channel",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="per-channel weight scales (default on)",
    )
    parser.add_argument("--exclude", nargs="+", default=[], metavar="NODE", help="node names kept in FP32")
    parser.add_argument("--activation-type", choices=QUANT_TYPES, default="QUInt8")
    parser.add_argument("--weight-type", choices=QUANT_TYPES, default="QInt8")
    parser.add_argument("--reduce-range", action="store_true", help="7-bit weights (CPUs without VNNI)")
    parser.add_argument("--validation", help="dataset folder with ground truth: mIoU of FP32 vs INT8")
    parser.add_argument("--validation-split", help="Cityscapes split of the validation set (default: val)")
    parser.add_argument(
        "--search", action="store_true", help="try several configurations, keep the fastest within --budget"
    )
    parser.add_argument("--budget", type=float, default=1.0, help="allowed mIoU drop in points (default 1.0)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per model (default 20)")
    parser.add_argument(
        "--no-preprocess",
        dest="preprocess",
        action="store_false",
        help="skip onnxruntime's shape pre-processing",
    )
    parser.add_argument("--json", type=Path, help="write the report as JSON here")
    return parser


if __name__ == "__main__":
    sys.exit(main())
