"""`seglens export`: a Keras or Hugging Face model to a self-describing ONNX file, fidelity checked."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.core.domain.errors import ModelLoadError
from app.core.io.fileutil import check_output_file
from app.core.runtime.argtypes import positive_int
from app.inference.tools.export_common import FidelityReport

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def source_kind(path: Path) -> str:
    """'hf' for a checkpoint folder, 'keras' for a Keras file; ModelLoadError otherwise."""
    if path.is_dir() and (path / "config.json").is_file():
        return "hf"
    if path.suffix.lower() in KERAS_SUFFIXES:
        return "keras"
    raise ModelLoadError(
        path, "cannot export this: expected a Hugging Face checkpoint folder (config.json) or a Keras file"
    )


def sample_images(dataset: str | None, count: int) -> list[np.ndarray]:
    """`count` RGB images from a dataset, or synthetic street scenes when none is given."""
    if dataset:
        from app.core.io.datasets import open_dataset
        from app.core.io.imageio import read_image

        data = open_dataset(dataset)
        return [read_image(ref.image_path) for ref in data.refs[:count]]
    from app.core.scenes.generator import render_scene

    return [render_scene(i, size=(256, 512), seed=4242, split="export").image for i in range(count)]


def export_model(
    source: str | Path,
    out: str | Path,
    *,
    samples: Sequence[np.ndarray],
    opset: int = 17,
    fuse_postprocess: bool = False,
) -> FidelityReport:
    """Export `source` to `out` with the backend's exporter and return the fidelity on `samples`."""
    path = Path(source)
    kind = source_kind(path)
    if kind == "hf":
        from app.inference.tools.export_hf import export_hf

        return export_hf(
            path, out, sample_images=list(samples), opset=opset, fuse_postprocess=fuse_postprocess
        )
    if fuse_postprocess:
        raise ModelLoadError(path, "--fuse-postprocess is only available for Hugging Face models")
    from app.inference.tools.export_keras import export_keras

    return export_keras(path, out, sample_images=list(samples), opset=opset)


def main(argv: Sequence[str] | None = None) -> int:
    """`seglens export MODEL --out model.onnx`; exit 1 when fidelity is below the goal."""
    parser = argparse.ArgumentParser(prog="seglens export", description=__doc__)
    parser.add_argument("model", help="Hugging Face checkpoint folder or Keras .keras/.h5 file")
    parser.add_argument("--out", required=True, type=Path, help="ONNX file to write")
    parser.add_argument("--samples", help="dataset to take fidelity-check images from (default: synthetic)")
    parser.add_argument("--count", type=positive_int, default=4, help="images for the fidelity check")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--fuse-postprocess", action="store_true", help="Resize + ArgMax inside the graph")
    args = parser.parse_args(argv)
    check_output_file(args.out, "ONNX file")  # before minutes of tracing and checking, not after
    start = time.perf_counter()
    report = export_model(
        args.model,
        args.out,
        samples=sample_images(args.samples, args.count),
        opset=args.opset,
        fuse_postprocess=args.fuse_postprocess,
    )
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s")
    print(report.describe())
    if not report.ok:
        print(
            "seglens export: the exported model does not reproduce the source closely enough", file=sys.stderr
        )
        return 1
    return 0
