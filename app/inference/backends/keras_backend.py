"""Keras backend: a `.keras` (Keras 3 zip) or legacy `.h5`/`.hdf5` file as a Segmenter.

The teams' baseline is a VGG16-UNet (tf.keras.applications.VGG16 encoder, U-Net decoder, softmax over 8
classes, input 256x512). What the file says is read from the model: input size and layout (NHWC, one
image input), output (rank 4, channels last; softmax/sigmoid last activation -> probabilities, else
logits) and class count. What it cannot say comes from the manifest beside it (or a manifest with
`kind: keras`): class names or scheme, and the normalization.

Files are opened with compile=False, so models saved with custom losses/metrics (dice, IoU functions)
open without their code, and with Keras' safe_mode ON: a Lambda layer holding Python bytecode is refused
with a ModelLoadError unless the manifest trusts it. Manifest `options` (kind: keras)::

    options:
      normalization: caffe     # how pixels become inputs (default "unit"):
                               #   caffe: BGR, minus ImageNet mean [103.939, 116.779, 123.68], no scaling
                               #          (keras.applications.vgg16.preprocess_input)
                               #   tf:    x / 127.5 - 1 (RGB);  torch: x / 255, ImageNet mean/std (RGB)
                               #   unit:  x / 255 (RGB);        raw: x as is, 0..255 (RGB)
      trust_lambda: true       # load with safe_mode=False: Lambda layers run code stored in the file,
                               # so only for files you trust ("safe_mode: false" means the same)
      custom_modules: [teamx.layers]   # Python modules to import first: they register custom layer
                                       # classes with @keras.saving.register_keras_serializable

Explicit manifest mean/std/scale/channel_order override the preset's values one by one.

Threads: predict() runs a tf.function traced once at load time with a fixed input signature; a traced
function is safe to call from several threads (TF releases the GIL while it runs), and preprocessing
buffers are per thread.
"""

from __future__ import annotations

import importlib
import re
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.domain.errors import ModelLoadError, PredictError
from app.core.domain.labels import BUILTIN_SCHEMES
from app.core.io.paths import missing_framework_hint
from app.inference import preprocess, sanity
from app.inference.backends.onnx_backend import file_sha256
from app.inference.base import InputSpec, ModelInfo, OutputKind, Prediction, Timings
from app.inference.manifest import ModelManifest, manifest_fields
from app.inference.postprocess import upsample_argmax

INSTALL_HINT = "pip install 'seglens[keras]'"
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
_SCHEME_BY_COUNT = {8: "categories", 19: "trainids"}
_OPTION_KEYS = {"normalization", "trust_lambda", "safe_mode", "custom_modules"}
_PROBABILITY_ACTIVATIONS = {"softmax", "sigmoid"}


@dataclass(frozen=True)
class Normalization:
    """x = (pixel * scale - mean) / std per channel, channels in `channel_order` (InputSpec's rule)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float
    channel_order: str


NORMALIZATIONS: dict[str, Normalization] = {
    "caffe": Normalization((103.939, 116.779, 123.68), (1.0, 1.0, 1.0), 1.0, "BGR"),
    "tf": Normalization((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), 1.0 / 127.5, "RGB"),
    "torch": Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1.0 / 255.0, "RGB"),
    "unit": Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 1.0 / 255.0, "RGB"),
    "raw": Normalization((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 1.0, "RGB"),
}
DEFAULT_NORMALIZATION = "unit"


@dataclass(frozen=True)
class KerasOptions:
    """The manifest's keras `options`, validated."""

    normalization: str | None = None  # a NORMALIZATIONS key; None: not said
    trust_code: bool = False  # safe_mode=False
    custom_modules: tuple[str, ...] = ()


def parse_options(options: Mapping[str, Any], source: Path | None) -> KerasOptions:
    """KerasOptions from a manifest's `options`; ModelLoadError naming `source` for a bad key or value."""
    unknown = sorted(set(options) - _OPTION_KEYS)
    if unknown:
        raise ModelLoadError(source, f"unknown keras option(s) {unknown}; known: {sorted(_OPTION_KEYS)}")
    norm = options.get("normalization")
    if norm is not None and norm not in NORMALIZATIONS:
        raise ModelLoadError(
            source, f"option 'normalization' must be one of {', '.join(NORMALIZATIONS)}, got {norm!r}"
        )
    trust = options.get("trust_lambda", False)
    safe = options.get("safe_mode", True)
    if not isinstance(trust, bool) or not isinstance(safe, bool):
        raise ModelLoadError(source, "options 'trust_lambda' and 'safe_mode' must be true or false")
    modules = options.get("custom_modules", [])
    if isinstance(modules, str):
        modules = [modules]
    if not isinstance(modules, list) or not all(isinstance(m, str) and m for m in modules):
        raise ModelLoadError(source, "option 'custom_modules' must be a list of Python module names")
    return KerasOptions(norm, trust or not safe, tuple(modules))


