"""Benchmark: our metrics path against the official cityscapesscripts evaluation, on the same PNG files.

    /work/venv/bin/python benchmarks/bench_metrics.py --count 12 --size 1024x2048

Generates Cityscapes-layout GT / instanceIds / prediction PNGs in a temp dir, then times
(a) the official evaluateImgLists (one core, its pure-Python path) and
(b) ours: PIL decode of each file once, confusion + instance_counts per image on a 2-thread pool,
    compute_scores at the end,
checks both give the same matrix and scores, and prints per-image times, the speed ratio and the share of
our metric work relative to decoding. Both sides are measured in this run, so only the ratios are meant to
travel between machines.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from cityscapes_oracle import official_evaluate, random_scene, write_pair  # noqa: E402

from app.core.domain.labels import EVAL_CATEGORIES, EVAL_TRAINIDS, NUM_LABEL_IDS  # noqa: E402
from app.core.domain.metrics import (  # noqa: E402
    ConfusionAccumulator,
    InstanceCounts,
    Scores,
    compute_scores,
    confusion,
    instance_counts,
)


def parse_size(text: str) -> tuple[int, int]:
    height, width = (int(v) for v in text.lower().split("x"))
    return height, width


def generate(root: Path, count: int, height: int, width: int, seed: int) -> tuple[list[Path], list[Path]]:
    rng = np.random.default_rng(seed)
    pairs = [
        write_pair(root, "bench", i, *random_scene(rng, height, width, blobs=20, things=30))
        for i in range(count)
    ]
    return [p for p, _ in pairs], [g for _, g in pairs]


def decode(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def one_image(pred_file: Path, gt_file: Path) -> tuple[np.ndarray, InstanceCounts, float, float]:
    """Decode the three files and count; returns (matrix, instance counts, decode s, metric s)."""
    t0 = time.perf_counter()
    gt = decode(gt_file)
    pred = decode(pred_file)
    inst = decode(Path(str(gt_file).replace("labelIds", "instanceIds")))
    t1 = time.perf_counter()
    matrix = confusion(gt, pred, NUM_LABEL_IDS)
    counts = instance_counts(inst, pred)
    return matrix, counts, t1 - t0, time.perf_counter() - t1


def ours(pred_files: list[Path], gt_files: list[Path], workers: int) -> tuple[dict[str, Scores], dict]:
    acc = ConfusionAccumulator(NUM_LABEL_IDS)
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one_image, pred_files, gt_files))
    for matrix, counts, _, _ in results:
        acc.merge(matrix, counts)
    t_scores = time.perf_counter()
    scores = {s.key: acc.scores(s) for s in (EVAL_TRAINIDS, EVAL_CATEGORIES)}
    end = time.perf_counter()
    timing = {
        "wall": end - start,
        "decode": sum(r[2] for r in results),
        "metric": sum(r[3] for r in results) + (end - t_scores),
        "matrix": acc.matrix,
    }
    return scores, timing


def check_same(scores: dict[str, Scores], matrix: np.ndarray, official: dict) -> int:
    """Number of values compared; raises if any differs beyond 1e-12 relative."""
    if not np.array_equal(matrix[:, :NUM_LABEL_IDS], np.array(official["confMatrix"], dtype=np.int64)):
        raise AssertionError("confusion matrices differ")
    pairs: list[tuple[str, float, float]] = []
    train, cats = scores["trainids"], scores["categories"]
    for k, name in enumerate(train.class_names):
        pairs.append((f"IoU {name}", train.iou[k], official["classScores"][name]))
        pairs.append((f"iIoU {name}", train.iiou[k], official["classInstScores"][name]))
    for k, name in enumerate(cats.class_names):
        pairs.append((f"cat IoU {name}", cats.iou[k], official["categoryScores"][name]))
        pairs.append((f"cat iIoU {name}", cats.iiou[k], official["categoryInstScores"][name]))
    pairs += [
        ("mIoU", train.miou, official["averageScoreClasses"]),
        ("miIoU", train.miiou, official["averageScoreInstClasses"]),
        ("cat mIoU", cats.miou, official["averageScoreCategories"]),
        ("cat miIoU", cats.miiou, official["averageScoreInstCategories"]),
    ]
    for what, a, b in pairs:
        a, b = float(a), float(b)
        if not ((math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)):
            raise AssertionError(f"{what}: ours {a!r} official {b!r}")
    return len(pairs)


def kernel_times(pred_file: Path, gt_file: Path, repeats: int = 5) -> dict[str, float]:
    """Best-of-N milliseconds of each metric step on one decoded image."""
    gt, pred = decode(gt_file), decode(pred_file)
    inst = decode(Path(str(gt_file).replace("labelIds", "instanceIds")))
    matrix = confusion(gt, pred, NUM_LABEL_IDS)
    counts = instance_counts(inst, pred)
    steps = {
        "decode 3 PNGs": lambda: (
            decode(gt_file),
            decode(pred_file),
            decode(Path(str(gt_file).replace("labelIds", "instanceIds"))),
        ),
        "confusion": lambda: confusion(gt, pred, NUM_LABEL_IDS),
        "instance_counts": lambda: instance_counts(inst, pred),
        "compute_scores (trainids)": lambda: compute_scores(matrix, EVAL_TRAINIDS, counts),
    }
    out = {}
    for name, step in steps.items():
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            step()
            best = min(best, time.perf_counter() - t0)
        out[name] = best * 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=12, help="number of images (default 12)")
    parser.add_argument("--size", type=parse_size, default=(1024, 2048), help="HxW (default 1024x2048)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds; best of each is kept")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    height, width = args.size
    n = args.count
    official_s = math.inf
    best: dict[int, dict] = {}
    kernels: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-metrics-") as tmp:
        t0 = time.perf_counter()
        pred_files, gt_files = generate(Path(tmp), n, height, width, args.seed)
        print(f"generated {n} frames at {height}x{width} in {time.perf_counter() - t0:.1f} s")
        # Interleaved rounds, best of each: other processes on the machine only ever make a run slower.
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            official = official_evaluate(pred_files, gt_files)
            official_s = min(official_s, time.perf_counter() - t0)
            for workers in (1, 2):
                scores, timing = ours(pred_files, gt_files, workers)
                compared = check_same(scores, timing["matrix"], official)
                if workers not in best or timing["wall"] < best[workers]["wall"]:
                    best[workers] = timing
            for name, ms in kernel_times(pred_files[0], gt_files[0]).items():
                kernels[name] = min(ms, kernels.get(name, math.inf))

    print(f"identical: confusion matrix and {compared} scores (rel 1e-12) in every run")
    print(f"best of {args.rounds} rounds, per image:")
    print(f"  official evaluateImgLists : {official_s / n * 1e3:7.1f} ms")
    for workers, timing in best.items():
        print(
            f"  ours, {workers} thread(s)        : {timing['wall'] / n * 1e3:7.1f} ms  "
            f"speed-up {official_s / timing['wall']:4.1f}x  "
            f"(thread time: decode {timing['decode'] / n * 1e3:.1f} ms, "
            f"metric {timing['metric'] / n * 1e3:.1f} ms, "
            f"metric/decode {timing['metric'] / timing['decode']:.3f})"
        )
    print(f"best of {5 * args.rounds} on one image:")
    for name, ms in kernels.items():
        print(f"  {name:<26} {ms:7.2f} ms")
    share = kernels["confusion"] + kernels["instance_counts"]
    print(
        f"goals: speed-up (2 threads) >= 3x -> {official_s / best[2]['wall']:.1f}x; "
        f"metric work < 1/4 of decode -> {share / kernels['decode 3 PNGs']:.3f} (best-of kernels), "
        f"{best[1]['metric'] / best[1]['decode']:.3f} (1-thread run)"
    )


if __name__ == "__main__":
    main()
