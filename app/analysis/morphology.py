"""Numpy-only morphology on label maps: sliding-window min / max / OR filters with square windows and
connected components by run-length union-find (scipy is only in the optional hf extra).

A square window of radius r is the (2r + 1) x (2r + 1) structuring element that r iterations of a 3x3 kernel
give (the erosion the Boundary IoU reference code runs). Each filter is separable and each 1-D pass takes
O(log r) whole-array operations (van Herk style doubling), so its cost barely grows with r.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_Op = Callable[..., np.ndarray]


def window_reduce_1d(values: np.ndarray, radius: int, axis: int, op: _Op, neutral: int) -> np.ndarray:
    """op (np.minimum, np.maximum, np.bitwise_or) over a window of 2 * radius + 1 along `axis`.

    Windows are cut at the array's edges (`neutral` pads them: the value op leaves unchanged)."""
    if radius <= 0:
        return values.copy()
    width = 2 * radius + 1
    shape = list(values.shape)
    shape[axis] += 2 * radius
    out = np.full(shape, neutral, dtype=values.dtype)
    inner = [slice(None)] * values.ndim
    inner[axis] = slice(radius, radius + values.shape[axis])
    out[tuple(inner)] = values
    span = 1  # out[i] holds op over padded[i : i + span]
    while span * 2 <= width:
        length = out.shape[axis] - span
        out = op(_take(out, 0, length, axis), _take(out, span, length, axis))
        span *= 2
    if span < width:
        shift = width - span
        length = out.shape[axis] - shift
        out = op(_take(out, 0, length, axis), _take(out, shift, length, axis))
    return out


def _take(values: np.ndarray, start: int, length: int, axis: int) -> np.ndarray:
    index = [slice(None)] * values.ndim
    index[axis] = slice(start, start + length)
    return values[tuple(index)]


def window_reduce(values: np.ndarray, radius: int, op: _Op, neutral: int) -> np.ndarray:
    """op over the square window of `radius` around every pixel of a 2-D array (cut at the edges)."""
    rows = window_reduce_1d(values, radius, 0, op, neutral)
    return window_reduce_1d(rows, radius, 1, op, neutral)


def differs_within(labels: np.ndarray, radius: int) -> np.ndarray:
    """Bool map: some pixel within Chebyshev distance `radius` (inside the image) has another label.

    For the mask of any one label L this is the pixels of L that an erosion of the mask by the square
    of `radius` removes, when the image's outside is taken to be L: all labels at once from one min and
    one max filter (uint8 labels)."""
    if labels.dtype != np.uint8:
        raise ValueError(f"labels must be uint8, got {labels.dtype}")
    high = window_reduce(labels, radius, np.maximum, 0)
    low = window_reduce(labels, radius, np.minimum, 255)
    return high != low


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Bool dilation by the square of `radius` (windows cut at the image's edges).

    differs_within(labels, d) == dilate(differs_within(labels, 1), d - 1): a pixel with another label
    within distance d means a label change, hence a pixel with a differing 3x3 neighbour, within d - 1 of
    it, and conversely. One max filter of a bool map is half the work of a min and a max filter."""
    if radius <= 0:
        return mask.copy()
    return window_reduce(mask.view(np.uint8), radius, np.maximum, 0).view(bool)


def border_band(shape: tuple[int, int], width: int) -> np.ndarray:
    """Bool map of the pixels less than `width` pixels from the image's outer edge."""
    band = np.zeros(shape, dtype=bool)
    if width > 0:
        band[:width] = band[-width:] = True
        band[:, :width] = band[:, -width:] = True
    return band


def open_mask(mask: np.ndarray, radius: int) -> np.ndarray:
    """Morphological opening (erode, then dilate) by the square of `radius`: parts thinner than
    2 * radius + 1 pixels go, the rest keeps its shape. Pixels outside the image count as background."""
    if radius <= 0:
        return mask.copy()
    as_bytes = mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)
    eroded = window_reduce(as_bytes, radius, np.minimum, 0)
    return window_reduce(eroded, radius, np.maximum, 0).astype(bool)


@dataclass(frozen=True)
class Components:
    """4-connected regions of equal key (one row per region, ordered by first pixel in raster order)."""

    keys: np.ndarray  # (C,) int64: the key every pixel of the region holds
    areas: np.ndarray  # (C,) int64 pixel count
    bboxes: np.ndarray  # (C, 4) int64 x0, y0, x1, y1 with x1, y1 exclusive
    labels: np.ndarray | None  # (H, W) int32 region index, -1 outside any region (when asked for)

    @property
    def count(self) -> int:
        return int(self.keys.size)


