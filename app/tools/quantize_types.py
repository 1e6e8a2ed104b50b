"""The value types of INT8 quantization, shared by the library, its search and its command line.

`app.tools.quantize` (quantize(), the workspace), `app.tools.quantize_search` (search(), pick()) and
`app.tools.quantize_cli` (`seglens quantize`) all import these and none of them imports another's
caller, so the three modules form a line, not a circle.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

Method = Literal["minmax", "entropy", "percentile"]
QuantTypeName = Literal["QUInt8", "QInt8"]
METHODS: tuple[str, ...] = ("minmax", "entropy", "percentile")
QUANT_TYPES: tuple[str, ...] = ("QUInt8", "QInt8")
MB = 1024 * 1024
Log = Callable[[str], None]


@dataclass(frozen=True)
class QuantizeConfig:
    """One quantization recipe. op_types None means every op type onnxruntime can quantize."""

    op_types: tuple[str, ...] | None = ("Conv", "MatMul")
    method: Method = "minmax"
    per_channel: bool = True
    exclude_nodes: tuple[str, ...] = ()
    activation_type: QuantTypeName = "QUInt8"  # uint8 activations + int8 weights: the x86 VNNI path
    weight_type: QuantTypeName = "QInt8"
    reduce_range: bool = False  # 7-bit weights only help CPUs without VNNI

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"calibration method must be one of {', '.join(METHODS)}, got {self.method!r}")
        for kind in (self.activation_type, self.weight_type):
            if kind not in QUANT_TYPES:
                raise ValueError(f"quantization type must be QUInt8 or QInt8, got {kind!r}")
        if self.op_types is not None and not self.op_types:
            raise ValueError("op_types must name at least one op type (or be None for all)")

    def label(self) -> str:
        """Short description for tables: 'Conv+MatMul minmax excl. Conv_0'."""
        ops = "all ops" if self.op_types is None else "+".join(self.op_types)
        text = f"{ops} {self.method}"
        if not self.per_channel:
            text += " per-tensor"
        if (self.activation_type, self.weight_type) != ("QUInt8", "QInt8"):
            text += f" {self.activation_type}/{self.weight_type}"
        if self.reduce_range:
            text += " reduce-range"
        if self.exclude_nodes:
            text += " excl. " + ",".join(self.exclude_nodes)
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        data: dict[str, Any] = to_json(self)
        return data


@dataclass(frozen=True)
class Accuracy:
    """mIoU (0..1) and per-class IoU (NaN where undefined) of one model on the validation set."""

    miou: float
    iou: dict[str, float]
    scheme: str
    images: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as None)."""
        data: dict[str, Any] = to_json(self)
        return data


@dataclass(frozen=True)
class QuantizeResult:
    """What quantize() wrote and measured. Latencies are medians of bare session.run() calls (ms)."""

    fp32_path: Path
    int8_path: Path
    config: QuantizeConfig
    fp32_bytes: int
    int8_bytes: int
    fp32_ms: float
    int8_ms: float
    calibration_images: int
    quantized_nodes: int  # nodes whose weights are stored as int8
    fp32_accuracy: Accuracy | None = None
    int8_accuracy: Accuracy | None = None
    warnings: tuple[str, ...] = ()

    @property
    def latency_ratio(self) -> float:
        """INT8 / FP32 latency: below 1 means INT8 is faster."""
        return self.int8_ms / self.fp32_ms if self.fp32_ms > 0 else math.nan

    @property
    def miou_delta_points(self) -> float | None:
        """INT8 minus FP32 mIoU in points (percent), or None without validation."""
        if self.fp32_accuracy is None or self.int8_accuracy is None:
            return None
        return (self.int8_accuracy.miou - self.fp32_accuracy.miou) * 100

    def iou_delta_points(self) -> dict[str, float]:
        """Per class INT8 minus FP32 IoU in points (NaN where either is undefined)."""
        if self.fp32_accuracy is None or self.int8_accuracy is None:
            return {}
        fp32, int8 = self.fp32_accuracy.iou, self.int8_accuracy.iou
        return {name: (int8[name] - fp32[name]) * 100 for name in fp32}

    def describe(self) -> str:
        """A few human-readable lines (the CLI's output)."""
        return describe_result(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as None), with the derived ratio and deltas."""
        return {
            **to_json(self),
            "latency_ratio": to_json(self.latency_ratio),
            "miou_delta_points": to_json(self.miou_delta_points),
            "iou_delta_points": to_json(self.iou_delta_points()),
        }


def to_json(value: Any) -> Any:
    """Dataclasses, dicts, tuples and paths as JSON values; NaN as None."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


@dataclass(frozen=True)
class Trial:
    """One configuration tried by search()."""

    config: QuantizeConfig
    fp32_ms: float = math.nan
    int8_ms: float = math.nan
    int8_bytes: int = 0
    quantized_nodes: int = 0
    accuracy: Accuracy | None = None
    error: str | None = None
    path: Path | None = field(default=None, compare=False)  # temporary file, gone after search()

    @property
    def ratio(self) -> float:
        """INT8 / FP32 latency."""
        return self.int8_ms / self.fp32_ms if self.fp32_ms > 0 else math.nan

    def delta_points(self, fp32: Accuracy) -> float:
        """mIoU change vs FP32 in points (NaN on error)."""
        return math.nan if self.accuracy is None else (self.accuracy.miou - fp32.miou) * 100

    def within(self, fp32: Accuracy, budget_points: float) -> bool:
        """Did it lose at most `budget_points` mIoU points?"""
        delta = self.delta_points(fp32)
        return not math.isnan(delta) and -delta <= budget_points + 1e-9


def describe_result(result: QuantizeResult) -> str:
    """A few human-readable lines for `result` (QuantizeResult.describe(), printed by the CLI)."""
    lines = [
        f"wrote {result.int8_path} ({result.config.label()}, {result.quantized_nodes} nodes int8, "
        f"calibrated on {result.calibration_images} images)",
        f"size     FP32 {result.fp32_bytes / MB:.2f} MB   INT8 {result.int8_bytes / MB:.2f} MB   "
        f"ratio {result.int8_bytes / result.fp32_bytes:.2f}",
        f"latency  FP32 {result.fp32_ms:.2f} ms   INT8 {result.int8_ms:.2f} ms   "
        f"ratio {result.latency_ratio:.2f}" + ("  (INT8 is NOT faster)" if result.latency_ratio >= 1 else ""),
    ]
    delta = result.miou_delta_points
    if delta is not None and result.fp32_accuracy and result.int8_accuracy:
        fp32, int8 = result.fp32_accuracy, result.int8_accuracy
        lines.append(
            f"mIoU     FP32 {fp32.miou * 100:.2f}   INT8 {int8.miou * 100:.2f}   "
            f"change {delta:+.2f} points ({int8.images} images)"
        )
    lines += [f"warning: {w}" for w in result.warnings]
    return "\n".join(lines)