def import_tensorflow(path: Path | None) -> tuple[Any, Any]:
    """(tensorflow, keras), or ModelLoadError telling how to install the extra."""
    try:
        import keras  # type: ignore[import-untyped,unused-ignore]
        import tensorflow as tf  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise ModelLoadError(
            path,
            missing_framework_hint("Keras models", "keras", f"tensorflow and keras ({exc.name} missing)"),
        ) from exc
    if keras.backend.backend() != "tensorflow":
        raise ModelLoadError(
            path, f"Keras runs on the {keras.backend.backend()!r} backend; set KERAS_BACKEND=tensorflow"
        )
    return tf, keras


def check_keras_file(path: Path) -> None:
    """A truncated .keras archive has lost its zip directory: refused at once, not after importing
    TensorFlow (seconds) to find out."""
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise ModelLoadError(path, "not a Keras .keras archive (a zip file) or a damaged one")


def open_keras_model(path: Path, options: KerasOptions | None = None) -> Any:
    """Load a Keras model file for inference (compile=False; safe_mode unless options trust the code).
    Every failure is a ModelLoadError naming the file and saying what would make it open."""
    if not path.is_file():
        raise ModelLoadError(path, "no such model file")
    check_keras_file(path)
    _, keras = import_tensorflow(path)
    options = options or KerasOptions()
    for module in options.custom_modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # any error in the user's module means its layers are not available
            raise ModelLoadError(path, f"custom_modules: cannot import {module!r}: {exc}") from exc
    try:
        return keras.models.load_model(str(path), compile=False, safe_mode=not options.trust_code)
    except Exception as exc:  # Keras raises ValueError/TypeError/OSError/KeyError for damaged or odd files
        raise ModelLoadError(path, _load_problem(path, exc)) from exc


def _load_problem(path: Path, exc: Exception) -> str:
    """A user-facing reason for a load failure, with the way out where there is one."""
    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if "Lambda" in text and "safe_mode" in text:
        return (
            "the model has a Lambda layer holding Python code, which is not loaded by default (it can run "
            "arbitrary code). If you trust this file, allow it in a manifest beside it, e.g. "
            f'{path.stem}.json: {{"name": "{path.stem}", "kind": "keras", "path": "{path.name}", '
            '"options": {"trust_lambda": true}}'
        )
    layer = re.search(r"Could not locate class '([^']+)'|Unknown layer: '([^']+)'", text)
    if layer is not None:
        name = layer.group(1) or layer.group(2)
        return (
            f"the model uses the custom layer {name!r}, whose code is not available. Put the module that "
            "defines it (decorated with @keras.saving.register_keras_serializable) in a manifest beside "
            'the model: "options": {"custom_modules": ["your_package.layers"]}'
        )
    if path.suffix.lower() == ".keras" and ("zip" in text or "File not found" in text):
        return "not a Keras .keras archive (a zip file) or a damaged one"
    if isinstance(exc, OSError) and path.suffix.lower() in (".h5", ".hdf5"):
        return f"not an HDF5 Keras model or a damaged one ({first})"
    return f"Keras cannot load this model: {first}"


# --- the segmenter ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Graph:
    """What the loaded model's one input and one output look like."""

    height: int | None
    width: int | None
    classes: int
    output: OutputKind


