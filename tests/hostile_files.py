"""Builders of hostile or damaged files for tests/test_hostile*.py: real formats, made wrong on purpose.

poisoned_model(path, kind)    a real ONNX segmenter whose output is NaN/Inf (all or part) or whose
                              labels output holds values no class has (300, -1)
huge_png(path, w, h)          a small PNG file whose header declares w x h (decompresses to w*h*3)
palette_label(path, ids, pal) a palette-mode label PNG
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from modelzoo import make_onnx_segmenter
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from app.core.labels import TRAINIDS

Poison = Literal["nan_all", "nan_part", "inf", "labels_300", "labels_minus1"]


def poisoned_model(path: Path, kind: Poison, *, input_size: tuple[int, int] | None = (64, 128)) -> Path:
    """A small trainIds ONNX segmenter with its output poisoned as `kind` says."""
    names = TRAINIDS.names
    output = "labels" if kind.startswith("labels") else "logits"
    make_onnx_segmenter(path, names, input_size=input_size, output="logits")
    model = onnx.load(str(path))
    graph = model.graph
    scores = graph.output[0].name  # "scores", (1, K, h, w) float
    graph.output.pop()
    if kind == "nan_all":
        graph.initializer.append(numpy_helper.from_array(np.array(np.nan, dtype=np.float32), "poison"))
        graph.node.append(helper.make_node("Mul", [scores, "poison"], ["out"]))
    elif kind == "nan_part":
        # 0/0 where the ReLU of a score is 0: about half of the map is NaN.
        graph.node.append(helper.make_node("Relu", [scores], ["positive"]))
        graph.node.append(helper.make_node("Div", ["positive", "positive"], ["out"]))
    elif kind == "inf":
        bump = np.zeros((1, len(names), 1, 1), dtype=np.float32)
        bump[0, 3] = np.inf
        graph.initializer.append(numpy_helper.from_array(bump, "poison"))
        graph.node.append(helper.make_node("Add", [scores, "poison"], ["out"]))
    else:
        offset = 300 if kind == "labels_300" else -1
        graph.initializer.append(numpy_helper.from_array(np.array(offset, dtype=np.int64), "poison"))
        graph.initializer.append(numpy_helper.from_array(np.array(offset > 0, dtype=np.int64), "keep"))
        graph.node.append(helper.make_node("ArgMax", [scores], ["argmax"], axis=1, keepdims=0))
        # 300 + the class id (306 ...), or -1 everywhere
        graph.node.append(helper.make_node("Mul", ["argmax", "keep"], ["ids"]))
        graph.node.append(helper.make_node("Add", ["ids", "poison"], ["out"]))
    out_type = TensorProto.INT64 if output == "labels" else TensorProto.FLOAT
    shape: list[int | str] = [1, "h", "w"] if output == "labels" else [1, len(names), "h", "w"]
    graph.output.append(helper.make_tensor_value_info("out", out_type, shape))
    for prop in model.metadata_props:
        if prop.key == "seglens.output":
            prop.value = output
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def huge_png(path: Path, width: int, height: int) -> Path:
    """An 8-bit greyscale PNG declaring width x height, all zeros: zlib makes it a few hundred KB at most,
    while decoding it would take width*height bytes (and RGB conversion three times that)."""
    row = b"\x00" + b"\x00" * width
    compressor = zlib.compressobj(9)
    chunks = [compressor.compress(row) for _ in range(min(height, 64))]
    # The same row repeated: compress once per block of rows to keep building the file fast.
    block = row * 256
    for _ in range((height - len(chunks)) // 256):
        chunks.append(compressor.compress(block))
    remainder = height - min(height, 64) - ((height - min(height, 64)) // 256) * 256
    chunks.append(compressor.compress(row * remainder))
    chunks.append(compressor.flush())
    data = b"".join(chunks)

    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
    )
    return path


def palette_label(path: Path, ids: np.ndarray, palette: Sequence[Sequence[int]]) -> Path:
    """A palette-mode PNG holding `ids` as indices, with `palette[i]` the colour of index i."""
    img = Image.fromarray(ids.astype(np.uint8), mode="P")
    flat = [int(c) for colour in palette for c in colour]
    img.putpalette(flat + [0] * (768 - len(flat)))
    img.save(path)
    return path
