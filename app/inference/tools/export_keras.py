"""Keras model -> self-describing ONNX file (tf2onnx), with a fidelity check against Keras.

The model is opened exactly as the keras backend opens it (KerasSegmenter: compile=False, safe_mode, the
manifest beside the file), converted with tf2onnx.convert.from_function over a dynamic batch and the
model's own H/W, and given our seglens.* metadata (class names, scheme, output kind, the normalization as
mean/std/scale/channel order, input size, the source's sha256), so the ONNX backend needs no manifest.
The fidelity report compares the Keras output with onnxruntime's on the same preprocessed tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.core.domain.errors import InputError, ModelLoadError
from app.core.io.fileutil import atomic_write_bytes
from app.inference.backends.keras_backend import INSTALL_HINT, KerasSegmenter
from app.inference.manifest import ModelManifest, find_manifest, load_manifest
from app.inference.tools.export_common import (
    FidelityReport,
    compare_scores,
    model_metadata,
    open_session,
    write_metadata,
)


def export_keras(
    model_path: str | Path,
    out_path: str | Path,
    *,
    sample_images: Sequence[np.ndarray],
    opset: int = 17,
    manifest: ModelManifest | None = None,
) -> FidelityReport:
    """Convert a .keras/.h5 model to ONNX at `out_path` and return the fidelity on `sample_images` (RGB
    uint8; at least one). `manifest` defaults to the one found beside the model file. The file is written
    even when fidelity is below the goal: the caller decides (the CLI exits 1)."""
    if not sample_images:
        raise ValueError("the fidelity check needs at least one sample image")
    source = Path(model_path)
    segmenter = KerasSegmenter(source, manifest if manifest is not None else _manifest_beside(source))
    try:
        proto = _convert(segmenter, opset)
        out = Path(out_path)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, proto.SerializeToString())
        write_metadata(out, keras_metadata(segmenter))
        return check_fidelity(segmenter, out, sample_images)
    finally:
        segmenter.close()


def keras_metadata(segmenter: KerasSegmenter) -> dict[str, str]:
    """The seglens.* metadata_props describing a loaded Keras model (normalization as mean/std/scale)."""
    return model_metadata(segmenter.info, output=segmenter.info.output, source_kind="keras")


def check_fidelity(
    segmenter: KerasSegmenter, onnx_path: str | Path, images: Sequence[np.ndarray]
) -> FidelityReport:
    """Keras vs onnxruntime outputs (N, h, w, K) on the same preprocessed tensor of each image."""
    session = open_session(onnx_path)
    name = session.get_inputs()[0].name
    reference: list[np.ndarray] = []
    exported: list[np.ndarray] = []
    for image in images:
        tensor = segmenter.prepare(image).copy()  # prepare() hands out a reused buffer
        reference.append(segmenter.run(tensor))
        exported.append(np.asarray(session.run(None, {name: tensor})[0]))
    return compare_scores(reference, exported, class_axis=3)


def _convert(segmenter: KerasSegmenter, opset: int) -> Any:
    """The tf2onnx ModelProto of the segmenter's model: input "image" (N, H, W, 3), batch dynamic."""
    source = Path(segmenter.info.source)
    try:
        import tensorflow as tf  # type: ignore[import-untyped,unused-ignore]
        import tf2onnx  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise ModelLoadError(source, f"export needs tf2onnx ({exc.name} missing): {INSTALL_HINT}") from exc
    model = segmenter.keras_model
    spec = segmenter.info.input
    height, width = (spec.height, spec.width) if spec.resize == "fixed" else (None, None)
    signature = (tf.TensorSpec([None, height, width, 3], tf.float32, name="image"),)

    def call(image: Any) -> Any:
        return model(image, training=False)

    try:
        proto, _ = tf2onnx.convert.from_function(
            tf.function(call, autograph=False), input_signature=signature, opset=opset
        )
    except Exception as exc:  # tf2onnx raises plain Exceptions for unsupported ops
        raise ModelLoadError(source, f"tf2onnx cannot convert this model (opset {opset}): {exc}") from exc
    return proto


def _manifest_beside(model: Path) -> ModelManifest | None:
    found = find_manifest(model)
    if found is None:
        return None
    try:
        return load_manifest(found)
    except InputError as exc:
        raise ModelLoadError(exc.path, exc.problem) from exc
