"""What every exporter shares: the seglens.* metadata that makes an ONNX file self-describing, and the
fidelity report printed after each export (max |logit diff| and argmax agreement on sample images)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.io.fileutil import atomic_write_bytes
from app.inference.base import ModelInfo

FIDELITY_MAX_ABS = 1e-4
FIDELITY_MIN_AGREEMENT = 0.9999


def seglens_metadata(
    *,
    class_names: Sequence[str],
    scheme: str,
    output: str,
    input_size: tuple[int, int] | None,
    mean: Sequence[float],
    std: Sequence[float],
    scale: float,
    channel_order: str,
    source_digest: str,
    source_kind: str,
    resize: str | None = None,
) -> dict[str, str]:
    """The `seglens.*` metadata_props the ONNX backend reads (app/inference/manifest.metadata_fields)."""
    props = {
        "seglens.class_names": json.dumps(list(class_names)),
        "seglens.scheme": scheme,
        "seglens.output": output,
        "seglens.mean": json.dumps([float(v) for v in mean]),
        "seglens.std": json.dumps([float(v) for v in std]),
        "seglens.scale": repr(float(scale)),
        "seglens.channel_order": channel_order,
        "seglens.resize": resize or ("fixed" if input_size is not None else "any"),
        "seglens.source_digest": source_digest,
        "seglens.source_kind": source_kind,
    }
    if input_size is not None:
        props["seglens.input_size"] = f"{input_size[0]}x{input_size[1]}"
    return props


def model_metadata(info: ModelInfo, *, output: str, source_kind: str) -> dict[str, str]:
    """seglens_metadata for an exported model loaded as `info`: its classes, scheme, input size and
    normalization (as mean/std/scale/channel order), resize policy and digest; `output` is the exported
    graph's output kind and `source_kind` the backend it came from ("keras", "hf")."""
    spec = info.input
    size = (spec.height, spec.width) if spec.height is not None and spec.width is not None else None
    return seglens_metadata(
        class_names=info.class_names,
        scheme=info.scheme,
        output=output,
        input_size=size,
        mean=spec.mean,
        std=spec.std,
        scale=spec.scale,
        channel_order=spec.channel_order,
        source_digest=info.digest,
        source_kind=source_kind,
        resize=spec.resize,
    )


def open_session(onnx_path: str | Path) -> Any:
    """An onnxruntime InferenceSession (CPU) over an exported file, for the fidelity check."""
    import onnxruntime as ort

    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


def write_metadata(onnx_path: str | Path, props: Mapping[str, str]) -> None:
    """Replace the model's seglens.* metadata_props with `props` (atomic rewrite of the file)."""
    import onnx

    path = Path(onnx_path)
    model = onnx.load(str(path))
    kept = [p for p in model.metadata_props if not p.key.startswith("seglens.")]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write_bytes(path, model.SerializeToString())


@dataclass(frozen=True)
class FidelityReport:
    """How closely an exported model reproduces its source on sample inputs."""

    images: int
    max_abs_diff: float  # over logits (or probabilities)
    argmax_agreement: float  # fraction of pixels with the same class

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= FIDELITY_MAX_ABS and self.argmax_agreement >= FIDELITY_MIN_AGREEMENT

    def describe(self) -> str:
        verdict = "ok" if self.ok else "BELOW GOAL"
        return (
            f"fidelity on {self.images} image(s): max |logit diff| {self.max_abs_diff:.2e} "
            f"(goal <= {FIDELITY_MAX_ABS:g}), argmax agreement {self.argmax_agreement * 100:.4f}% "
            f"(goal >= {FIDELITY_MIN_AGREEMENT * 100:.2f}%): {verdict}"
        )


def compare_scores(
    reference: Sequence[np.ndarray], exported: Sequence[np.ndarray], class_axis: int
) -> FidelityReport:
    """Compare per-image score tensors of the same shape (class axis given) from source and export."""
    if len(reference) != len(exported) or not reference:
        raise ValueError("need the same, non-zero number of reference and exported outputs")
    worst = 0.0
    same = 0
    total = 0
    for ref, got in zip(reference, exported, strict=True):
        if ref.shape != got.shape:
            raise ValueError(f"exported output shape {got.shape} differs from the source's {ref.shape}")
        worst = max(worst, float(np.max(np.abs(ref.astype(np.float64) - got.astype(np.float64)))))
        a, b = np.argmax(ref, axis=class_axis), np.argmax(got, axis=class_axis)
        same += int(np.count_nonzero(a == b))
        total += a.size
    return FidelityReport(len(reference), worst, same / total)
