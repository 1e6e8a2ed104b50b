"""The official Cityscapes pixel-level evaluation (cityscapesscripts 2.3.0) as a test oracle.

`official_evaluate(pred_files, gt_files)` runs its evaluateImgLists quietly and returns its result dict
(classScores, classInstScores, categoryScores, categoryInstScores, averageScore*, confMatrix).
`write_pair` lays files out as Cityscapes does and `random_scene` makes GT / instances / prediction arrays
with the cases that matter (ignored ids, crowd regions, caravan/trailer instances, wrong ignored predictions).
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import io
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

_MODULE: ModuleType | None = None


def _official_module() -> ModuleType:
    global _MODULE
    if _MODULE is None:
        # The module reads CITYSCAPES_DATASET at import time to build paths (it never reads them when
        # JSONOutput is off); point it at an empty temp dir so it cannot touch a real dataset.
        previous = os.environ.get("CITYSCAPES_DATASET")
        os.environ["CITYSCAPES_DATASET"] = tempfile.mkdtemp(prefix="cityscapes-oracle-")
        try:
            official = importlib.import_module("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")
        finally:
            if previous is None:
                del os.environ["CITYSCAPES_DATASET"]
            else:
                os.environ["CITYSCAPES_DATASET"] = previous
        _MODULE = official
    return _MODULE


@contextlib.contextmanager
def _in1d_shim() -> Iterator[None]:
    # numpy 2.4 removed np.in1d; the official script calls np.in1d(array2d, ids).reshape(shape), so a
    # flattened isin is a faithful stand-in. Installed only for the duration of the call.
    if hasattr(np, "in1d"):
        yield
        return
    np.in1d = lambda a, b, invert=False: np.isin(a, b, invert=invert).ravel()  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del np.in1d  # type: ignore[attr-defined]


def official_evaluate(pred_files: Sequence[str | Path], gt_files: Sequence[str | Path]) -> dict:
    """Run the official evaluateImgLists on labelIds PNGs (instanceIds PNGs beside them); returns its dict."""
    module = _official_module()
    args = copy.copy(module.args)
    args.quiet = True
    args.JSONOutput = False
    args.evalPixelAccuracy = False
    args.evalInstLevelScore = True
    out = io.StringIO()
    try:
        with _in1d_shim(), contextlib.redirect_stdout(out):
            return module.evaluateImgLists([str(p) for p in pred_files], [str(g) for g in gt_files], args)
    except SystemExit:
        # printError() prints and exits; turn that into an error that carries its message.
        raise RuntimeError(f"official evaluation failed: {out.getvalue().strip()}") from None


def write_pair(
    root: Path, city: str, frame: int, gt: np.ndarray, instances: np.ndarray, pred: np.ndarray
) -> tuple[Path, Path]:
    """Write one frame in the Cityscapes layout; returns (prediction file, labelIds file)."""
    stem = f"{city}_{frame:06d}_000019"
    gt_dir = root / "gtFine" / "val" / city
    gt_dir.mkdir(parents=True, exist_ok=True)
    gt_file = gt_dir / f"{stem}_gtFine_labelIds.png"
    Image.fromarray(gt.astype(np.uint8)).save(gt_file)
    Image.fromarray(instances.astype(np.uint16)).save(gt_dir / f"{stem}_gtFine_instanceIds.png")
    pred_dir = root / "results"
    pred_dir.mkdir(parents=True, exist_ok=True)
    pred_file = pred_dir / f"{stem}_pred.png"
    Image.fromarray(pred.astype(np.uint8)).save(pred_file)
    return pred_file, gt_file


STUFF_IDS = (0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 17, 18, 19, 20, 21, 22, 23)
THING_IDS = (24, 25, 26, 27, 28, 29, 30, 33)  # 31 train and 32 motorcycle never appear in GT
WRONG_IDS = (0, 9, 29, 31, 7, 26, 24, 11)  # ignored ids, a class absent from GT (train), common classes


def random_scene(
    rng: np.random.Generator, height: int, width: int, blobs: int = 12, things: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(gt labelIds uint8, instanceIds uint16, prediction labelIds uint8) of a street-like random scene.

    Large bands (sky, building, road) with stuff rectangles, instance rectangles (a crowd car, a caravan, a
    trailer, people, then random things, one in five a crowd region with instanceId = labelId), and a
    prediction that warps the GT differently and paints wrong rectangles on it.
    Motorcycle (32) is in neither GT nor prediction, so its IoU is undefined.
    """
    gt = np.empty((height, width), dtype=np.uint8)
    gt[: height // 3] = 23
    gt[height // 3 : height // 2] = 11
    gt[height // 2 :] = 7
    gt[-max(1, height // 20) :] = 1  # ego vehicle: ignored
    for _ in range(blobs):
        y0, y1, x0, x1 = _rect(rng, height, width, 0.35)
        gt[y0:y1, x0:x1] = rng.choice(STUFF_IDS)
    instances = gt.astype(np.uint16)
    # The first few things are fixed so every scene has a crowd car, caravan/trailer instances and people.
    fixed = (26, 29, 30, 24, 25)
    for number in range(things):
        y0, y1, x0, x1 = _rect(rng, height, width, 0.25)
        label = fixed[number] if number < len(fixed) else int(rng.choice(THING_IDS))
        gt[y0:y1, x0:x1] = label
        crowd = number == 0 or (number >= len(fixed) and rng.random() < 0.2)
        instances[y0:y1, x0:x1] = label if crowd else label * 1000 + number
    # Wobbly boundaries (as polygon annotations and real predictions have) instead of straight edges;
    # the prediction gets its own wobble, i.e. errors along every boundary.
    rows, cols = _wobble(rng, height, width), _wobble(rng, width, height)
    gt, instances = _warp(gt, rows, cols), _warp(instances, rows, cols)
    pred = _warp(gt, _wobble(rng, height, width), _wobble(rng, width, height))
    for _ in range(blobs):
        y0, y1, x0, x1 = _rect(rng, height, width, 0.2)
        pred[y0:y1, x0:x1] = rng.choice(WRONG_IDS)
    return gt, instances, pred


def _wobble(rng: np.random.Generator, length: int, span: int) -> np.ndarray:
    """Per-line offsets: a random walk kept within about 1% of the other dimension."""
    limit = max(1, span // 100)
    return np.clip(np.cumsum(rng.integers(-1, 2, size=length)), -limit, limit)


def _warp(image: np.ndarray, row_shift: np.ndarray, col_shift: np.ndarray) -> np.ndarray:
    height, width = image.shape
    x = (np.arange(width)[None, :] + row_shift[:, None]) % width
    shifted = np.take_along_axis(image, x, axis=1)
    y = (np.arange(height)[:, None] + col_shift[None, :]) % height
    return np.take_along_axis(shifted, y, axis=0)


def _rect(rng: np.random.Generator, height: int, width: int, scale: float) -> tuple[int, int, int, int]:
    h = int(rng.integers(2, max(3, int(height * scale))))
    w = int(rng.integers(2, max(3, int(width * scale))))
    y0 = int(rng.integers(0, height - h))
    x0 = int(rng.integers(0, width - w))
    return y0, y0 + h, x0, x0 + w
