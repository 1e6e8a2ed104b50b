"""Searching INT8 quantization configurations of an ONNX segmentation model (see app.tools.quantize).

`search()` tries a few configurations (which op types, calibration method, keeping the first/last weighted
node in FP32) and keeps the FASTEST whose mIoU drop is within a budget. When no configuration is faster than
FP32 within the budget it writes nothing: an INT8 file that is slower or worse than the FP32 one is a trap,
and the table says what was tried (naive INT8 of SegFormer-B0 is not faster on our CPU, see DESIGN.md).

The value types (`QuantizeConfig`, `Accuracy`, `Trial`, ...) are in app.tools.quantize_types.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from app.core.domain.errors import SegLensError
from app.core.io.datasets import Dataset
from app.tools.quantize import _Workspace
from app.tools.quantize_types import (
    MB,
    Accuracy,
    Log,
    QuantizeConfig,
    QuantizeResult,
    QuantTypeName,
    Trial,
    to_json,
)


@dataclass(frozen=True)
class SearchResult:
    """Every configuration tried, the one kept (if any) and why."""

    fp32_path: Path
    budget_points: float
    fp32_accuracy: Accuracy
    trials: tuple[Trial, ...]
    chosen: int | None  # index into trials
    result: QuantizeResult | None  # the written model's full report; None when nothing was written
    message: str
    warnings: tuple[str, ...] = ()

    def table(self) -> str:
        """One row per configuration: latency ratio (INT8/FP32) and mIoU change."""
        header = f"{'#':>2}  {'configuration':<44}{'INT8 ms':>9}{'FP32 ms':>9}{'ratio':>7}{'dmIoU':>8}"
        header += f"{'MB':>7}  "
        lines = [header + "verdict", "-" * (len(header) + 14)]
        for i, t in enumerate(self.trials):
            if t.error is not None:
                lines.append(f"{i:>2}  {t.config.label()[:43]:<44}  error: {t.error}")
                continue
            delta = t.delta_points(self.fp32_accuracy)
            verdict = "CHOSEN" if i == self.chosen else _verdict(t, self.fp32_accuracy, self.budget_points)
            lines.append(
                f"{i:>2}  {t.config.label()[:43]:<44}{t.int8_ms:>9.2f}{t.fp32_ms:>9.2f}{t.ratio:>7.2f}"
                f"{delta:>+8.2f}{t.int8_bytes / MB:>7.2f}  {verdict}"
            )
        lines.append(f"FP32 mIoU {self.fp32_accuracy.miou * 100:.2f}; budget {self.budget_points:.2f} points")
        lines.append(self.message)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as None); each trial with its latency ratio and mIoU change."""
        fp32 = self.fp32_accuracy
        trials = [
            {
                **to_json(t),
                "latency_ratio": to_json(t.ratio),
                "miou_delta_points": to_json(t.delta_points(fp32)),
            }
            for t in self.trials
        ]
        result = None if self.result is None else self.result.to_dict()
        return {**to_json(self), "trials": trials, "result": result}


def _verdict(trial: Trial, fp32: Accuracy, budget: float) -> str:
    if not trial.within(fp32, budget):
        return "over budget"
    return "not faster" if trial.ratio >= 1 else "ok"


def search(
    model_path: str | Path,
    out_path: str | Path,
    *,
    calibration: Dataset,
    validation: Dataset,
    budget_miou_points: float = 1.0,
    count: int = 100,
    per_channel: bool = True,
    activation_type: QuantTypeName = "QUInt8",
    weight_type: QuantTypeName = "QInt8",
    reduce_range: bool = False,
    runs: int = 20,
    warmup: int = 3,
    pre_process: bool = True,
    log: Log | None = None,
) -> SearchResult:
    """Try configurations in three stages and write the fastest one within the mIoU budget.

    1. op types: Conv / Conv+MatMul / all supported (sets quantizing the same nodes are tried once), minmax;
    2. on the best so far: percentile and entropy calibration;
    3. on the best so far: the last weighted node (classifier) kept FP32, then the first and the last.
    "Best so far" is the fastest within the budget, else the most accurate. The winner must be faster than
    FP32 (ratio < 1) and lose at most `budget_miou_points`; without one nothing is written.
    """
    if budget_miou_points < 0:
        raise ValueError(f"the budget must be >= 0 mIoU points, got {budget_miou_points}")
    base = QuantizeConfig(
        per_channel=per_channel,
        activation_type=activation_type,
        weight_type=weight_type,
        reduce_range=reduce_range,
    )
    with _Workspace(model_path, calibration, count, pre_process, log) as ws:
        fp32_acc = ws.evaluate([ws.fp32_path], validation)[0]
        trials: list[Trial] = []

        def attempt(config: QuantizeConfig) -> None:
            if any(t.config == config for t in trials):
                return
            trials.append(ws.try_config(config, ws.calibrate(config.method, None), runs, warmup, validation))
            ws.say(f"[{len(trials)}] {config.label()}: {_short(trials[-1], fp32_acc)}")

        for ops in ws.distinct_op_sets([("Conv",), ("Conv", "MatMul"), None]):
            attempt(replace(base, op_types=ops))
        for method in ("percentile", "entropy"):
            attempt(replace(_leader(trials, fp32_acc, budget_miou_points).config, method=method))
        leader = _leader(trials, fp32_acc, budget_miou_points).config
        for names in ws.edge_exclusions():
            attempt(replace(leader, exclude_nodes=names))
        chosen = pick(trials, fp32_acc, budget_miou_points)
        result = None
        if chosen is None:
            message = (
                f"no configuration is faster than FP32 within {budget_miou_points:g} mIoU points: "
                "nothing written"
            )
        else:
            trial = trials[chosen]
            result = ws.finish(trial, out_path, fp32_acc, trial.accuracy)
            message = f"kept #{chosen} ({trial.config.label()}): wrote {result.int8_path}"
        return SearchResult(
            fp32_path=ws.fp32_path,
            budget_points=budget_miou_points,
            fp32_accuracy=fp32_acc,
            trials=tuple(replace(t, path=None) for t in trials),
            chosen=chosen,
            result=result,
            message=message,
            warnings=tuple(ws.warnings),
        )


def pick(trials: Sequence[Trial], fp32: Accuracy, budget_points: float) -> int | None:
    """Index of the fastest trial that beats FP32 (ratio < 1) within the mIoU budget, or None."""
    ok = [i for i, t in enumerate(trials) if not t.error and t.ratio < 1 and t.within(fp32, budget_points)]
    return min(ok, key=lambda i: trials[i].ratio) if ok else None


def _leader(trials: Sequence[Trial], fp32: Accuracy, budget_points: float) -> Trial:
    good = [t for t in trials if t.error is None]
    if not good:
        reason = trials[0].error if trials else "the graph has no node of a quantizable op type"
        raise SegLensError(f"no configuration could be quantized: {reason}")
    within = [t for t in good if t.within(fp32, budget_points)]
    if within:
        return min(within, key=lambda t: t.ratio)
    return max(good, key=lambda t: t.accuracy.miou if t.accuracy else -math.inf)


def _short(trial: Trial, fp32: Accuracy) -> str:
    if trial.error is not None:
        return f"error: {trial.error}"
    return f"latency ratio {trial.ratio:.2f}, mIoU {trial.delta_points(fp32):+.2f} points"
