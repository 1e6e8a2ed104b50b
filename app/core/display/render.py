"""Turn label maps into display layers (RGBA masks with transparent ignored pixels). Qt-free."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from app.core.display.overlay import contours
from app.core.domain.labels import IGNORE, RGB


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


# What the masks encode (one choice for all panels), and how one panel draws its mask ("mask": the mask
# alone, opaque, without the image under it; drawn like "filled").
CONTENTS = ("classes", "errors", "disagreement")
STYLES = ("filled", "contours", "mask")

# Outlines must survive the fit-to-window zoom-out (nearest-neighbour, no smoothing): one pixel more on
# each side of a boundary per 512 image pixels, so a 2048-wide frame shown ~550 px wide keeps ~2 px lines.
OUTLINE_PIXELS_PER_RADIUS = 512


def outline_radius(shape: tuple[int, ...]) -> int:
    """How far outlines of an image of this shape are widened on each side of a boundary."""
    return max(shape[:2]) // OUTLINE_PIXELS_PER_RADIUS


def grow(mask: np.ndarray, radius: int) -> np.ndarray:
    """Box dilation of a bool mask by `radius` pixels (separable shifted ORs; no SciPy needed)."""
    out = mask.copy()
    for axis in (0, 1):
        base = out.copy()
        for step in range(1, radius + 1):
            if step >= base.shape[axis]:
                break
            ahead = [slice(None), slice(None)]
            behind = [slice(None), slice(None)]
            ahead[axis], behind[axis] = slice(step, None), slice(None, -step)
            out[tuple(ahead)] |= base[tuple(behind)]
            out[tuple(behind)] |= base[tuple(ahead)]
    return out


def outline(codes: np.ndarray, radius: int = 0) -> np.ndarray:
    """HxW bool: region boundaries of a uint8 code map (classes, error or disagreement codes): the class
    contours of app.core.display.overlay, widened by `radius` pixels to each side."""
    edge = contours(codes)
    return grow(edge, radius) if radius else edge


def region_boundary(region: np.ndarray, radius: int = 0) -> np.ndarray:
    """The pixels of `region` within 1 + `radius` pixels of a pixel outside it: an outline drawn inside
    the region, so lone pixels stay visible (none along the image border, like class outlines)."""
    return region & grow(~region, radius + 1)


ERROR_NAMES = ("ignored", "correct", "wrong")
# Okabe-Ito colours, told apart with every kind of colour blindness: blue = right, orange = wrong, in every
# panel and mode (red/green is what most colour-blind users cannot tell apart).
ERROR_COLORS: tuple[RGB, ...] = ((0, 0, 0), (0, 114, 178), (230, 159, 0))
DISAGREEMENT_NAMES = ("ignored", "both right", "A right, B wrong", "B right, A wrong", "both wrong")
# Panel B in "A vs B", from B's side and in the same meanings: orange = B wrong where A is right, blue = B
# right where A is wrong; both right grey, both wrong reddish purple (neither blue nor orange).
DISAGREEMENT_COLORS: tuple[RGB, ...] = (
    (0, 0, 0),
    (150, 150, 150),
    (230, 159, 0),
    (0, 114, 178),
    (204, 121, 167),
)


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
