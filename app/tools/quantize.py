"""INT8 static quantization (QDQ) of ONNX segmentation models, measured rather than assumed.

`quantize()` runs onnxruntime's shape pre-processing (falling back to the original graph, with a warning,
when it fails), calibrates on real images of a dataset fed through the model's own preprocessing
(OnnxSegmenter.prepare), writes the INT8 model atomically with the FP32 model's seglens.* metadata plus
`seglens.quantization` (so the file stays self-describing), and reports sizes, FP32/INT8 latency measured in
the same run on the same tensors and, given a validation set, mIoU and per-class IoU of both.

`search()` (app.tools.quantize_search) tries a few configurations and keeps the FASTEST whose mIoU
drop is within a budget; the value types (`QuantizeConfig`, `QuantizeResult`, ...) are in
app.tools.quantize_types, the command line in app.tools.quantize_cli.

Unnamed graph nodes are named `<OpType>_<k>` (the k-th node of that type, in graph order, after
pre-processing): those are the names `exclude_nodes` / `--exclude` take.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    create_calibrator,
    quantize_static,
)

from app.core.domain.errors import InputError, ModelLoadError, SegLensError
from app.core.io.datasets import Dataset
from app.core.io.fileutil import atomic_write_bytes
from app.inference.backends.onnx_backend import OnnxSegmenter
from app.inference.manifest import find_manifest
from app.tools.benchmark import compare_latency
from app.tools.quantize_types import (
    Accuracy,
    Log,
    Method,
    QuantizeConfig,
    QuantizeResult,
    QuantTypeName,
    Trial,
)

_METHOD_ENUM = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
_WEIGHTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")  # first/last "real" layers for exclusion
# Histogram calibrators keep every activation of a collect_data() call in memory: feed a few at a time.
_CHUNK = 4
_LATENCY_TENSORS = 4


def quantize(
    model_path: str | Path,
    out_path: str | Path,
    *,
    calibration: Dataset,
    count: int = 100,
    op_types: Sequence[str] | None = ("Conv", "MatMul"),
    per_channel: bool = True,
    method: Method = "minmax",
    exclude_nodes: Sequence[str] = (),
    activation_type: QuantTypeName = "QUInt8",
    weight_type: QuantTypeName = "QInt8",
    reduce_range: bool = False,
    validation: Dataset | None = None,
    runs: int = 20,
    warmup: int = 3,
    pre_process: bool = True,
    log: Log | None = None,
) -> QuantizeResult:
    """Quantize `model_path` (static QDQ) into `out_path` and measure it against the FP32 model.

    Calibrates on the first `count` images of `calibration`. Latency: median of `runs` session.run()
    calls per model after `warmup` ones, FP32 and INT8 alternating in blocks on the same tensors. With
    `validation`, both models are evaluated (mIoU, per-class IoU) with the Evaluator.
    Raises ModelLoadError / InputError naming the model file or dataset folder.
    """
    config = QuantizeConfig(
        op_types=None if op_types is None else tuple(op_types),
        method=method,
        per_channel=per_channel,
        exclude_nodes=tuple(exclude_nodes),
        activation_type=activation_type,
        weight_type=weight_type,
        reduce_range=reduce_range,
    )
    with _Workspace(model_path, calibration, count, pre_process, log) as ws:
        ws.check_nodes(config.exclude_nodes)
        trial = ws.try_config(config, ws.calibrate(config.method, config.op_types), runs, warmup, None)
        if trial.error is not None or trial.path is None:
            raise SegLensError(f"{ws.fp32_path}: quantization failed: {trial.error}")
        accuracy: list[Accuracy | None] = [None, None]
        if validation is not None:
            accuracy = list(ws.evaluate([ws.fp32_path, trial.path], validation))
        return ws.finish(trial, out_path, accuracy[0], accuracy[1])


class _ListReader(CalibrationDataReader):
    """Feeds a list of prepared tensors to the calibrator."""

    def __init__(self, input_name: str, tensors: Sequence[np.ndarray]) -> None:
        self._feeds = iter([{input_name: t} for t in tensors])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


class _Workspace:
    """The FP32 model opened, pre-processed and node-named in a temporary folder, plus what every
    configuration shares: calibration caches per method and the latency tensors."""

    def __init__(
        self, model_path: str | Path, calibration: Dataset, count: int, pre_process: bool, log: Log | None
    ) -> None:
        from app.inference.registry import load_model

        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        if not calibration.refs:
            raise InputError(calibration.root, "the calibration dataset holds no images")
        segmenter = load_model(model_path)
        if not isinstance(segmenter, OnnxSegmenter):
            segmenter.close()
            raise ModelLoadError(Path(model_path), "quantization needs an ONNX model")
        self.segmenter = segmenter
        self.fp32_path = Path(segmenter.info.source)
        self.input_name = segmenter.info.extra["input_name"]
        self.calibration, self.count = calibration, count
        self.warnings: list[str] = []
        self._log = log
        self._tmp = Path(tempfile.mkdtemp(prefix="seglens-quant-"))
        self._caches: dict[tuple[str, tuple[str, ...] | None], Path] = {}
        self._latency: list[np.ndarray] = []
        self.calibration_images = 0
        manifest = find_manifest(self.fp32_path)
        if manifest is not None:
            self.warn(f"{manifest} is not copied into the INT8 file: put a copy beside the INT8 model")
        try:
            self.preprocessed = pre_process and self._pre_process()
            self.model = self._name_nodes()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __enter__(self) -> _Workspace:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.segmenter.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def say(self, text: str) -> None:
        if self._log is not None:
            self._log(text)

    def warn(self, text: str) -> None:
        if text in self.warnings:  # each calibration pass re-reads the same images
            return
        self.warnings.append(text)
        self.say(f"warning: {text}")

    @property
    def prepared(self) -> Path:
        return self._tmp / "prepared.onnx"

    def _pre_process(self) -> bool:
        try:
            _shape_preprocess(self.fp32_path, self.prepared)
        except Exception as exc:  # symbolic shape inference / optimizer failures come in many types
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            self.warn(f"shape pre-processing failed ({reason}); quantizing the original graph instead")
            return False
        return True

    def _name_nodes(self) -> onnx.ModelProto:
        source = self.prepared if self.preprocessed else self.fp32_path
        model = onnx.load(str(source))
        seen: dict[str, int] = {}
        for node in model.graph.node:
            k = seen.get(node.op_type, 0)
            seen[node.op_type] = k + 1
            if not node.name:
                node.name = f"{node.op_type}_{k}"
        onnx.save(model, str(self.prepared))
        return model

    def check_nodes(self, names: Sequence[str]) -> None:
        known = {n.name for n in self.model.graph.node}
        missing = [n for n in names if n not in known]
        if missing:
            weighted = [n.name for n in self.model.graph.node if n.op_type in _WEIGHTED_OPS]
            raise InputError(
                self.fp32_path,
                f"no node named {', '.join(map(repr, missing))}; weighted nodes are: {', '.join(weighted)}",
            )

    def distinct_op_sets(self, candidates: Sequence[tuple[str, ...] | None]) -> list[tuple[str, ...] | None]:
        """Candidates that quantize different sets of node types in this graph (first of equals kept)."""
        from onnxruntime.quantization.registry import QDQRegistry

        present = {n.op_type for n in self.model.graph.node}
        kept: list[tuple[str, ...] | None] = []
        effective: list[frozenset[str]] = []
        for ops in candidates:
            types = frozenset(present & set(QDQRegistry if ops is None else ops))
            if types and types not in effective:
                kept.append(ops)
                effective.append(types)
        return kept

    def edge_exclusions(self) -> list[tuple[str, ...]]:
        """(last weighted node,) and (first, last): classifier and stem kept in FP32."""
        weighted = [n.name for n in self.model.graph.node if n.op_type in _WEIGHTED_OPS]
        if len(weighted) < 2:
            return [tuple(weighted)] if weighted else []
        return [(weighted[-1],), (weighted[0], weighted[-1])]

    def _tensors(self) -> Iterator[np.ndarray]:
        """The first `count` calibration images through the model's own preprocessing (copies)."""
        produced = 0
        for ref in self.calibration.refs:
            if produced >= self.count:
                return
            try:
                image = self.calibration.load(ref).image
            except SegLensError as exc:
                self.warn(f"calibration image skipped: {exc}")
                continue
            produced += 1
            yield self.segmenter.prepare(image).copy()

    def calibrate(self, method: str, op_types: tuple[str, ...] | None) -> Path:
        """A calibration cache (tensor ranges) for `method`, computed once per (method, op types)."""
        key = (method, op_types)
        if key in self._caches:
            return self._caches[key]
        from onnxruntime.quantization.calibrate import save_tensors_data

        self.say(f"calibrating ({method}) on up to {self.count} images of {self.calibration.root}")
        calibrator = create_calibrator(
            self.prepared,
            list(op_types) if op_types is not None else None,
            augmented_model_path=str(self._tmp / "augmented.onnx"),
            calibrate_method=_METHOD_ENUM[method],
        )
        images = 0
        chunk: list[np.ndarray] = []
        # The histogram calibrators print progress to stdout, which belongs to our report: send it aside.
        with contextlib.redirect_stdout(sys.stderr):
            for tensor in self._tensors():
                if len(self._latency) < _LATENCY_TENSORS:
                    self._latency.append(tensor)
                if chunk and (len(chunk) == _CHUNK or chunk[0].shape != tensor.shape):
                    calibrator.collect_data(_ListReader(self.input_name, chunk))
                    chunk = []
                chunk.append(tensor)
                images += 1
            if not images:
                raise InputError(self.calibration.root, "no readable calibration images")
            calibrator.collect_data(_ListReader(self.input_name, chunk))
            ranges = calibrator.compute_data()
        cache = self._tmp / f"calibration-{method}-{len(self._caches)}.json"
        save_tensors_data(ranges, cache)
        if images < self.count and not self.calibration_images:
            self.warn(f"only {images} calibration images available ({self.count} asked)")
        self.calibration_images = images
        self._caches[key] = cache
        return cache

    def try_config(
        self, config: QuantizeConfig, cache: Path, runs: int, warmup: int, validation: Dataset | None
    ) -> Trial:
        """Quantize with `config` into a temporary file, measure latency (and accuracy)."""
        path = self._tmp / f"int8-{time.monotonic_ns()}.onnx"
        try:
            quantize_static(
                str(self.prepared),
                str(path),
                calibration_data_reader=None,
                calibration_cache_path=cache,
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(config.op_types) if config.op_types is not None else None,
                per_channel=config.per_channel,
                reduce_range=config.reduce_range,
                activation_type=QuantType[config.activation_type],
                weight_type=QuantType[config.weight_type],
                nodes_to_exclude=list(config.exclude_nodes),
                calibrate_method=_METHOD_ENUM[config.method],
            )
            quantized = self._stamp(path, config)
        except Exception as exc:  # onnxruntime.quantization raises assorted types for unsupported graphs
            return Trial(config, error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        fp32_ms, int8_ms = compare_latency([self.fp32_path, path], self._latency, runs=runs, warmup=warmup)
        accuracy = self.evaluate([path], validation)[0] if validation is not None else None
        return Trial(config, fp32_ms, int8_ms, path.stat().st_size, quantized, accuracy, None, path)

    def _stamp(self, path: Path, config: QuantizeConfig) -> int:
        """Copy the FP32 model's seglens.* metadata, add seglens.quantization; count the int8 nodes."""
        model = onnx.load(str(path))
        fp32_props = {
            p.key: p.value
            for p in onnx.load(str(self.fp32_path), load_external_data=False).metadata_props
            if p.key.startswith("seglens.")
        }
        fp32_props["seglens.quantization"] = json.dumps(
            {
                "format": "QDQ",
                "config": config.to_dict(),
                "calibration": {"dataset": str(self.calibration.root), "images": self.calibration_images},
                "shape_preprocessed": self.preprocessed,
                "fp32_file": self.fp32_path.name,
                "fp32_digest": self.segmenter.info.digest,
                "onnxruntime": ort.__version__,
            }
        )
        others = {p.key: p.value for p in model.metadata_props if not p.key.startswith("seglens.")}
        onnx.helper.set_model_props(model, {**others, **fp32_props})
        onnx.save(model, str(path))
        return quantized_weight_count(model)

    def evaluate(self, paths: Sequence[Path], dataset: Dataset) -> list[Accuracy]:
        """mIoU and per-class IoU of each model on `dataset` (one run of the evaluation service, images
        decoded once, every model on the same scheme)."""
        from app.evaluation.service import EvaluationRequest, evaluate

        request = EvaluationRequest(
            dataset=dataset.root,
            models=tuple(str(p) for p in paths),
            split=dataset.split,
            gt_scheme=dataset.gt_scheme,
        )
        run = evaluate(request)
        results = []
        for evaluation in run.models:
            if not evaluation.images_evaluated:
                raise InputError(dataset.root, "no validation image with ground truth could be evaluated")
            scores = evaluation.scores
            iou = {name: float(v) for name, v in zip(scores.class_names, scores.iou, strict=True)}
            results.append(Accuracy(float(scores.miou), iou, run.scheme.key, evaluation.images_evaluated))
        return results

    def finish(
        self, trial: Trial, out_path: str | Path, fp32: Accuracy | None, int8: Accuracy | None
    ) -> QuantizeResult:
        """Write the trial's model to `out_path` atomically and report it."""
        assert trial.path is not None
        target = Path(out_path)
        if target.resolve() == self.fp32_path.resolve():
            raise InputError(target, "the output would overwrite the FP32 model")
        atomic_write_bytes(target, trial.path.read_bytes())
        if trial.ratio >= 1:
            self.warn(f"INT8 is not faster than FP32 here (latency ratio {trial.ratio:.2f})")
        return QuantizeResult(
            fp32_path=self.fp32_path,
            int8_path=target,
            config=trial.config,
            fp32_bytes=self.fp32_path.stat().st_size,
            int8_bytes=target.stat().st_size,
            fp32_ms=trial.fp32_ms,
            int8_ms=trial.int8_ms,
            calibration_images=self.calibration_images,
            quantized_nodes=trial.quantized_nodes,
            fp32_accuracy=fp32,
            int8_accuracy=int8,
            warnings=tuple(self.warnings),
        )


def _shape_preprocess(source: Path, target: Path) -> None:
    """onnxruntime's recommended pre-processing: symbolic shape inference + graph optimization."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(source), str(target))


def quantized_weight_count(model: onnx.ModelProto) -> int:
    """Number of nodes fed by a DequantizeLinear of an int8/uint8 initializer (their weights are int8)."""
    inits = {i.name for i in model.graph.initializer}
    dequantized = {
        n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
    }
    skip = ("QuantizeLinear", "DequantizeLinear")
    return sum(1 for n in model.graph.node if n.op_type not in skip and dequantized & set(n.input[1:2]))
