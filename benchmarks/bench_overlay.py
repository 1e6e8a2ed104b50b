"""Overlay speed at Cityscapes resolution (2048x1024): ours against a naive float blend, same run.

    python benchmarks/bench_overlay.py [--repeat 30] [--width 2048 --height 1024]

Prints the best-of-N and median ms of each variant and its ratio to the naive float reference
(palette[labels] then image*(1-o) + colors*o in float64). The budget for colorize+blend is 16 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.core.display.overlay import blend, colorize, contours, overlay, overlay_contours
from app.core.domain.labels import LABELIDS

OPACITY = 0.45


def naive_float(image: np.ndarray, labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    colors = palette[labels]
    return np.rint(image * (1.0 - OPACITY) + colors * OPACITY).astype(np.uint8)


def scene(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A street-like label map (large regions, a few small objects) and a noisy image."""
    rng = np.random.default_rng(0)
    labels = np.full((height, width), 7, dtype=np.uint8)  # road
    labels[: height * 2 // 5] = 23  # sky
    labels[height // 5 : height // 2, : width // 3] = 11  # building
    labels[height // 5 : height // 2, width * 2 // 3 :] = 21  # vegetation
    labels[height * 9 // 10 :] = 1  # ego vehicle
    for _ in range(60):  # cars, people, poles
        y, x = int(rng.integers(0, height - 64)), int(rng.integers(0, width - 128))
        h, w = int(rng.integers(8, 64)), int(rng.integers(4, 128))
        labels[y : y + h, x : x + w] = rng.choice([17, 24, 26, 33])
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return image, labels


def measure(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    fn()  # warm-up: page faults of fresh buffers are not what we measure
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--height", type=int, default=1024)
    args = parser.parse_args()

    image, labels = scene(args.height, args.width)
    palette = LABELIDS.palette()
    out = np.empty_like(image)
    colors = np.empty_like(image)
    mask = labels != 7
    variants: list[tuple[str, Callable[[], object]]] = [
        ("naive float64 blend (reference)", lambda: naive_float(image, labels, palette)),
        ("colorize (take, reused out)", lambda: colorize(labels, palette, out=colors)),
        ("blend (uint16 fixed point)", lambda: blend(image, colors, OPACITY, out=out)),
        ("colorize + blend", lambda: blend(image, colorize(labels, palette, out=colors), OPACITY, out=out)),
        ("overlay (fused premultiplied LUT)", lambda: overlay(image, labels, palette, OPACITY, out=out)),
        ("overlay, road+sky hidden", lambda: overlay(image, labels, palette, OPACITY, {7, 23}, out=out)),
        ("blend with mask", lambda: blend(image, colors, OPACITY, mask=mask, out=out)),
        ("contours", lambda: contours(labels)),
        ("overlay_contours", lambda: overlay_contours(image, labels, palette, out=out)),
    ]
    # Same result check before timing: ours is within 1 level of the reference.
    ours = overlay(image, labels, palette, OPACITY).astype(np.int16)
    diff = int(np.abs(ours - naive_float(image, labels, palette)).max())
    print(f"{args.width}x{args.height}, opacity {OPACITY}, best/median of {args.repeat} runs")
    print(f"max |ours - float reference| = {diff} level(s)")
    reference = None
    for name, fn in variants:
        best, median = measure(fn, args.repeat)
        reference = reference or median
        print(f"  {name:36s} best {best:7.2f} ms  median {median:7.2f} ms  ratio {median / reference:5.2f}")


if __name__ == "__main__":
    main()
