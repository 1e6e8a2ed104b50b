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
    return np.ascontiguousarray(lut[class_map])


def error_map(gt_class: np.ndarray, pred_class: np.ndarray) -> np.ndarray:
    """0 = ignored, 1 = correct, 2 = wrong, per pixel."""
    out = np.where(gt_class == pred_class, 1, 2).astype(np.uint8)
    out[gt_class == IGNORE] = 0
    return out