def connected_components(keys: np.ndarray, *, with_labels: bool = False) -> Components:
    """4-connected components of the pixels with key >= 0; neighbours join only when their keys are equal.

    Runs of equal key along each row are the nodes; runs touching vertically with the same key are
    merged by a vectorized union-find (minimum label propagation with pointer jumping)."""
    if keys.ndim != 2:
        raise ValueError(f"keys must be 2-D, got shape {keys.shape}")
    height, width = keys.shape
    signed = keys.dtype.kind == "i"
    flat = np.ascontiguousarray(keys if signed else keys.astype(np.int64)).ravel()
    if flat.size == 0:
        return _empty_components(keys.shape, with_labels)
    change = np.empty(flat.size, dtype=bool)
    change[0] = True
    np.not_equal(flat[1:], flat[:-1], out=change[1:])
    change[::width] = True  # runs never cross a row end
    starts = np.flatnonzero(change)
    ends = np.append(starts[1:], flat.size)
    foreground = flat[starts] >= 0
    if not foreground.any():
        return _empty_components(keys.shape, with_labels)
    root = _merge_runs(flat, change, starts, width)
    fg_runs = np.flatnonzero(foreground)
    comp_of_root = np.full(starts.size, -1, dtype=np.int64)
    roots = np.unique(root[fg_runs])  # ascending run index: regions in raster order of first pixel
    comp_of_root[roots] = np.arange(roots.size)
    comp = comp_of_root[root[fg_runs]]
    run_start, run_end = starts[fg_runs], ends[fg_runs]
    lengths = run_end - run_start
    rows, cols0 = np.divmod(run_start, width)
    cols1 = cols0 + lengths
    count = roots.size
    areas = np.bincount(comp, weights=lengths, minlength=count).astype(np.int64)
    bboxes = np.empty((count, 4), dtype=np.int64)
    bboxes[:, 0] = _reduce_by(comp, cols0, count, np.minimum, width)
    bboxes[:, 1] = _reduce_by(comp, rows, count, np.minimum, height)
    bboxes[:, 2] = _reduce_by(comp, cols1, count, np.maximum, 0)
    bboxes[:, 3] = _reduce_by(comp, rows + 1, count, np.maximum, 0)
    labels = None
    if with_labels:
        per_run = np.full(starts.size, -1, dtype=np.int32)
        per_run[fg_runs] = comp
        labels = np.repeat(per_run, ends - starts).reshape(height, width)
    return Components(flat[starts[roots]].astype(np.int64), areas, bboxes, labels)


def _empty_components(shape: tuple[int, ...], with_labels: bool) -> Components:
    labels = np.full(shape, -1, dtype=np.int32) if with_labels else None
    return Components(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 4), np.int64), labels)


def _reduce_by(groups: np.ndarray, values: np.ndarray, count: int, op: np.ufunc, init: int) -> np.ndarray:
    out = np.full(count, init, dtype=np.int64)
    op.at(out, groups, values)
    return out


def _merge_runs(flat: np.ndarray, change: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Root run of every run after joining runs that touch vertically with the same (foreground) key."""
    upper, lower = flat[:-width], flat[width:]
    touch = (upper == lower) & (upper >= 0)
    # One edge per stretch of touching pixels: along it the run above and the run below stay the same
    # unless the key changes, which changes both rows' runs at once.
    first = touch.copy()
    first[1:] &= ~touch[:-1] | change[1 : flat.size - width] | change[width + 1 :]
    pixels = np.flatnonzero(first)
    run_above = np.searchsorted(starts, pixels, side="right") - 1
    run_below = np.searchsorted(starts, pixels + width, side="right") - 1
    return _union_find(starts.size, run_above, run_below)


def _union_find(size: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    label = np.arange(size, dtype=np.int64)
    if a.size == 0:
        return label
    while True:
        root_a, root_b = label[a], label[b]
        low = np.minimum(root_a, root_b)
        before = label.copy()
        # Hooking roots (not the edge's own runs) merges whole trees per round: few rounds even for snakes.
        np.minimum.at(label, root_a, low)
        np.minimum.at(label, root_b, low)
        while True:  # pointer jumping: every run points at its current root
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
        if np.array_equal(label, before):
            return label