class KerasSegmenter:
    """A Segmenter over a Keras model (TensorFlow backend, CPU). predict() may run in several threads."""

    def __init__(self, path: str | Path, manifest: ModelManifest | None = None) -> None:
        self._path = Path(path)
        if not self._path.is_file():
            raise ModelLoadError(self._path, "no such model file")
        source = manifest.source if manifest is not None and manifest.source is not None else self._path
        options = parse_options(manifest.options if manifest is not None else {}, source)
        check_keras_file(self._path)
        self._tf, keras = import_tensorflow(self._path)
        self._model: Any = open_keras_model(self._path, options)
        settings = manifest_fields(manifest) if manifest is not None else {}
        graph = _read_graph(self._model, self._path, settings)
        spec, norm_name = _input_spec(self._path, graph, settings, options)
        names, scheme = _classes(self._path, settings, manifest, graph.classes)
        name = manifest.name if manifest is not None else self._path.stem
        self._info = ModelInfo(
            name=name,
            backend="keras",
            source=str(self._path),
            class_names=names,
            scheme=scheme if scheme is not None else preprocess.scheme_key(names, name),
            input=spec,
            output=graph.output,
            file_size=self._path.stat().st_size,
            digest=file_sha256(self._path),
            extra=_extra(self._model, keras, norm_name, options),
        )
        self._fn: Any = self._trace(graph)
        self._lut = preprocess.normalization_lut(spec)
        self._buffers = preprocess.ThreadBuffers()

    @property
    def info(self) -> ModelInfo:
        """Name, classes, input spec, digest etc. of the loaded model."""
        return self._info

    @property
    def keras_model(self) -> Any:
        """The underlying Keras model, e.g. for export."""
        if self._fn is None:
            raise PredictError(f"{self._path}: the model is closed")
        return self._model

    def predict(self, image: np.ndarray) -> Prediction:
        """Labels (HxW uint8, model scheme) for an HxWx3 RGB uint8 image, at the image's resolution."""
        preprocess.check_image(image)
        start = time.perf_counter()
        tensor = self.prepare(image)
        prepared = time.perf_counter()
        raw = self.run(tensor)
        ran = time.perf_counter()
        sanity.check_scores(raw[0], str(self._path))
        labels = upsample_argmax(raw[0], (image.shape[0], image.shape[1]), channels_last=True)
        done = time.perf_counter()
        timings = Timings((prepared - start) * 1e3, (ran - prepared) * 1e3, (done - ran) * 1e3)
        return Prediction(labels=labels, timings=timings)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """The (1, H, W, 3) float32 input for `image` (resized, normalized). The array is a per-thread
        buffer reused by the next call from the same thread: copy it to keep it."""
        preprocess.check_image(image)
        spec = self._info.input
        resized = preprocess.resize_rgb(image, self.input_size_for(image.shape[0], image.shape[1]))
        height, width = resized.shape[:2]
        buf = self._buffers.get((1, height, width, 3), np.float32)
        # The ONNX backend's 256-entry tables: exact float32 (x*scale - mean)/std, no temporaries.
        return preprocess.fill_input(buf, resized, spec, self._lut)

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """The model's raw output (N, h, w, K) float32 for a prepared (N, H, W, 3) float32 tensor."""
        fn = self._fn
        if fn is None:
            raise PredictError(f"{self._path}: the model is closed")
        try:
            out = fn(self._tf.constant(tensor))
        except Exception as exc:  # TF raises many private error types (InvalidArgumentError, ...)
            raise PredictError(f"{self._path}: inference failed: {exc}") from exc
        return np.asarray(out.numpy(), dtype=np.float32)

    def input_size_for(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) the model is fed for an image of this size, per the resize policy."""
        return preprocess.input_size_for(self._info.input, height, width)

    def close(self) -> None:
        """Drop the model and its traced function (frees their memory). Idempotent."""
        self._fn = None
        self._model = None

    def _trace(self, graph: _Graph) -> Any:
        """The model call as a tf.function, traced now: once, with a fixed signature, so that predict()
        never retraces (model.predict() builds a data pipeline per call, far slower for one image)."""
        tf, model = self._tf, self._model
        signature = [tf.TensorSpec([None, graph.height, graph.width, 3], tf.float32, name="image")]

        @tf.function(input_signature=signature, autograph=False)
        def call(image: Any) -> Any:
            return model(image, training=False)

        try:
            return call.get_concrete_function()
        except Exception as exc:  # a model that cannot be traced cannot be used
            raise ModelLoadError(self._path, f"cannot trace the model for inference: {exc}") from exc


def load_keras(path: str | Path, manifest: ModelManifest | None = None) -> KerasSegmenter:
    """Registry entry point: open a .keras/.h5 model, optionally with a manifest's settings."""
    return KerasSegmenter(path, manifest)


