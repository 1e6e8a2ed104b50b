"""Turn label maps into display layers (RGBA masks with transparent ignored pixels). Qt-free."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from app.core.labels import IGNORE, RGB


def rgba_palette(colors: Sequence[RGB], hidden: Collection[int] = ()) -> np.ndarray:
    """A 256x4 uint8 table: class value -> RGBA; IGNORE, values past the classes and `hidden` are clear."""
    lut = np.zeros((256, 4), dtype=np.uint8)
    lut[: len(colors), :3] = np.asarray(colors, dtype=np.uint8)
    lut[: len(colors), 3] = 255
    for value in hidden:
        lut[value, 3] = 0
    lut[IGNORE, 3] = 0
    return lut


def mask_rgba(class_map: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """HxW uint8 class map -> HxWx4 uint8 RGBA (C-contiguous, ready for a QImage)."""
    out = np.empty((*class_map.shape, 4), dtype=np.uint8)
    # np.take with out= is ~4x faster than fancy indexing lut[class_map] at 2048x1024.
    np.take(lut, class_map, axis=0, out=out, mode="clip")
    return out


ERROR_NAMES = ("ignored", "correct", "wrong")
ERROR_COLORS: tuple[RGB, ...] = ((0, 0, 0), (40, 170, 80), (225, 45, 45))
DISAGREEMENT_NAMES = ("ignored", "both right", "A right, B wrong", "B right, A wrong", "both wrong")
DISAGREEMENT_COLORS: tuple[RGB, ...] = ((0, 0, 0), (90, 90, 90), (225, 45, 45), (40, 170, 80), (240, 170, 30))


def error_map(gt_class: np.ndarray, pred_class: np.ndarray) -> np.ndarray:
    """Per pixel: 0 = ignored (GT not evaluated), 1 = correct, 2 = wrong."""
    out = np.where(gt_class == pred_class, np.uint8(1), np.uint8(2))
    out[gt_class == IGNORE] = 0
    return out


def disagreement_map(gt_class: np.ndarray, a_class: np.ndarray, b_class: np.ndarray) -> np.ndarray:
    """Per pixel: 0 ignored, 1 both right, 2 A right & B wrong, 3 B right & A wrong, 4 both wrong."""
    a_ok = a_class == gt_class
    b_ok = b_class == gt_class
    out = np.full(gt_class.shape, 4, dtype=np.uint8)
    out[a_ok & b_ok] = 1
    out[a_ok & ~b_ok] = 2
    out[~a_ok & b_ok] = 3
    out[gt_class == IGNORE] = 0
    return out


def counts(codes: np.ndarray, n: int) -> list[int]:
    """How many pixels carry each code 0..n-1."""
    return [int(v) for v in np.bincount(codes.ravel(), minlength=n)[:n]]


def matrix_view(
    a: np.ndarray | None, b: np.ndarray | None, which: str, scale: str
) -> tuple[np.ndarray, tuple[float, float]] | None:
    """Values and colour levels of a confusion heatmap.

    which: "A", "B" or "B-A"; scale: "rows" (row-normalised: each GT class sums to 1), "counts" or "log"
    (log10(1 + count), signed for differences). None when the needed matrices are missing.
    """
    wanted = {"A": (a,), "B": (b,), "B-A": (a, b)}[which]
    if any(m is None for m in wanted):
        return None
    views = [_scaled(m, scale) for m in wanted if m is not None]
    if which != "B-A":
        values = views[0]
        return values, (0.0, 1.0 if scale == "rows" else max(float(values.max()), 1e-9))
    diff = views[1] - views[0]
    if scale == "log" and a is not None and b is not None:
        raw = b.astype(np.float64) - a.astype(np.float64)
        diff = np.sign(raw) * np.log10(1.0 + np.abs(raw))
    bound = 1.0 if scale == "rows" else max(float(np.abs(diff).max()), 1e-9)
    return diff, (-bound, bound)


def _scaled(matrix: np.ndarray, scale: str) -> np.ndarray:
    values = matrix.astype(np.float64)
    if scale == "rows":
        rows = values.sum(axis=1, keepdims=True)
        return np.divide(values, rows, out=np.zeros_like(values), where=rows > 0)
    if scale == "log":
        return np.log10(1.0 + values)
    return values
