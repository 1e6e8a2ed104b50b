"""Builders of hostile or damaged files for tests/test_hostile*.py: real formats, made wrong on purpose.

poisoned_model(path, kind)    a real ONNX segmenter whose output is NaN/Inf (all or part) or whose
                              labels output holds values no class has (300, -1)
huge_png(path, w, h)          a small PNG file whose header declares w x h (decompresses to w*h*3)
palette_label(path, ids, pal) a palette-mode label PNG
"""

from __future__ import annotations

import importlib.util
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import pytest
from modelzoo import make_onnx_segmenter
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from app.core.domain.labels import TRAINIDS

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


# --- running the command a user runs ----------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
# Runs the real entry point and reports the peak resident memory (VmHWM) of the whole process.
# (VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child of a big pytest would report the
# parent's peak.)
_PEAK_RSS = (
    "import re, sys\n"
    "from app.cli import main\n"
    "try:\n"
    "    code = main(sys.argv[1:])\n"
    "finally:\n"
    "    with open('/proc/self/status') as status:\n"
    "        peak = re.search(r'VmHWM:\\s+(\\d+) kB', status.read()).group(1)\n"
    "    print('PEAK_RSS_KB', peak, file=sys.stderr)\n"
    "sys.exit(code)\n"
)
MEMORY_BOUND_KB = 900 * 1024  # a 13000x13000 decode alone is 0.5 GB grey, 1.7 GB as RGB


def seglens(
    *args: str | Path, env: Mapping[str, str] | None = None, peak: bool = False, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python -m app ARGS` (or the same entry point measuring peak RSS) and check it never dies with
    a traceback."""
    command = [sys.executable, "-c", _PEAK_RSS] if peak else [sys.executable, "-m", "app"]
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=full_env,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def installed(module: str) -> None:
    """Skip unless the optional framework is installed (a failure under SEGLENS_REQUIRE_EXTRAS=1), without
    importing it here: the refusals tested must come before the command imports it."""
    if importlib.util.find_spec(module) is None:
        if os.environ.get("SEGLENS_REQUIRE_EXTRAS") == "1":
            pytest.fail(f"{module} is not installed")
        pytest.skip(f"{module} is not installed")


def peak_kb(proc: subprocess.CompletedProcess[str]) -> int:
    line = next(x for x in proc.stderr.splitlines() if x.startswith("PEAK_RSS_KB"))
    return int(line.split()[1])


def gt_files(root: Path) -> list[Path]:
    return sorted((root / "gtFine").rglob("*_gtFine_labelIds.png"))


def image_files(root: Path) -> list[Path]:
    return sorted((root / "leftImg8bit").rglob("*_leftImg8bit.png"))