# --- load-time analysis ------------------------------------------------------------------------------


def _shape(tensor: Any) -> list[int | None]:
    return [None if d is None else int(d) for d in tuple(tensor.shape)]


def _read_graph(model: Any, path: Path, settings: Mapping[str, Any]) -> _Graph:
    inputs, outputs = list(model.inputs or []), list(model.outputs or [])
    if len(inputs) != 1:
        raise ModelLoadError(path, f"a segmentation model takes one image input; this one has {len(inputs)}")
    if len(outputs) != 1:
        raise ModelLoadError(path, f"a segmentation model has one output; this one has {len(outputs)}")
    ins, outs = _shape(inputs[0]), _shape(outputs[0])
    if len(ins) != 4 or ins[3] != 3:
        raise ModelLoadError(path, f"the input must be N,H,W,3 (channels last, RGB/BGR), got {ins}")
    if settings.get("layout", "NHWC") != "NHWC":
        raise ModelLoadError(path, f"the manifest says layout {settings['layout']} but the input is {ins}")
    if len(outs) != 4 or outs[3] is None:
        raise ModelLoadError(
            path, f"the output must be N,h,w,K class scores (channels last, K fixed), got {outs}"
        )
    declared = settings.get("output")
    if declared == "labels":
        raise ModelLoadError(path, "the keras backend reads class scores; output 'labels' is not supported")
    kind: OutputKind = declared or _output_kind(model)
    return _Graph(ins[1], ins[2], outs[3], kind)


def _output_kind(model: Any) -> OutputKind:
    """'probabilities' when the output layer ends in softmax/sigmoid, else 'logits'."""
    history = getattr(model.outputs[0], "_keras_history", None)
    layer = getattr(history, "operation", None) or model.layers[-1]
    if type(layer).__name__ == "Softmax":
        return "probabilities"
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "")
    return "probabilities" if name in _PROBABILITY_ACTIVATIONS else "logits"


def _input_spec(
    path: Path, graph: _Graph, settings: Mapping[str, Any], options: KerasOptions
) -> tuple[InputSpec, str]:
    """The InputSpec and the name of the normalization it uses ("custom" when the manifest overrides)."""
    norm_name = options.normalization or DEFAULT_NORMALIZATION
    norm = NORMALIZATIONS[norm_name]
    if any(k in settings for k in ("mean", "std", "scale", "channel_order")):
        norm_name = f"{norm_name}+manifest"
    # A fully convolutional U-Net of any input size still needs sides divisible by its total stride.
    sizing = {"resize": "multiple", **settings} if graph.height is None and graph.width is None else settings
    size, resize = preprocess.resolve_input_size(path, graph.height, graph.width, sizing)
    spec = InputSpec(
        height=size[0] if size else None,
        width=size[1] if size else None,
        layout="NHWC",
        channel_order=settings.get("channel_order", norm.channel_order),
        mean=settings.get("mean", norm.mean),
        std=settings.get("std", norm.std),
        scale=settings.get("scale", norm.scale),
        resize=resize,
        size_multiple=settings.get("size_multiple", InputSpec(None, None).size_multiple),
    )
    return spec, norm_name


def _classes(
    path: Path, settings: Mapping[str, Any], manifest: ModelManifest | None, count: int
) -> tuple[tuple[str, ...], str | None]:
    names, scheme = preprocess.declared_classes(path, settings, manifest)
    if names is None:
        key = _SCHEME_BY_COUNT.get(count)
        if key is None:
            raise ModelLoadError(
                path,
                f"the model outputs {count} classes and names none: add a manifest (e.g. {path.stem}.json "
                'beside it) with "class_names" or "scheme"',
            )
        return BUILTIN_SCHEMES[key].names, key
    if len(names) != count:
        raise ModelLoadError(
            path, f"the model outputs {count} classes but {len(names)} class names are given"
        )
    return names, scheme


def _extra(model: Any, keras: Any, normalization: str, options: KerasOptions) -> dict[str, str]:
    return {
        "keras": str(keras.__version__),
        "input_shape": str(_shape(model.inputs[0])),
        "output_shape": str(_shape(model.outputs[0])),
        "normalization": normalization,
        "safe_mode": str(not options.trust_code).lower(),
        "parameters": str(int(model.count_params())),
    }
