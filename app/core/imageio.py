"""Reading and writing images and label maps, with validation that names the file. STUB."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.core.labels import ClassScheme


def read_image(path: str | Path) -> np.ndarray:
    """Any PIL-readable image -> HxWx3 RGB uint8 (grey, palette, RGBA and 16-bit converted)."""
    raise NotImplementedError


def read_label(
    path: str | Path, scheme: ClassScheme, expected_shape: tuple[int, int] | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """A label map -> (HxW uint8, warnings). Raises InputError naming the file."""
    raise NotImplementedError


def read_instances(path: str | Path, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
    """A Cityscapes instanceIds PNG (16- or 32-bit) -> HxW int32."""
    raise NotImplementedError


def write_label_png(path: str | Path, labels: np.ndarray) -> None:
    """HxW uint8 -> 8-bit greyscale PNG, written atomically."""
    raise NotImplementedError
