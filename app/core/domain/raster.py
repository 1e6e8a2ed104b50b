"""Low-level raster helpers of the label editor: pure functions on numpy label maps and pixel geometry.

Brush geometry (`pieces`, `capsule_mask`), the scanline flood fill (`flood`, `extend_left`,
`extend_right`), compact storage of undo values (`compact`) and small argument helpers (`preserve_lut`,
`check_value`, `pixel`). Used by `app.core.domain.label_edit.LabelEditor`; nothing here keeps state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import numpy as np

Point = tuple[float, float]

# Stroke segments longer than this many radii are cut so that each piece's bounding box stays tight
# (a long diagonal segment's box would otherwise cover most of the map).
PIECE_RADII = 4.0
MIN_PIECE_PX = 16.0
EXTEND_CHUNK = 64


def compact(values: np.ndarray) -> np.ndarray:
    """Store equal values once: a fill's old pixels are all one class."""
    if values.size > 1 and bool((values == values[0]).all()):
        return values[:1].copy()
    return values


def preserve_lut(preserve: Iterable[int] | None) -> np.ndarray | None:
    """A 256-entry bool table, True for the classes to keep (None when nothing is preserved)."""
    if not preserve:
        return None
    lut = np.zeros(256, dtype=bool)
    for value in preserve:
        lut[check_value(value)] = True
    return lut


def check_value(value: int) -> int:
    """`value` as an int, or ValueError when it is not a uint8 label value."""
    v = int(value)
    if not 0 <= v <= 255:
        raise ValueError(f"label value {value} is not in 0..255")
    return v


def pixel(point: Point) -> tuple[int, int]:
    """The (x, y) pixel holding `point` (coordinates floored)."""
    return math.floor(point[0]), math.floor(point[1])


def pieces(a: tuple[int, int], b: tuple[int, int], radius: float) -> Iterator[tuple[Point, Point]]:
    """Cut segment a-b into pieces short enough for tight bounding boxes."""
    length = math.hypot(b[0] - a[0], b[1] - a[1])
    count = max(1, math.ceil(length / max(PIECE_RADII * radius, MIN_PIECE_PX)))
    prev: Point = (float(a[0]), float(a[1]))
    for i in range(1, count + 1):
        t = i / count
        cur: Point = (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)
        yield prev, cur
        prev = cur


def capsule_mask(a: Point, b: Point, radius: float, box: tuple[int, int, int, int]) -> np.ndarray:
    """Pixels of `box` within `radius` of segment a-b. The test d² <= r² + r gives round small brushes
    (radius 1 is a 3x3 square) and is the same for a dab (a == b) and a stroke."""
    x0, y0, x1, y1 = box
    px = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(a[0])
    py = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(a[1])
    dx, dy = np.float32(b[0] - a[0]), np.float32(b[1] - a[1])
    length2 = float(dx * dx + dy * dy)
    if length2 > 0.0:
        t = np.clip((px * dx + py * dy) / np.float32(length2), 0.0, 1.0)
        px = px - t * dx
        py = py - t * dy
    limit = np.float32(radius * radius + radius + 1e-3)
    return np.asarray(px * px + py * py <= limit)


def flood(labels: np.ndarray, x: int, y: int, old: int, new: int, eight: bool) -> list[tuple[int, int, int]]:
    """Scanline flood fill of the `old`-valued region at (x, y), writing `new` as it goes (filled pixels
    then stop the walk). Returns the filled spans as (row, start, end) with exclusive ends."""
    h, w = labels.shape
    grow = 1 if eight else 0
    spans: list[tuple[int, int, int]] = []
    stack = [(y, x, x + 1)]
    while stack:
        row_index, a, b = stack.pop()
        row = labels[row_index]
        hits = row[a:b] == old
        if not hits.any():
            continue
        edges = np.diff(np.concatenate(([0], hits.view(np.int8), [0])))
        for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            s, e = int(start) + a, int(end) + a
            if s == a:
                s = extend_left(row, s, old)
            if e == b:
                e = extend_right(row, e, old)
            row[s:e] = new
            spans.append((row_index, s, e))
            lo, hi = max(s - grow, 0), min(e + grow, w)
            if row_index > 0:
                stack.append((row_index - 1, lo, hi))
            if row_index + 1 < h:
                stack.append((row_index + 1, lo, hi))
    return spans


def extend_left(row: np.ndarray, start: int, old: int) -> int:
    """First index of the run of `old` ending at start-1, searched in growing chunks (not the whole row)."""
    i, chunk = start, EXTEND_CHUNK
    while i > 0:
        lo = max(i - chunk, 0)
        other = np.flatnonzero(row[lo:i] != old)
        if other.size:
            return lo + int(other[-1]) + 1
        i, chunk = lo, chunk * 2
    return 0


def extend_right(row: np.ndarray, end: int, old: int) -> int:
    """Exclusive end of the run of `old` starting at `end`."""
    i, chunk, w = end, EXTEND_CHUNK, row.shape[0]
    while i < w:
        hi = min(i + chunk, w)
        other = np.flatnonzero(row[i:hi] != old)
        if other.size:
            return i + int(other[0])
        i, chunk = hi, chunk * 2
    return w
