"""ONNX Runtime backend: an .onnx file (plus optional manifest) as a Segmenter.

What the graph says (input name, shape, dtype, layout; output shape and type) is read from the session;
what it cannot say (class names, normalization, resize policy) comes from our `seglens.*` metadata_props and
then from the manifest, which wins. Every inconsistency is a ModelLoadError at load time, naming the file,
so that predict() on a loaded model only fails for reasons of the image or the runtime.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnxruntime as ort

from app.core.domain.errors import InputError, ModelLoadError, PredictError
from app.core.domain.labels import BUILTIN_SCHEMES
from app.inference import preprocess, sanity
from app.inference.base import (
    InputSpec,
    Layout,
    ModelInfo,
    OutputKind,
    PendingPrediction,
    Prediction,
    Timings,
)
from app.inference.manifest import ModelManifest, manifest_fields, metadata_fields
from app.inference.postprocess import resize_labels_nearest, upsample_argmax

_SCHEME_BY_COUNT = {19: "trainids", 8: "categories", 34: "labelids"}
_INPUT_DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8"}
_PROVIDERS = ["CPUExecutionProvider"]
_log = logging.getLogger(__name__)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 (hex) of a file, read in chunks so big models never sit in memory twice."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class _OutputSpec:
    name: str
    kind: OutputKind
    rank: int
    class_axis: int | None  # 1 (N,C,h,w) or 3 (N,h,w,C); None: decided on the first output seen


class OnnxSegmenter:
    """A Segmenter over an onnxruntime InferenceSession (CPU). predict() is safe from several threads:
    session.run is thread-safe and releases the GIL, and scratch buffers are per thread."""

    def __init__(self, path: str | Path, manifest: ModelManifest | None = None) -> None:
        self._path = Path(path)
        if not self._path.is_file():
            raise ModelLoadError(self._path, "no such model file")
        self._session: ort.InferenceSession | None = _open_session(self._path)
        settings = _settings(self._session, self._path, manifest)
        self._input_name, spec = _input_spec(self._session, self._path, settings)
        names, scheme = preprocess.declared_classes(self._path, settings, manifest)
        self._output, count = _output_spec(self._session, self._path, settings, names, spec.layout)
        if names is None:
            names, scheme = _infer_classes(self._path, count)
        name = manifest.name if manifest is not None else self._path.stem
        self._info = ModelInfo(
            name=name,
            backend="onnx",
            source=str(self._path),
            class_names=names,
            scheme=scheme if scheme is not None else preprocess.scheme_key(names, name),
            input=spec,
            output=self._output.kind,
            file_size=self._path.stat().st_size,
            digest=file_sha256(self._path),
            extra=_extra(self._session, self._input_name, self._output.name),
        )
        self._lut = preprocess.normalization_lut(spec)
        self._buffers = preprocess.ThreadBuffers()

    @property
    def info(self) -> ModelInfo:
        """Name, classes, input spec, digest etc. of the loaded model."""
        return self._info

    def predict(self, image: np.ndarray) -> Prediction:
        """Labels (HxW uint8, model scheme) for an HxWx3 RGB uint8 image, at the image's resolution."""
        pending = self._begin(image, copy=False)
        return pending.finish(pending.infer())

    def begin(self, image: np.ndarray) -> PendingPrediction:
        """predict() split at session.run: the input tensor is prepared now (and owned, so the pending
        prediction may run on any thread later); infer() runs the session, finish() upsamples."""
        return self._begin(image, copy=True)

    def _begin(self, image: np.ndarray, *, copy: bool) -> PendingPrediction:
        if self._session is None:
            raise PredictError(f"{self._path}: the model is closed")
        preprocess.check_image(image)
        size = (image.shape[0], image.shape[1])
        # Resizing and upsampling are timed in this thread's CPU time: in an evaluation they run at the
        # lowest priority beside inference, and the wall time spent waiting for a core is not the model's
        # latency (it used to triple the VGG16-UNet's reported p50). Both are single-threaded numpy/PIL.
        start = time.thread_time()
        tensor = self.prepare(image)
        if copy:
            tensor = tensor.copy()
        spent = [(time.thread_time() - start) * 1e3, 0.0]

        def infer() -> np.ndarray:
            session = self._session
            if session is None:
                raise PredictError(f"{self._path}: the model is closed")
            began = time.perf_counter()
            try:
                raw = session.run([self._output.name], {self._input_name: tensor})[0]
            except Exception as exc:  # onnxruntime raises several private exception types
                raise PredictError(f"{self._path}: inference failed: {exc}") from exc
            spent[1] = (time.perf_counter() - began) * 1e3
            return np.asarray(raw)

        def finish(raw: np.ndarray) -> Prediction:
            began = time.thread_time()
            labels = self._postprocess(raw, size)
            post = (time.thread_time() - began) * 1e3
            return Prediction(labels=labels, timings=Timings(spent[0], spent[1], post))

        return PendingPrediction(infer=infer, finish=finish)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The input tensor for `image` (resized, normalized, laid out). The array is a per-thread buffer
        reused by the next call from the same thread: copy it to keep it."""
        spec = self._info.input
        resized = preprocess.resize_rgb(image, self.input_size_for(image.shape[0], image.shape[1]))
        height, width = resized.shape[:2]
        shape = (1, 3, height, width) if spec.layout == "NCHW" else (1, height, width, 3)
        buf = self._buffers.get(shape, np.uint8 if spec.dtype == "uint8" else np.float32)
        return preprocess.fill_input(buf, resized, spec, self._lut)

    def input_size_for(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) the model is fed for an image of this size, per the resize policy."""
        return preprocess.input_size_for(self._info.input, height, width)

    def close(self) -> None:
        """Drop the session (frees its memory). Idempotent."""
        self._session = None

    def _postprocess(self, raw: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        if raw.ndim != self._output.rank or raw.shape[0] < 1:
            raise PredictError(f"{self._path}: unexpected output shape {raw.shape}")
        sample = raw[0]
        if self._output.kind == "labels":
            if sample.ndim == 3:
                sample = sample[0] if sample.shape[0] == 1 else sample[:, :, 0]
            sample = sanity.check_labels(sample, len(self._info.class_names), str(self._path))
            return resize_labels_nearest(sample, size)
        sanity.check_scores(sample, str(self._path))
        axis = self._output.class_axis or self._runtime_class_axis(raw)
        return upsample_argmax(sample, size, channels_last=axis == 3)

    def _runtime_class_axis(self, raw: np.ndarray) -> int:
        count = len(self._info.class_names)
        preferred = (1, 3) if self._info.input.layout == "NCHW" else (3, 1)
        for axis in preferred:
            if raw.shape[axis] == count:
                return axis
        raise PredictError(f"{self._path}: output shape {raw.shape} has no axis of {count} classes")


def load_onnx(path: str | Path, manifest: ModelManifest | None = None) -> OnnxSegmenter:
    """Registry entry point: open an .onnx model, optionally with a manifest's settings."""
    return OnnxSegmenter(path, manifest)


# --- load-time analysis ------------------------------------------------------------------------------


THREADS_ENV = "SEGLENS_INFERENCE_THREADS"


def inference_threads() -> int:
    """Threads one ONNX model call may use: $SEGLENS_INFERENCE_THREADS, or 0 (onnxruntime's default, one
    per physical core). Fewer leaves cores to other programs, and to the decoding and counting of an
    evaluation, which then hide behind inference entirely (benchmarks/bench_gui.py --inference-threads)."""
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return 0
    if not value.isdigit():
        _log.warning("$%s=%r is not a number of threads (0 = all cores): using all cores", THREADS_ENV, value)
        return 0
    return int(value)


def _open_session(path: Path) -> ort.InferenceSession:
    # Spinning stays on inside a run (turning it off cost ~40% of run() time on a 15 ms model), but stops
    # when run() returns: otherwise the pool's threads burn the cores that decoding and counting of the
    # next images need (evaluation 1.28x -> 1.19x of pure inference, benchmarks/bench_gui.py goal 5).
    options = ort.SessionOptions()
    options.intra_op_num_threads = inference_threads()
    options.add_session_config_entry("session.force_spinning_stop", "1")
    try:
        return ort.InferenceSession(str(path), options, providers=_PROVIDERS)
    except Exception as exc:  # InvalidProtobuf, Fail, NotImplemented...: all mean "cannot use this file"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "protobuf" in reason.lower() or "parse" in reason.lower():
            raise ModelLoadError(path, f"not an ONNX model or a damaged one ({reason})") from exc
        raise ModelLoadError(path, f"onnxruntime cannot load this model: {reason}") from exc


def _settings(session: ort.InferenceSession, path: Path, manifest: ModelManifest | None) -> dict[str, Any]:
    """Metadata settings overlaid with the manifest's. Class names and scheme are one decision: when the
    manifest names the classes, the file's class metadata is dropped entirely."""
    props = session.get_modelmeta().custom_metadata_map or {}
    try:
        settings = metadata_fields(props, path)
    except InputError as exc:
        raise ModelLoadError(path, exc.problem) from exc
    if manifest is not None:
        given = manifest_fields(manifest)
        if "class_names" in given or "scheme" in given:
            settings.pop("class_names", None)
            settings.pop("scheme", None)
        settings.update(given)
    return settings


def _dim(value: Any) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def _input_spec(
    session: ort.InferenceSession, path: Path, settings: Mapping[str, Any]
) -> tuple[str, InputSpec]:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        found = "no input" if not inputs else f"{len(inputs)} inputs ({', '.join(i.name for i in inputs)})"
        raise ModelLoadError(path, f"a segmentation model takes one image input; this graph has {found}")
    tensor = inputs[0]
    shape = list(tensor.shape or [])
    if len(shape) != 4:
        raise ModelLoadError(path, f"input {tensor.name!r} must be rank 4 (N,3,H,W or N,H,W,3), got {shape}")
    layout = _input_layout(path, shape, settings.get("layout"))
    height, width = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    dtype = _INPUT_DTYPES.get(tensor.type)
    if dtype is None:
        raise ModelLoadError(path, f"input {tensor.name!r} has type {tensor.type}; float32 or uint8 needed")
    size, resize = preprocess.resolve_input_size(path, _dim(height), _dim(width), settings)
    defaults = InputSpec(None, None)
    spec = InputSpec(
        height=size[0] if size else None,
        width=size[1] if size else None,
        layout=layout,
        channel_order=settings.get("channel_order", defaults.channel_order),
        mean=settings.get("mean", defaults.mean),
        std=settings.get("std", defaults.std),
        scale=settings.get("scale", defaults.scale),
        resize=resize,
        size_multiple=settings.get("size_multiple", defaults.size_multiple),
        dtype=cast(Any, dtype),
    )
    return tensor.name, spec


def _input_layout(path: Path, shape: Sequence[Any], declared: Layout | None) -> Layout:
    first, last = _dim(shape[1]), _dim(shape[3])
    if first == 3 and last != 3:
        graph: Layout = "NCHW"
    elif last == 3 and first != 3:
        graph = "NHWC"
    elif first == 3 or (first is None and last is None):
        # Both sides 3 (a 3x3 image) or both dynamic: nothing tells them apart but the manifest.
        graph = declared or "NCHW"
    else:
        raise ModelLoadError(
            path, f"input must have 3 colour channels (N,3,H,W or N,H,W,3), got {list(shape)}"
        )
    if declared is not None and declared != graph:
        raise ModelLoadError(
            path, f"the manifest says layout {declared} but the graph input is {list(shape)}"
        )
    return graph


def _infer_classes(path: Path, count: int | None) -> tuple[tuple[str, ...], str]:
    key = _SCHEME_BY_COUNT.get(count or 0)
    if key is None:
        said = f"{count} classes" if count else "an unknown number of classes"
        raise ModelLoadError(
            path,
            f"the model outputs {said} and names none: add a manifest (e.g. {path.stem}.yaml beside it) "
            "with class_names or scheme",
        )
    return BUILTIN_SCHEMES[key].names, key


def _output_spec(
    session: ort.InferenceSession,
    path: Path,
    settings: Mapping[str, Any],
    names: tuple[str, ...] | None,
    layout: Layout,
) -> tuple[_OutputSpec, int | None]:
    """The first graph output as labels or class scores, and the class count the graph shows (if any)."""
    tensor = session.get_outputs()[0]
    shape = list(tensor.shape or [])
    integer = "int" in tensor.type
    kind: OutputKind = settings.get("output") or ("labels" if integer else "logits")
    if len(shape) == 3:
        if kind != "labels":
            raise ModelLoadError(path, f"output {tensor.name!r} is {shape} (rank 3) but declared {kind!r}")
        return _OutputSpec(tensor.name, "labels", 3, None), None
    if len(shape) != 4:
        raise ModelLoadError(
            path,
            f"output {tensor.name!r} must be rank 4 (N,C,h,w or N,h,w,C scores; N,1,h,w labels) or rank 3 "
            f"(N,h,w labels), got {shape}",
        )
    first, last = _dim(shape[1]), _dim(shape[3])
    if kind == "labels" or (integer and 1 in (first, last)):
        if 1 not in (first, last) and not (first is None and last is None):
            raise ModelLoadError(path, f"a labels output must be N,h,w or N,1,h,w; got {shape}")
        return _OutputSpec(tensor.name, "labels", 4, None), None
    axis, count = _class_axis(path, shape, names, layout)
    return _OutputSpec(tensor.name, kind, 4, axis), count


def _class_axis(
    path: Path, shape: Sequence[Any], names: tuple[str, ...] | None, layout: Layout
) -> tuple[int | None, int | None]:
    dims = {1: _dim(shape[1]), 3: _dim(shape[3])}
    preferred = (1, 3) if layout == "NCHW" else (3, 1)
    if names is not None:
        for axis in preferred:
            if dims[axis] == len(names):
                return axis, len(names)
        known = [dims[a] for a in preferred if dims[a] is not None]
        if known:
            raise ModelLoadError(
                path,
                f"the graph outputs {known[0]} classes (shape {list(shape)}) but {len(names)} class names "
                "are given",
            )
        return None, None  # fully dynamic output: the class axis is found on the first prediction
    # No names: prefer an axis whose size is a builtin scheme's class count, then the input's layout.
    for axis in preferred:
        if dims[axis] in _SCHEME_BY_COUNT:
            return axis, dims[axis]
    for axis in preferred:
        if dims[axis] is not None:
            return axis, dims[axis]
    return None, None


def _extra(session: ort.InferenceSession, input_name: str, output_name: str) -> dict[str, str]:
    meta = session.get_modelmeta()
    return {
        "providers": ",".join(session.get_providers()),
        "input_name": input_name,
        "input_shape": str(session.get_inputs()[0].shape),
        "output_name": output_name,
        "output_shape": str(session.get_outputs()[0].shape),
        "producer": meta.producer_name or "",
    }
