"""Export a local transformers semantic-segmentation checkpoint to a self-describing ONNX file.

    report = export_hf("segformer-b0-cityscapes/", "segformer.onnx", sample_images=[image])
    print(report.describe())

The graph takes pixel_values (N, 3, height, width; height and width dynamic) and returns logits (N, K, h, w);
with fuse_postprocess=True it returns labels first (N, height, width uint8: the logits resized bilinearly to
the input size inside the graph, half_pixel = PyTorch's align_corners=False, then ArgMax) and the logits
second. Our seglens.* metadata (class names, scheme, normalization, input size, source digest) makes the file
open in the ONNX backend without a manifest. The fidelity check compares torch and onnxruntime on the
sample images' prepared tensors.

The legacy TorchScript exporter (dynamo=False) is used: it exports SegFormer with dynamic height/width and
is the export DESIGN.md measured. The dynamo exporter (torch 2.13, onnxscript 0.7.2) also exports the tiny
test SegFormer, but took 9.5 s against under 1 s for the legacy one, so it is not the default here.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.core.domain.errors import InputError, ModelLoadError
from app.core.io.fileutil import atomic_write_bytes
from app.core.io.imageio import read_image
from app.inference.backends.hf_backend import HfSegmenter
from app.inference.postprocess import upsample_argmax
from app.inference.tools.export_common import (
    FidelityReport,
    compare_scores,
    model_metadata,
    open_session,
    write_metadata,
)

LABELS_GOAL = 0.9999


@dataclass(frozen=True)
class HfExportReport(FidelityReport):
    """Fidelity of the logits, plus (fused exports) how often the in-graph labels equal upsample_argmax of
    the same logits."""

    labels_agreement: float | None = None

    @property
    def ok(self) -> bool:
        labels_ok = self.labels_agreement is None or self.labels_agreement >= LABELS_GOAL
        return super().ok and labels_ok

    def describe(self) -> str:
        """One line per check, with the goals and a verdict."""
        text = super().describe()
        if self.labels_agreement is not None:
            verdict = "ok" if self.labels_agreement >= LABELS_GOAL else "BELOW GOAL"
            text += (
                f"\nfused labels vs upsample_argmax of the same logits: {self.labels_agreement * 100:.4f}% "
                f"(goal >= {LABELS_GOAL * 100:.2f}%): {verdict}"
            )
        return text


def export_hf(
    model_dir: str | Path,
    out_path: str | Path,
    *,
    sample_images: Sequence[np.ndarray | str | Path],
    opset: int = 17,
    fuse_postprocess: bool = False,
) -> HfExportReport:
    """Export `model_dir` (a local checkpoint) to `out_path` (.onnx) and check it on `sample_images`
    (RGB uint8 arrays or image files). Raises ModelLoadError for checkpoints we cannot export."""
    if not sample_images:
        raise InputError(Path(out_path), "export needs at least one sample image for the fidelity check")
    images = [img if isinstance(img, np.ndarray) else read_image(img) for img in sample_images]
    segmenter = HfSegmenter(model_dir)
    try:
        if segmenter.universal:
            raise ModelLoadError(
                Path(model_dir), "ONNX export covers semantic-segmentation models (logits), not Mask2Former"
            )
        out = Path(out_path)
        with tempfile.TemporaryDirectory(prefix="seglens-export-") as scratch:
            staging = Path(scratch) / "model.onnx"
            _torch_export(segmenter, staging, segmenter.prepare(images[0]), opset, fuse_postprocess)
            write_metadata(staging, _metadata(segmenter, fuse_postprocess))
            report = _fidelity(segmenter, staging, images, fuse_postprocess)
            atomic_write_bytes(out, staging.read_bytes())
        return report
    finally:
        segmenter.close()


def _torch_export(segmenter: HfSegmenter, path: Path, example: np.ndarray, opset: int, fuse: bool) -> None:
    import torch

    module = _wrapper(torch, segmenter.torch_model, fuse)
    outputs = ["labels", "logits"] if fuse else ["logits"]
    dynamic: dict[str, dict[int, str]] = {
        "pixel_values": {0: "batch", 2: "height", 3: "width"},
        "logits": {0: "batch", 2: "logits_height", 3: "logits_width"},
    }
    if fuse:
        dynamic["labels"] = {0: "batch", 1: "height", 2: "width"}
    try:
        with warnings.catch_warnings():
            # The tracer warns about each shape it turns into a constant; the dynamic axes cover ours.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter is chosen on purpose
            torch.onnx.export(
                module,
                (torch.from_numpy(example),),
                str(path),
                input_names=["pixel_values"],
                output_names=outputs,
                dynamic_axes=dynamic,
                opset_version=opset,
                dynamo=False,
            )
    except Exception as exc:  # the exporter raises many private error types for unsupported ops
        raise ModelLoadError(segmenter.info.source, f"torch.onnx.export failed: {exc}") from exc


def _wrapper(torch: Any, model: Any, fuse: bool) -> Any:
    """A module returning plain tensors (the exporter cannot return ModelOutput objects)."""

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixel_values: Any) -> Any:
            logits = self.model(pixel_values=pixel_values).logits
            if not fuse:
                return logits
            size = pixel_values.shape[-2:]
            scores = torch.nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            return scores.argmax(dim=1).to(torch.uint8), logits

    return Logits().eval()


def _metadata(segmenter: HfSegmenter, fuse: bool) -> dict[str, str]:
    return model_metadata(segmenter.info, output="labels" if fuse else "logits", source_kind="hf")


def _fidelity(segmenter: HfSegmenter, path: Path, images: Sequence[np.ndarray], fuse: bool) -> HfExportReport:
    session = open_session(path)
    reference: list[np.ndarray] = []
    exported: list[np.ndarray] = []
    same = total = 0
    for image in images:
        pixels = segmenter.prepare(image)
        reference.append(segmenter.scores(pixels))
        outputs = session.run(None, {"pixel_values": pixels})
        logits = np.asarray(outputs[-1])[0]
        exported.append(logits)
        if fuse:
            labels = np.asarray(outputs[0])[0]
            expected = upsample_argmax(logits, (pixels.shape[2], pixels.shape[3]))
            same += int(np.count_nonzero(labels == expected))
            total += expected.size
    base = compare_scores(reference, exported, class_axis=0)
    return HfExportReport(
        base.images, base.max_abs_diff, base.argmax_agreement, same / total if fuse and total else None
    )
