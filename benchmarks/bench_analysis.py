"""Benchmark: the issue-19 analysis kernels at realistic sizes, beside the per-image confusion matrix the
evaluation already computes (app.core.domain.metrics.confusion), in the same run, interleaved.

    .venv/bin/python benchmarks/bench_analysis.py --size 1024x2048 --images 500 --resamples 2000

These are in-process kernel timings, not whole-process runs: no command runs these functions alone yet (the
evaluation service will call them per image and per dataset), so there is no peer command to time against;
the confusion matrix of the same image is the yardstick, and the ratios are what travel between machines.

Per image (a generated 1024x2048 Cityscapes scene, two predictions made from it: shifted by 2 px and
sprinkled with 40 wrong blocks each): boundary_counts (Boundary IoU d = 2 % of the diagonal and BF
θ = 0.75 %), find_label_errors, instance_recalls (two models), and analyze_image (all of it for two
models, the ground truth's boundary part made once: what the evaluation service calls per image).
Per dataset: paired_bootstrap of N images' per-image matrices (trainids, 19 classes) with R resamples.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.analysis.bootstrap import paired_bootstrap  # noqa: E402
from app.analysis.boundary import boundary_counts  # noqa: E402
from app.analysis.compare import analyze_image  # noqa: E402
from app.analysis.instances import instance_recalls  # noqa: E402
from app.analysis.label_errors import find_label_errors  # noqa: E402
from app.core.domain.labels import EVAL_TRAINIDS, NUM_LABEL_IDS  # noqa: E402
from app.core.domain.metrics import SparseCounts, confusion  # noqa: E402
from app.core.scenes.generator import render_scene  # noqa: E402

_EVALUATED = np.array([7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33], np.uint8)


def _prediction(rng: np.random.Generator, labels: np.ndarray, shift: int) -> np.ndarray:
    out = np.roll(labels, shift, axis=1).copy()
    h, w = labels.shape
    size = max(4, h // 40)
    for _ in range(40):
        y, x = int(rng.integers(0, h - size)), int(rng.integers(0, w - size))
        out[y : y + size, x : x + size] = rng.choice(_EVALUATED)
    return out


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _per_image(size: tuple[int, int], repeats: int) -> None:
    scene = render_scene(0, size)
    rng = np.random.default_rng(0)
    gt, inst = scene.label_ids, scene.instance_ids.astype(np.int32)
    a, b = _prediction(rng, gt, 2), _prediction(rng, gt, -2)
    kernels: dict[str, Callable[[], object]] = {
        "confusion (yardstick)": lambda: confusion(gt, a, NUM_LABEL_IDS),
        "boundary_counts": lambda: boundary_counts(gt, a, EVAL_TRAINIDS),
        "find_label_errors": lambda: find_label_errors(gt, a, b, EVAL_TRAINIDS, key="x"),
        "instance_recalls (2 models)": lambda: instance_recalls(inst, [a, b], EVAL_TRAINIDS, key="x"),
        "analyze_image (2 models, all)": lambda: analyze_image(
            "x", gt, [a, b], EVAL_TRAINIDS, instances=inst
        ),
    }
    times: dict[str, list[float]] = {name: [] for name in kernels}
    for fn in kernels.values():
        fn()  # warm-up
    for _ in range(repeats):  # interleaved: load spikes hit every kernel alike
        for name, fn in kernels.items():
            times[name].append(_time(fn))
    base = statistics.median(times["confusion (yardstick)"])
    print(f"per image at {size[0]}x{size[1]}, {repeats} interleaved repeats (ms: min / median; x confusion):")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:30s} {min(values):7.1f} / {median:7.1f}   x{median / base:5.1f}")


def _bootstrap(images: int, resamples: int, repeats: int) -> None:
    rng = np.random.default_rng(1)
    matrices_a, matrices_b = [], []
    for _ in range(images):
        gt = rng.choice(_EVALUATED, size=(32, 64))
        for out, rate in ((matrices_a, 0.3), (matrices_b, 0.2)):
            pred = np.where(rng.random(gt.shape) < rate, rng.choice(_EVALUATED, size=gt.shape), gt)
            out.append(SparseCounts.from_dense(confusion(gt, pred.astype(np.uint8), NUM_LABEL_IDS)))
    times = []
    result = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = paired_bootstrap(matrices_a, matrices_b, EVAL_TRAINIDS, resamples=resamples)
        times.append((time.perf_counter() - start) * 1000)
    assert result is not None
    print(f"paired_bootstrap, {images} images, 19 classes, {resamples} resamples: "
          f"{min(times):.1f} / {statistics.median(times):.1f} ms (min / median of {repeats});"
          f" ΔmIoU {result.delta_miou.value:+.4f}"
          f" [{result.delta_miou.low:+.4f}, {result.delta_miou.high:+.4f}]")  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="1024x2048", help="HxW of the per-image kernels")
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    _per_image((height, width), args.repeats)
    _bootstrap(args.images, args.resamples, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
